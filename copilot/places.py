"""Addresses heard on the phone, resolved against the tenant's gazetteer (districts → towns and streets).

The ASR writes a place name it does not know as words that sound alike (河西街道 heard as 核心街道), so a
district, town or street is matched by sound: the syllables of the name before its suffix (区, 县, 市, 街道,
镇, 乡), compared with those just before the same suffix in what was heard (rapidfuzz on toneless pinyin).
An exact name is confirmed; a name found by sound replaces what was heard, and the field asks the agent to
confirm; an address with no known name stays as heard, unconfirmed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz

SUFFIXES = ("自治县", "街道", "区", "县", "市", "镇", "乡")


@lru_cache(maxsize=4096)
def _sound(text: str) -> str:
    return " ".join(lazy_pinyin(text))


def _split(name: str) -> tuple[str, str]:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


@dataclass(frozen=True)
class ResolvedPlace:
    text: str  # the address with known names put right
    district: str  # "" when none is known
    confidence: float
    heard: str


@dataclass(frozen=True)
class PlaceParams:
    min_similarity: float = 80.0  # rapidfuzz ratio of the syllables before the suffix
    exact: float = 0.9  # district and town said as they are written
    partial: float = 0.75  # one of them said as written, nothing put right
    by_sound: float = 0.5  # a name put right by sound: the agent confirms it
    unknown: float = 0.4  # no known name at all


class Gazetteer:
    def __init__(self, places: dict[str, list[str]], params: PlaceParams = PlaceParams()):
        self.places = places
        self.params = params
        self._district_of = {town: d for d, towns in places.items() for town in towns}

    def _find(self, text: str, names) -> tuple[str, int, int, bool] | None:
        """The best known name in ``text``: (name, start, end, said exactly)."""
        best: tuple[float, str, int, int] | None = None
        for name in names:
            if name in text:
                at = text.index(name)
                return name, at, at + len(name), True
            stem, suffix = _split(name)
            if not suffix:
                continue
            at = text.find(suffix)
            while at >= len(stem):
                window = text[at - len(stem):at]
                score = fuzz.ratio(_sound(window), _sound(stem))
                if score >= self.params.min_similarity and (best is None or score > best[0]):
                    best = (score, name, at - len(stem), at + len(suffix))
                at = text.find(suffix, at + 1)
        return None if best is None else (best[1], best[2], best[3], False)

    def resolve(self, heard: str) -> ResolvedPlace:
        p = self.params
        text, district, exact, by_sound = heard, "", 0, False
        found = self._find(text, self.places)
        if found:
            district = found[0]
            text = text[:found[1]] + found[0] + text[found[2]:]
            exact += found[3]
            by_sound |= not found[3]
        towns = self.places.get(district) if district else list(self._district_of)
        found = self._find(text, towns or [])
        if found:
            text = text[:found[1]] + found[0] + text[found[2]:]
            district = district or self._district_of[found[0]]
            exact += found[3]
            by_sound |= not found[3]
        confidence = (p.by_sound if by_sound else p.exact if exact == 2 else p.partial if exact == 1 else p.unknown)
        return ResolvedPlace(text=text, district=district, confidence=confidence, heard=heard)
