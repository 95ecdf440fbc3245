"""Engines the ASR replicas of tests/ray load (``AsrService.start(..., engine_factory="tests.ray.live_engines:…")``):
the fast stand-in of the unit tests, and the same made slow enough that utterances are always in flight."""
from __future__ import annotations

import time

from tests.asr.fakes import FakeEngine


class SlowFakeEngine(FakeEngine):
    """``FakeEngine``'s answers, ``delay_s`` per batch."""

    def __init__(self, delay_s: float):
        super().__init__()
        self.delay_s = delay_s

    def transcribe_many(self, utterances, *, hotwords=None, prompts=None):
        time.sleep(self.delay_s)
        return super().transcribe_many(utterances, hotwords=hotwords, prompts=prompts)


def fake_engine(settings) -> FakeEngine:
    return FakeEngine()


def slow_fake_engine(settings) -> SlowFakeEngine:
    return SlowFakeEngine(0.2)


def slower_fake_engine(settings) -> SlowFakeEngine:
    return SlowFakeEngine(0.6)
