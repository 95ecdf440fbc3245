"""The benchmark commands run end to end on a slice of the shared data and report sane numbers."""
import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _run(args, tmp_path):
    from serving.cli import app

    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["eval", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_eval_asr_kaldi_at_8k(mandarin_samples, tmp_path):
    r = _run(["asr", "--data", str(mandarin_samples), "--rate", "8000", "--limit", "3", "--no-hotwords"], tmp_path)
    assert r["items"] == 3 and r["rate"] == 8000 and not r["hotwords"]
    assert 0 <= r["cer"] < 0.3 and 0 < r["rtf"] < 2
    assert {"id", "cer", "hyp", "ref"} <= set(r["per_item"][0])
    assert r["channel"] == "G.711 μ-law, 0–4 kHz"  # a SIP trunk's channel by default


def test_eval_asr_analogue_line_channel_and_unknown_channel(mandarin_samples, tmp_path):
    from serving.cli import app

    r = _run(["asr", "--data", str(mandarin_samples), "--rate", "8000", "--channel", "pstn", "--limit", "1",
              "--no-hotwords"], tmp_path)
    assert r["channel"] == "G.711 μ-law, 300–3400 Hz" and 0 <= r["cer"] < 0.5
    bad = CliRunner().invoke(app, ["eval", "asr", "--data", str(mandarin_samples), "--channel", "gsm"])
    assert bad.exit_code != 0 and "未知信道" in bad.output


def test_eval_asr_live_path_publishes_finals_of_each_utterance(mandarin_samples, tmp_path):
    r = _run(["asr", "--data", str(mandarin_samples), "--limit", "2", "--live", "--no-hotwords"], tmp_path)
    assert r["decoding"] == "live (LegStream finals)" and r["items"] == 2
    assert all(p["hyp"].endswith("。") for p in r["per_item"]) and r["cer"] < 0.3


def test_eval_asr_with_kb_hotwords(mandarin_samples, synthetic_calls, tmp_path):
    r = _run(["asr", "--data", str(mandarin_samples), "--limit", "2", "--kb", str(synthetic_calls / "kb.jsonl")], tmp_path)
    assert r["hotwords"] and r["lexicon_terms"] > 100 and r["kb_phrases"] > 1000 and r["cer"] < 0.3


def test_call_items_follow_the_channel_map(synthetic_calls):
    from eval.asr_bench import load_items

    items, kind = load_items(synthetic_calls, 8000, limit=1)
    assert kind == "calls" and [i.id for i in items] == ["d001-left", "d001-right"]
    assert items[0].reference.startswith("您好，来宾12345") and "社保卡不见了" in items[1].reference
    assert abs(len(items[0].samples_16k) / 16000 - 118.489) < 0.01


def test_eval_diarization_pyannote_sample(shared_data, tmp_path):
    r = _run(["diarization", "--data", str(shared_data / "diarization_pyannote_sample")], tmp_path)
    assert r["der"]["mono"] < 0.15
