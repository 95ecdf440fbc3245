"""One interface for every speech engine; each declares what it can do."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class EngineCapabilities:
    streaming: bool = False  # accepts incremental audio natively (otherwise LegStream re-decodes windows)
    partials: bool = True  # can produce interim hypotheses (cheap enough to call every second)
    partial_mode: bool = False  # ``transcribe(..., partial=True)`` decodes faster and rougher for interim text
    word_timestamps: bool = False
    confidence: bool = True  # ``Recognised.confidence`` is a real score; else it is 0.0 and nothing is dropped for it
    languages: tuple[str, ...] = ("zh",)
    sample_rates: tuple[int, ...] = (16000,)  # rates ``transcribe`` accepts; callers resample to 16 kHz


@dataclass(frozen=True)
class PreviousTextParams:
    """Which recognised text is passed on as the text said before the next utterance (a live leg's finals as
    ``Decode.prompt``; a recording's earlier turns), for the engine to condition the next decode on
    (docs/speech.md, "Previous text")."""

    max_chars: int = 400  # more than any engine's budget takes (Whisper: ``previous_text_tokens``, at most 223)
    # Text recognised below this confidence is not passed on: a misheard utterance given as context is heard
    # again (far-field speech on the real clips).  0.3 kept the synthetic calls' gain.
    min_confidence: float = 0.3

    def extend(self, previous: str, text: str, confidence: float, scored: bool) -> str:
        """``previous`` followed by ``text`` when the engine was sure enough of it (``scored``: its confidences
        are real scores), kept to ``max_chars``."""
        if not text or (scored and confidence < self.min_confidence):
            return previous
        return (previous + text)[-self.max_chars:]


@dataclass
class Recognised:
    text: str
    start_ms: int
    end_ms: int
    confidence: float = 0.0
    words: list[tuple[str, int, int]] = field(default_factory=list)


@runtime_checkable
class AsrEngine(Protocol):
    name: str
    capabilities: EngineCapabilities

    def transcribe(
        self, samples_16k: np.ndarray, *, hotwords: list[str] | None = None, prompt: str | None = None
    ) -> list[Recognised]:
        """Recognise mono float32 16 kHz audio; times are relative to its start.  ``prompt``: the text said
        before it, which an engine may condition on."""
        ...


def transcribe_batch(
    engine: AsrEngine, utterances: list[np.ndarray], *, hotwords: list[str] | None = None,
    prompts: list[str | None] | None = None, partial: bool = False,
) -> list[list[Recognised]]:
    """Recognise several utterances (each at most ~20 s), in one batch where the engine has ``transcribe_many``.
    ``prompts[i]``: the text said before utterance i (None: nothing), for engines that condition on it.
    ``partial``: interim text, decoded the fast way where the engine has one."""
    fast = {"partial": True} if partial and engine.capabilities.partial_mode else {}
    prompts = prompts or [None] * len(utterances)
    many = getattr(engine, "transcribe_many", None)
    if many is not None:
        return many(utterances, hotwords=hotwords, prompts=prompts, **fast)
    return [engine.transcribe(u, hotwords=hotwords, prompt=p, **fast) for u, p in zip(utterances, prompts)]
