"""The transcript as QA sees it: ordered segments with a role, times in ms and text.

Segments come from the database (``TranscriptSegment`` rows), from ``TranscriptFinal``
events, from reference files (``refs/*.json``, seconds) or from plain dicts; ``normalize``
turns any of them into ``Segment`` objects sorted by start time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from asr.numbers import numeral_value, spoken_digits

ROLES = ("agent", "caller")

_WORK_NO = re.compile(r"([一二三四五六七八九十]{1,3})(?=号)")
_PUNCT = re.compile(r"[\s，。！？、；：,.!?;:“”\"'（）()《》…—\-]")


def normalize_text(text: str) -> str:
    """Matching form of spoken text: digit runs as Arabic digits (幺二三四五 → 12345, 十五号 → 15号)."""
    def work_no(m: re.Match) -> str:
        value = numeral_value(m.group(1))
        return m.group(1) if value is None else str(int(value))

    return _WORK_NO.sub(work_no, spoken_digits(text, join_separated=True))


def strip_punct(text: str) -> str:
    return _PUNCT.sub("", text)


def count_chars(text: str) -> int:
    """Spoken characters (punctuation and spaces removed), the unit of speech rate."""
    return len(strip_punct(text))


@dataclass(eq=False)
class Segment:
    role: str
    start_ms: int
    end_ms: int
    text: str
    idx: int = 0
    norm: str = field(default="", repr=False)
    confidence: float | None = None  # the ASR's confidence in this text; None for typed or unscored text

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown speaker role {self.role!r}; expected agent or caller")
        if self.end_ms < self.start_ms:
            raise ValueError(f"segment ends before it starts: {self.start_ms}..{self.end_ms}")
        self.norm = normalize_text(self.text)

    def evidence(self, **extra: Any) -> dict:
        out = {"start_ms": self.start_ms, "end_ms": self.end_ms, "role": self.role, "text": self.text, **extra}
        if self.confidence is not None:
            out["asr_confidence"] = round(self.confidence, 3)
        return out


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def normalize(segments: Iterable[Any], merge_gap_ms: int = 0) -> list[Segment]:
    """Accept dicts/rows/events with role|speaker|speaker_role and start_ms/end_ms or start/end (s).

    Consecutive segments of one role less than ``merge_gap_ms`` apart become one turn (ASR/VAD
    splits a sentence at its pauses; QA rules reason about turns).
    """
    out = []
    for raw in segments:
        if isinstance(raw, Segment):
            out.append(Segment(raw.role, raw.start_ms, raw.end_ms, raw.text, confidence=raw.confidence))
            continue
        role = _get(raw, "role", "speaker_role", "speaker")
        start_ms = _get(raw, "start_ms")
        end_ms = _get(raw, "end_ms")
        if start_ms is None:
            start, end = _get(raw, "start"), _get(raw, "end")
            if start is None or end is None:
                raise ValueError(f"segment without times: {raw!r}")
            start_ms, end_ms = round(float(start) * 1000), round(float(end) * 1000)
        text = _get(raw, "text") or ""
        if not text.strip():
            continue
        # an engine that gives no score stores 0.0 (asr.engines.base.Recognised): that is "unknown", not "unsure"
        confidence = float(_get(raw, "confidence") or 0.0) or None
        out.append(Segment(str(role), int(start_ms), int(end_ms), text.strip(), confidence=confidence))
    out.sort(key=lambda s: (s.start_ms, s.end_ms))
    merged: list[Segment] = []
    for seg in out:
        prev = merged[-1] if merged else None
        if prev and merge_gap_ms and prev.role == seg.role and 0 <= seg.start_ms - prev.end_ms < merge_gap_ms:
            sep = "" if _PUNCT.match(prev.text[-1]) else "，"
            known = [c for c in (prev.confidence, seg.confidence) if c is not None]
            merged[-1] = Segment(prev.role, prev.start_ms, max(prev.end_ms, seg.end_ms), prev.text + sep + seg.text,
                                 confidence=min(known) if known else None)
        else:
            merged.append(seg)
    for i, seg in enumerate(merged):
        seg.idx = i
    return merged
