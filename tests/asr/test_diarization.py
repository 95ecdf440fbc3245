import io

import numpy as np
import pytest

from asr.audio import Audio, load_audio, resample
from asr.diarization import Turn, assign_roles, diarize, read_rttm, speaker_embedding, write_rttm


def der(reference: list[Turn], hypothesis: list[Turn]) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def ann(turns):
        a = Annotation()
        for t in turns:
            a[Segment(t.start_ms / 1000, t.end_ms / 1000)] = t.speaker
        return a

    return DiarizationErrorRate(collar=0.5)(ann(reference), ann(hypothesis))  # 0.25 s each side


def test_rttm_roundtrip(tmp_path):
    turns = [Turn(0, 1500, "agent"), Turn(1700, 4200, "caller")]
    write_rttm(turns, "call1", tmp_path / "a.rttm")
    assert read_rttm(tmp_path / "a.rttm") == {"call1": turns}
    buf = io.StringIO()
    write_rttm(turns, "call1", buf)
    assert buf.getvalue().startswith("SPEAKER call1 1 0.000 1.500 <NA> <NA> agent")


def test_roles_from_greeting_words_and_first_speaker():
    turns = [Turn(0, 1000, "SPK01"), Turn(1200, 3000, "SPK00"), Turn(3100, 5000, "SPK01")]
    texts = {0: "喂，你好", 1: "您好，来宾12345热线，8号话务员为您服务", 2: "我想问社保卡"}
    assert assign_roles(turns, texts) == {"SPK01": "caller", "SPK00": "agent"}
    assert assign_roles(turns) == {"SPK01": "agent", "SPK00": "caller"}  # no text: the first voice answers
    assert assign_roles([Turn(0, 1, "agent"), Turn(2, 3, "caller")]) == {"agent": "agent", "caller": "caller"}


def test_roles_from_enrolled_voice():
    turns = [Turn(0, 1000, "A"), Turn(1000, 2000, "B")]
    agent = np.array([1.0, 0.0])
    prints = {"A": np.array([0.1, 0.99]), "B": np.array([0.95, 0.3])}
    assert assign_roles(turns, voiceprints=prints, agent_voice=agent) == {"A": "caller", "B": "agent"}


def test_stereo_call_is_split_by_channel(synthetic_calls):
    audio = load_audio(synthetic_calls / "audio" / "d001.flac")
    reference = read_rttm(synthetic_calls / "refs" / "d001.rttm")["d001"]
    hypothesis = diarize(audio)
    assert {t.speaker for t in hypothesis} == {"agent", "caller"}
    assert der(reference, hypothesis) < 0.10


@pytest.mark.slow
def test_mono_two_speaker_sample(shared_data):
    folder = shared_data / "diarization_pyannote_sample"
    audio = load_audio(folder / "sample.wav")
    hypothesis = diarize(audio)
    assert len({t.speaker for t in hypothesis}) == 2
    assert der(read_rttm(folder / "sample.rttm")["sample"], hypothesis) < 0.15


@pytest.mark.slow
def test_mono_mix_of_a_call_and_enrolled_agent_voice(synthetic_calls):
    stereo = load_audio(synthetic_calls / "audio" / "d001.flac")
    mono = Audio(stereo.samples.mean(axis=0, keepdims=True)[:, : int(39.3 * 8000)], 8000)
    reference = [t for t in read_rttm(synthetic_calls / "refs" / "d001.rttm")["d001"] if t.end_ms <= 39_300]
    hypothesis = diarize(mono)
    assert der(reference, hypothesis) < 0.15
    # enrol the agent from the agent channel, then name the mono clusters by voice
    from asr.diarization import embed_windows

    agent_voice = speaker_embedding(stereo.samples[0][60 * 8000 : 90 * 8000], 8000)
    x16 = resample(mono.samples[0], 8000, 16000)
    prints = {}
    for spk in {t.speaker for t in hypothesis}:
        windows = [(t.start_ms * 16, t.end_ms * 16) for t in hypothesis if t.speaker == spk and t.end_ms - t.start_ms > 1000]
        v = embed_windows(x16, windows[:4]).mean(axis=0)
        prints[spk] = v / np.linalg.norm(v)
    roles = assign_roles(hypothesis, voiceprints=prints, agent_voice=agent_voice)
    agent_spk = next(s for s, r in roles.items() if r == "agent")
    agent_time = sum(min(t.end_ms, r.end_ms) - max(t.start_ms, r.start_ms)
                     for t in hypothesis if t.speaker == agent_spk
                     for r in reference if r.speaker == "agent" and min(t.end_ms, r.end_ms) > max(t.start_ms, r.start_ms))
    assert agent_time > 0.7 * sum(t.end_ms - t.start_ms for t in hypothesis if t.speaker == agent_spk)
