"""Uploaded recordings with the real ASR engine: stereo split by channel, mono diarized."""
from __future__ import annotations

import numpy as np
import pytest

from qa.scorecard import default_scorecard
from qa.scoring import score_call


@pytest.fixture(scope="module")
def engine():
    from asr.engines import create_asr_engine
    from domain.settings import get_settings

    return create_asr_engine(get_settings(), offline=True)


@pytest.fixture(scope="module")
def d020(shared_data):
    from asr.audio import load_audio

    path = shared_data / "synthetic_calls" / "audio" / "d020.flac"
    if not path.is_file():
        pytest.skip(f"synthetic call audio not found at {path}")
    return load_audio(path)


@pytest.mark.slow
def test_stereo_recording_is_scored_with_evidence(engine, d020, monkeypatch):
    """Each turn is decoded after the conversation so far, both parties (docs/speech.md, "Previous text"); the
    agent's forbidden wording is found even where the context makes Whisper write a homophone of it."""
    from asr.audio import Audio
    from qa.recording import transcribe_recording

    many, prompts = engine.transcribe_many, []

    def spy(utterances, **kw):
        prompts.extend(kw.get("prompts") or [None] * len(utterances))
        return many(utterances, **kw)

    monkeypatch.setattr(engine, "transcribe_many", spy)
    head = Audio(d020.samples[:, : 40 * d020.sample_rate], d020.sample_rate)  # keeps the tests short
    tr = transcribe_recording(head, engine)
    assert tr.mode == "stereo" and tr.segments[0]["role"] == "agent"
    assert prompts[0] is None and len(prompts) == len(tr.turns)
    said = [s["text"] for s in tr.segments]
    assert prompts[len(said) - 1] == "".join(said[:-1])  # caller's and agent's turns alike (all confident here)
    assert {s["role"] for s in tr.segments[:-1]} == {"agent", "caller"}
    res = score_call(tr.segments, {"duration_ms": 40000}, default_scorecard(), None)
    forbidden = res.item("forbidden_phrases")  # d020: "这个不归我们管" at 21.6–26.0 s
    assert not forbidden.passed and 20000 <= forbidden.evidence[0]["start_ms"] <= 23000
    assert res.item("greeting").passed and res.serious_service_violation


@pytest.mark.slow
def test_mono_recording_is_diarized_and_roles_assigned(engine, d020):
    from asr.audio import Audio
    from qa.recording import transcribe_recording

    head = d020.samples[:, : 30 * d020.sample_rate]
    mono = Audio(head.mean(axis=0, keepdims=True).astype(np.float32), d020.sample_rate)
    tr = transcribe_recording(mono, engine)
    assert tr.mode == "mono"
    roles = {s["role"] for s in tr.segments}
    assert roles == {"agent", "caller"}
    first_agent = next(s for s in tr.segments if s["role"] == "agent")
    assert first_agent["start_ms"] < 2000 and "服务" in first_agent["text"]


def test_turn_audio_reaches_into_the_silence_around_it_but_not_into_a_neighbour():
    """The VAD's onset lags a soft start (您好), so the ASR gets a little more audio than the turn."""
    from asr.diarization import Turn
    from qa.recording import _asr_span

    turns = [Turn(1000, 3000, "agent"), Turn(3050, 5000, "caller"), Turn(5100, 7000, "agent")]
    assert _asr_span(turns, 0, stereo=True, pad_ms=200) == (800, 3200)  # the caller is on the other channel
    assert _asr_span(turns, 2, stereo=True, pad_ms=200) == (4900, 7200)
    assert _asr_span(turns, 0, stereo=False, pad_ms=200) == (800, 3050)  # a mono mix: the caller's audio
    assert _asr_span(turns, 1, stereo=False, pad_ms=200) == (3000, 5100)
