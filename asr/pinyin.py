"""Toneless pinyin and how alike two syllables sound, for repairing what ASR heard."""
from __future__ import annotations

import threading
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

# Pinyin confusions that phone-band audio and regional accents produce (initials, then finals); southern
# accents (桂柳话 among them) merge n, l and r.
_FUZZY_INITIALS = {"zh": "z", "ch": "c", "sh": "s", "l": "n", "r": "n", "h": "f"}
_FUZZY_FINALS = {"ang": "an", "eng": "en", "ing": "in", "iang": "ian", "uang": "uan", "ong": "on"}
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s", "y", "w")


@lru_cache(maxsize=16384)
def syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin, one syllable per character (a character without pinyin stands for itself)."""
    return tuple(lazy_pinyin(text, style=Style.NORMAL, errors=lambda s: list(s)))


@lru_cache(maxsize=4096)
def _canonical(syllable: str) -> tuple[str, str]:
    initial = next((i for i in _INITIALS if syllable.startswith(i)), "")
    final = syllable[len(initial) :]
    return _FUZZY_INITIALS.get(initial, initial), _FUZZY_FINALS.get(final, final)


def fuzzy_syllable(syllable: str) -> str:
    """One spelling for each class of syllables that sound alike on the phone (lan = nan = ran, shi = si)."""
    return "".join(_canonical(syllable))


def syllable_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    (ia, fa), (ib, fb) = _canonical(a), _canonical(b)
    if ia == ib and fa == fb:
        return 0.9
    if ia == ib or fa == fb:
        return 0.5
    return 0.0


_PRIVATE_USE = 0xE000  # one code point per toneless syllable, so a text keeps its length and regexes still apply
_SOUND_IDS: dict[str, int] = {}
_SOUND_IDS_LOCK = threading.Lock()


@lru_cache(maxsize=8192)
def _sound_char(ch: str) -> str:
    syl = lazy_pinyin(ch, style=Style.NORMAL, errors="default")[0]
    if syl == ch:  # not a Han character
        return ch
    sound = syl
    with _SOUND_IDS_LOCK:
        index = _SOUND_IDS.setdefault(sound, len(_SOUND_IDS))
    return chr(_PRIVATE_USE + index)


@lru_cache(maxsize=8192)  # the live QA check compares every segment and pattern again at each new sentence
def sound_view(text: str) -> str:
    """``text`` with each Han character replaced by one character per toneless syllable (其他字符不变).

    Same length as ``text``, so a regex written in Chinese and passed through ``sound_view`` matches
    homophones (跳楼 ~ 条楼, 好多血 ~ 好多学) at the same positions as the original.  Exact syllables, not the
    fuzzy classes of ``syllable_similarity``: by those 钱包 would sound like 抢包."""
    return "".join(_sound_char(ch) for ch in text)
