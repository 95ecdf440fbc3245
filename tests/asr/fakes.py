"""A fast stand-in engine for unit tests (the real engine is exercised in the *_real tests)."""
from __future__ import annotations

import numpy as np

from asr.engines.base import EngineCapabilities, Recognised
from asr.audio import pcm16_to_float, float_to_pcm16  # noqa: F401  (re-exported for tests)


class FakeEngine:
    """Returns one character per 0.25 s of audio; counts calls and audio seen."""

    name = "fake"
    capabilities = EngineCapabilities(streaming=False, partials=True)

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0
        self.max_input_s = 0.0
        self.batches: list[int] = []  # utterances per transcribe_many call

    def transcribe(self, samples_16k, *, hotwords=None, prompt=None):
        self.calls += 1
        seconds = len(samples_16k) / 16000
        self.seconds += seconds
        self.max_input_s = max(self.max_input_s, seconds)
        n = max(1, int(seconds * 4))
        return [Recognised(text="话" * n + "。", start_ms=0, end_ms=int(seconds * 1000), confidence=0.9)]

    def transcribe_many(self, utterances, *, hotwords=None, prompts=None):
        self.batches.append(len(utterances))
        return [self.transcribe(u) for u in utterances]


class PartialModeEngine(FakeEngine):
    """Has the fast partial mode: records the ``partial`` flag and the prompt of every utterance and answers 快
    for a fast decode, 话 for a full one, so a test can tell which decode produced an event."""

    capabilities = EngineCapabilities(streaming=False, partials=True, partial_mode=True)

    def __init__(self):
        super().__init__()
        self.flags: list[bool] = []
        self.prompts: list[str | None] = []  # the text before each utterance, as ``transcribe_many`` got it

    def transcribe(self, samples_16k, *, hotwords=None, prompt=None, partial=False):
        self.flags.append(partial)
        results = super().transcribe(samples_16k, hotwords=hotwords, prompt=prompt)
        if not partial:
            return results
        return [Recognised(r.text.replace("话", "快"), r.start_ms, r.end_ms, r.confidence) for r in results]

    def transcribe_many(self, utterances, *, hotwords=None, prompts=None, partial=False):
        self.batches.append(len(utterances))
        self.prompts += prompts or [None] * len(utterances)
        return [self.transcribe(u, hotwords=hotwords, partial=partial) for u in utterances]


def frames(samples: np.ndarray, sr: int, leg: str = "caller", call_id: str = "c1"):
    from domain.call_events import AudioFrame

    step = sr // 50
    for seq, i in enumerate(range(0, len(samples) - step + 1, step)):
        yield AudioFrame(call_id=call_id, leg=leg, sample_rate=sr, pcm=float_to_pcm16(samples[i : i + step]), seq=seq)


class SlowEchoEngine:
    """Takes 0.3 s per batch and answers with the utterance length (and after a colon the text said before it),
    so results can be matched to requests."""

    name = "slow-echo"
    capabilities = EngineCapabilities(streaming=False, partials=True)
    batch_sizes: list[int] = []

    def transcribe(self, samples_16k, *, hotwords=None, prompt=None):
        return self.transcribe_many([samples_16k], hotwords=hotwords)[0]

    def transcribe_many(self, utterances, *, hotwords=None, prompts=None):
        import time

        self.batch_sizes.append(len(utterances))
        time.sleep(0.3)
        prompts = prompts or [None] * len(utterances)
        return [[Recognised(text=f"{len(u)}" + (f":{p}" if p else ""), start_ms=0, end_ms=len(u) // 16, confidence=1.0)]
                for u, p in zip(utterances, prompts)]


def slow_echo_engine(settings) -> SlowEchoEngine:
    return SlowEchoEngine()
