"""Transcript text: Simplified script, Chinese punctuation, hallucination guard, CER normalisation."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from asr.numbers import NUMERAL_CHARS, join_digit_groups, number_words, spoken_digits


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


_ASCII_PUNCT = str.maketrans({",": "，", "?": "？", "!": "！", ":": "：", ";": "；", "(": "（", ")": "）"})
_CJK = r"\u3400-\u9fff"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SENTENCE_END = "。？！"


def punctuate(text: str, *, final: bool = True) -> str:
    """Simplified script with Chinese punctuation and joined digit strings; a final utterance ends with 。/？/！."""
    text = unicodedata.normalize("NFKC", to_simplified(text)).replace("\ufffd", "").strip().translate(_ASCII_PUNCT)
    text = spoken_digits(join_digit_groups(text), min_digits=5)
    text = re.sub(rf"(?<=[{_CJK}])\.(?!\d)", "。", text)
    text = _SPACE_BETWEEN_CJK.sub("，", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"([，。？！、；：])[，。、；：]+", r"\1", text)
    text = text.lstrip("，。、；：")
    if final and text and text[-1] not in _SENTENCE_END:
        text = text.rstrip("，、；：") + ("？" if re.search(r"(吗|呢)$", text.rstrip("，、；：")) else "。")
    return text


@dataclass(frozen=True)
class HallucinationParams:
    """Known Whisper failure modes on silence/noise, and the repetition-loop limits."""

    phrases: tuple[str, ...] = (
        "请不吝点赞", "点赞订阅", "订阅转发", "打赏支持", "明镜与点点栏目", "字幕由", "字幕提供", "字幕志愿者",
        "谢谢观看", "感谢观看", "谢谢收看", "感谢收看", "欢迎订阅", "下期再见", "优优独播剧场", "YoYo Television",
        "中文字幕", "Amara.org", "索兰娅",
    )
    max_unit_repeats: int = 2  # a 2–3 char unit ("好的") may appear at most this many times in a row
    long_unit_chars: int = 4  # a unit this long or longer repeated verbatim back-to-back is a decoder loop
    near_unit_chars: int = 8  # ... and one this long repeated back-to-back with one character written otherwise
    # (not a numeral: "城北二路十五号城北二路十六号" is a correction)
    max_char_repeats: int = 4  # a single char may appear at most this many times in a row
    max_chars_per_second: float = 9.0  # faster than any speaker: the decoder is looping


_DEFAULT_HALLUCINATION = HallucinationParams()


def collapse_repetitions(text: str, params: HallucinationParams = _DEFAULT_HALLUCINATION) -> str:
    """Cut decoder loops: '好的好的好的' → '好的好的', '挂过了，挂过了，' → '挂过了，',
    '在手机上挂过了G手机上挂过了' → '在手机上挂过了'."""
    text = re.sub(r"(.)\1{%d,}" % params.max_char_repeats, lambda m: m.group(1) * params.max_char_repeats, text)
    text = re.sub(r"(.{%d,20}?)\1+" % params.long_unit_chars, r"\1", text)
    text = _collapse_near_repeats(text, params.near_unit_chars)
    pattern = re.compile(r"(.{2,%d}?)\1{%d,}" % (params.long_unit_chars - 1, params.max_unit_repeats))
    return pattern.sub(lambda m: m.group(1) * params.max_unit_repeats, text)


def _collapse_near_repeats(text: str, min_chars: int, max_chars: int = 20) -> str:
    """Drop the second of two back-to-back units of ``min_chars``+ characters that differ in one character,
    other than a numeral (a unit of mostly one character, such as masked text, is left alone)."""
    for size in range(min(max_chars, len(text) // 2), min_chars - 1, -1):
        i = 0
        while i + 2 * size <= len(text):
            unit, after = text[i:i + size], text[i + size:i + 2 * size]
            differ = [(a, b) for a, b in zip(unit, after) if a != b]
            if len(differ) == 1 and not any(ch in NUMERAL_CHARS for ch in differ[0]) and len(set(unit)) > size // 2:
                text = text[:i + size] + text[i + 2 * size:]
            else:
                i += 1
    return text


def _drop_repeated_sentences(text: str) -> str:
    """Whisper sometimes restarts an utterance it already finished: drop a sentence contained in an earlier one."""
    parts = re.split(r"(?<=[。！？!?.])", text)
    kept: list[str] = []
    for part in parts:
        bare = strip_punctuation(part)
        if len(bare) >= 4 and any(bare in strip_punctuation(k) for k in kept):
            continue
        kept.append(part)
    return "".join(kept)


def is_hallucination(text: str, params: HallucinationParams = _DEFAULT_HALLUCINATION) -> bool:
    bare = strip_punctuation(to_simplified(text))
    return any(strip_punctuation(p) in bare for p in params.phrases)


def clean_hypothesis(text: str, duration_s: float, params: HallucinationParams = _DEFAULT_HALLUCINATION) -> str:
    """Drop hallucinated credits, cut loops and implausibly long output for the audio length."""
    if is_hallucination(text, params):
        return ""
    text = collapse_repetitions(_drop_repeated_sentences(text), params)
    limit = max(4, int(params.max_chars_per_second * duration_s))
    if len(strip_punctuation(text)) > limit:
        text = text[:limit]
    return text


def strip_punctuation(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC")


# --- CER normalisation (applied identically to reference and hypothesis) -------------------------

@dataclass(frozen=True)
class CerNormalisation:
    """Text normalisation for CER: Simplified, no punctuation/space, numbers as Chinese words."""

    equivalents: dict[str, str] = field(default_factory=lambda: {"幺": "一", "两": "二", "〇": "零"})


def normalise_for_cer(text: str, norm: CerNormalisation = CerNormalisation()) -> str:
    text = unicodedata.normalize("NFKC", to_simplified(text)).upper()
    text = number_words(text)
    text = strip_punctuation(text)
    return "".join(norm.equivalents.get(ch, ch) for ch in text)


def edit_distance(ref: str, hyp: str) -> int:
    """Character edits (insertions, deletions, substitutions) from ``ref`` to ``hyp``: the numerator of CER."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(ref, hyp)
