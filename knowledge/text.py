"""Text normalisation shared by retrieval and the copilot.

Callers on the phone wrap their question in greetings and fillers
("喂你好，我想问一下……啊") and ASR output mis-hears homophones.  These helpers
strip the wrapping, map colloquial words to their written forms, tokenise with
jieba, and map Chinese text to fuzzy toneless pinyin so that homophones (and the
usual southern-Mandarin initial/final confusions) match.
"""
from __future__ import annotations

import re

import jieba
from pypinyin import Style, lazy_pinyin

from asr.pinyin import fuzzy_syllable

jieba.setLogLevel(60)

# Colloquial spoken forms -> written forms used by FAQ titles.
_COLLOQUIAL: list[tuple[str, str]] = [
    ("咋整", "怎么办"), ("咋办", "怎么办"), ("咋弄", "怎么办"), ("怎么弄", "怎么办"), ("咋", "怎么"),
    ("啥时候", "什么时候"), ("啥", "什么"), ("多会儿", "什么时候"), ("哪儿", "哪里"), ("哪块", "哪里"),
    ("不见了", "丢失"), ("搞丢", "丢失"), ("弄丢", "丢失"), ("掉了", "丢失"), ("丢了", "丢失"),
    ("驾照", "驾驶证"), ("身份证号", "身份证号码"), ("娃", "孩子"), ("小孩", "孩子"),
]
_FILLER = re.compile(
    r"^(喂+|哎+|诶+|嗯+|你好|您好|同志|师傅|麻烦(你|您)|请问(一下)?|"
    r"我(想|要)?(问|咨询|了解|打听|反映)(一下|个事|一个事)?|我这边|是这样的?|就是说?|那个|这个事)"
    r"[，,。！!？?、\s]*"
)
_TAIL_PARTICLES = re.compile(r"[啊呀呢吧哦嘛哈啦咯呗]+(?=[，,。！!？?\s]|$)")
_PUNCT = re.compile(r"[\s，,。！!？?、；;：:“”\"'‘’（）()《》【】\[\]…—\-]+")
_HAN = re.compile(r"[\u4e00-\u9fff]")

STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 是 我 我们 你 你们 他 她 它 这 那 就 都 也 还 在 有 要 想 能 可以 会 去 到 给 跟 和 与 及 "
    "怎么 怎样 如何 什么 哪里 哪些 哪个 多少 一下 一个 请问 问 问题 现在 这个 那个 这样 没有 不 需要 应该 该 个".split()
)


# What a question asks about a service.  Near-duplicate entries of a real knowledge base are often one service
# asked about in different ways (its conditions, its materials, its time limit, its fee), and a caller's
# question says which: a type the query and a title share, or a clash between them, is a ranker feature.
QUESTION_TYPES: dict[str, tuple[str, ...]] = {
    "条件": ("条件", "资格", "符合", "满足", "够不够"),
    "材料": ("材料", "资料", "证件", "带什么", "带哪些", "提交什么", "提供什么"),
    "时间": ("时间", "什么时候", "何时", "多久", "多长时间", "要几天", "几天能", "期限", "时限", "日期", "截止", "几点", "哪天"),
    "费用": ("费用", "多少钱", "收费", "收不收费", "交多少", "价格", "免费"),
    "地点": ("哪里", "在哪", "地点", "地址", "哪个窗口", "哪个地方", "哪些地方", "哪些地区", "分布"),
    "对象": ("范围", "哪些人", "什么人", "对象", "谁可以"),
    "是否": ("是否", "要不要", "需不需要", "用不用", "能不能", "可不可以", "可以吗", "是不是"),
    "好处": ("好处", "优惠", "补贴", "待遇", "奖励"),
    "查询": ("查询", "怎么查", "查看", "在哪查", "明细", "记录", "余额", "进度"),
    "修改": ("修改", "变更", "更改", "更换", "改成"),
}


def question_types(text: str) -> frozenset[str]:
    """The ``QUESTION_TYPES`` a question or title is about (none for a plain statement)."""
    return frozenset(kind for kind, cues in QUESTION_TYPES.items() if any(cue in text for cue in cues))


def normalize_query(text: str) -> str:
    """Strip greetings/fillers repeatedly and map colloquial words to written forms."""
    text = text.strip()
    previous = None
    while previous != text:
        previous = text
        text = _FILLER.sub("", text, count=1)
    text = _TAIL_PARTICLES.sub("", text)
    for spoken, written in _COLLOQUIAL:
        text = text.replace(spoken, written)
    return text.strip("，,。 ")


def word_tokens(text: str) -> list[str]:
    """jieba search-mode tokens without punctuation or stopwords."""
    text = _PUNCT.sub(" ", text.lower())
    return [t for t in jieba.lcut_for_search(text) if t.strip() and t not in STOPWORDS]


def pinyin_syllables(text: str) -> list[str]:
    """Fuzzy toneless pinyin of the Han characters in ``text`` (other characters dropped)."""
    han = "".join(_HAN.findall(text))
    return [fuzzy_syllable(s) for s in lazy_pinyin(han, style=Style.NORMAL, errors="ignore")]


def pinyin_tokens(text: str) -> list[str]:
    """Syllable bigrams: robust to homophone substitutions made by ASR."""
    syl = pinyin_syllables(text)
    return [f"{a}_{b}" for a, b in zip(syl, syl[1:])]


def char_bigrams(text: str) -> set[str]:
    han = "".join(_HAN.findall(text))
    return {han[i : i + 2] for i in range(len(han) - 1)}


class HomophoneNoise:
    """Simulated ASR substitutions: swap characters for same-sounding ones (toneless pinyin).

    Used to train the ranker to trust pinyin features when characters are wrong.
    Substitutes come from ``vocabulary`` (e.g. the KB's own characters) so they are common ones.
    """

    def __init__(self, vocabulary: str):
        self._by_sound: dict[str, list[str]] = {}
        for ch in sorted(set(_HAN.findall(vocabulary))):
            self._by_sound.setdefault(lazy_pinyin(ch, style=Style.NORMAL)[0], []).append(ch)

    def __call__(self, text: str, rate: float, rng) -> str:
        out = []
        for ch in text:
            if _HAN.match(ch) and rng.random() < rate:
                options = [c for c in self._by_sound.get(lazy_pinyin(ch, style=Style.NORMAL)[0], []) if c != ch]
                if options:
                    ch = options[rng.randrange(len(options))]
            out.append(ch)
        return "".join(out)
