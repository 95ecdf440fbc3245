"""The bridge-side speech pipeline: frames of a real recording in, transcript events out."""
from __future__ import annotations

from domain.events import CallState, TranscriptFinal, TranscriptPartial
from serving.pipeline import TranscribingSink
from tests.asr.fakes import FakeEngine, frames


class Collect:
    def __init__(self):
        self.events = []

    def publish(self, event):
        self.events.append(event)


def test_each_leg_is_transcribed_and_flushed_when_the_call_ends(shared_data):
    from asr.audio import load_audio

    audio = load_audio(shared_data / "synthetic_calls" / "audio" / "d001.flac")
    assert audio.sample_rate == 8000
    first_20s = audio.samples[:, : 20 * 8000]
    out = Collect()
    sink = TranscribingSink(out, FakeEngine(), lexicon=None)
    for leg, channel in (("agent", 0), ("caller", 1)):
        for frame in frames(first_20s[channel], 8000, leg=leg, call_id="d001"):
            sink.on_audio(frame.model_copy(update={"tenant_id": 1}))
    assert sink.live_legs == 2
    sink.on_call_event(CallState(tenant_id=1, call_id="d001", state="ended"))
    assert sink.live_legs == 0
    finals = [e for e in out.events if isinstance(e, TranscriptFinal)]
    partials = [e for e in out.events if isinstance(e, TranscriptPartial)]
    assert {e.leg for e in finals} == {"agent", "caller"}
    assert all(e.role == e.leg and e.tenant_id == 1 for e in finals)
    assert partials, "speech longer than a second yields partials"
    for leg in ("agent", "caller"):
        starts = [e.start_ms for e in finals if e.leg == leg]
        assert starts == sorted(starts)
    assert isinstance(out.events[-1], CallState) and out.events[-1].state == "ended"
