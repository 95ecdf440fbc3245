"""Lexicon sentiment for one utterance: a score in [-1, 1] (negative = hostile/upset).

Deliberately simple and explainable; a scorecard compares the score with a named threshold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

NEGATIVE = (
    "吼", "烦", "滚", "闭嘴", "有完没完", "听不懂", "没用", "啰嗦", "别吵", "少废话", "行了行了", "说重点",
    "又不是我", "关我什么事", "怎么这么", "不耐烦", "态度", "受不了", "生气", "投诉你", "垃圾", "骗子",
    "凭什么", "什么破", "气死", "太过分", "到底管不管", "没人管", "骂", "害怕", "着急", "救命",
)
_NEGATORS = ("别", "不", "不要", "不用", "没")
POSITIVE = (
    "谢谢", "感谢", "您好", "请", "麻烦您", "理解", "抱歉", "不好意思", "不客气", "放心", "别担心",
    "好的", "明白", "辛苦", "祝您", "满意", "帮您",
)
INTENSIFIERS = ("！", "!", "真的", "根本", "到底", "太")


@dataclass(frozen=True)
class Lexicon:
    negative: tuple[str, ...] = NEGATIVE
    positive: tuple[str, ...] = POSITIVE
    intensifiers: tuple[str, ...] = INTENSIFIERS
    extra_negative: tuple[str, ...] = field(default_factory=tuple)


def _count(text: str, word: str) -> int:
    """Occurrences of ``word`` not directly negated (您别着急 is comfort, not anger)."""
    n, start = 0, text.find(word)
    while start >= 0:
        if not any(text[:start].endswith(x) for x in _NEGATORS):
            n += 1
        start = text.find(word, start + 1)
    return n


def score(text: str, lexicon: Lexicon = Lexicon()) -> float:
    """(pos - neg·boost) / (pos + neg + 1): one negative word alone gives -0.5, two give -0.67."""
    neg = sum(_count(text, w) for w in lexicon.negative + lexicon.extra_negative)
    pos = sum(text.count(w) for w in lexicon.positive)
    boost = 1.0 + 0.25 * sum(text.count(w) for w in lexicon.intensifiers) if neg > pos else 1.0
    return max(-1.0, min(1.0, (pos - neg * boost) / (pos + neg + 1)))
