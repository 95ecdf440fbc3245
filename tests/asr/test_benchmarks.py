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


def test_eval_asr_calls_with_kb_hotwords(synthetic_calls, tmp_path):
    r = _run(["asr", "--data", str(synthetic_calls), "--limit", "1", "--kb", str(synthetic_calls / "kb.jsonl")], tmp_path)
    assert r["kind"] == "calls" and r["items"] == 2 and r["hotwords"] and r["lexicon_terms"] > 100
    assert r["cer"] < 0.35


def test_eval_diarization_pyannote_sample(shared_data, tmp_path):
    r = _run(["diarization", "--data", str(shared_data / "diarization_pyannote_sample")], tmp_path)
    assert r["der"]["mono"] < 0.15


def test_eval_streaming_single_step(synthetic_calls, tmp_path):
    r = _run(["streaming", "--data", str(synthetic_calls), "--steps", "2", "--seconds", "20"], tmp_path)
    step = r["steps"][0]
    assert step["legs"] == 2 and step["finals"] >= 2 and step["partials"] >= 2
    assert step["partial_interval_p95_s"] < 2.0
    assert step["final_latency_p50_s"] < 3.0
