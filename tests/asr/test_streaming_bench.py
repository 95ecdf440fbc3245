"""`hotline eval streaming` on each audio set given: legs of calls or of real clips, CPU cost and CER of finals,
the rated load from the CPU per leg, and the load steps."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.streaming_bench import load_legs

CORPUS_CALLS = Path(__file__).resolve().parents[2] / "corpus" / "calls"


def _run(args, tmp_path):
    from serving.cli import app

    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["eval", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_clip_legs_put_the_real_clips_one_after_another(mandarin_samples):
    """Leg i starts with clip i; its turns are where the clips lie, and its reference is the text of the clips
    that end within the leg."""
    texts = dict(line.split(maxsplit=1) for line in (mandarin_samples / "text").read_text(encoding="utf-8").splitlines())
    order = [line.split()[0] for line in (mandarin_samples / "wav.scp").read_text(encoding="utf-8").splitlines()]
    legs = load_legs(mandarin_samples, 2, 20.0)
    assert [len(leg.samples) for leg in legs] == [160_000, 160_000]
    for i, leg in enumerate(legs):
        assert leg.turns[0][0] == 1.0 and all(b[0] - a[1] == pytest.approx(1.5) for a, b in zip(leg.turns, leg.turns[1:]))
        whole = [t for t in leg.turns if t[1] <= 20.0]
        assert leg.ref == "".join(texts[order[(i + k) % len(order)]] for k in range(len(whole)))
        assert leg.ref_span == (1.0, whole[-1][1])
    assert legs[0].ref != legs[1].ref


def test_call_legs_score_the_turns_wholly_inside(synthetic_calls):
    legs = load_legs(synthetic_calls, 2, 30.0)
    caller, agent = legs
    assert caller.id.startswith("d001-right") and agent.id.startswith("d001-left")
    refs = json.loads((synthetic_calls / "refs" / "d001.json").read_text(encoding="utf-8"))
    inside = [t for t in refs if t["channel"] == "right" and t["start"] - 5 >= 0.3 and t["end"] - 5 <= 30]
    assert caller.ref == "".join(t["text"] for t in inside) and "社保卡不见了" in caller.ref
    assert caller.ref_span == (inside[0]["start"] - 5, inside[-1]["end"] - 5)
    assert not agent.ref.startswith("您好"), "the agent's greeting began before the leg: not scored"


def test_corpus_calls_load_from_opus():
    legs = load_legs(CORPUS_CALLS, 1, 20.0)
    assert len(legs[0].samples) == 160_000 and legs[0].turns


def test_bad_steps_and_folders_get_a_chinese_error(tmp_path, synthetic_calls):
    from serving.cli import app

    bad = CliRunner().invoke(app, ["eval", "streaming", "--data", str(synthetic_calls), "--steps", "4,x"])
    assert bad.exit_code != 0 and "--steps 须为正整数或 rated" in bad.output
    with pytest.raises(Exception, match="需要合成通话目录"):
        load_legs(tmp_path, 1, 10.0)


@pytest.mark.slow
def test_eval_streaming_reports_each_audio_set(synthetic_calls, mandarin_samples, tmp_path):
    """Latency figures depend on machine load, so only their presence is checked; CPU cost and CER do not."""
    r = _run(["streaming", "--data", str(synthetic_calls), "--data", str(mandarin_samples), "--steps", "1",
              "--seconds", "20", "--cpu-legs", "1", "--followers", "1"], tmp_path)
    assert set(r["sets"]) == {"data/synthetic_calls", "data/mandarin_asr_samples"} and r["device"] == "cpu (int8)"
    for result in r["sets"].values():
        step = result["steps"][0]
        assert step["legs"] == 1 and step["legs_per_follower"] == [1] and step["load_average_1m_at_start"] >= 0
        assert step["finals"] >= 2 and step["partials"] >= step["finals"] and step["partials_delayed"] >= 0
        assert 0 < step["final_latency_p50_s"] < 5 and 0.5 < step["partial_interval_p50_s"] < 3
        cost = result["cpu_cost"]
        assert 0 < cost["cpu_per_audio_second"] < 1 and cost["ref_chars"] > 20 and 0 <= result["final_cer"] < 0.4
        assert result["rated_legs_per_core"] == pytest.approx(0.7 / cost["cpu_per_audio_second"], abs=0.1)
    assert r["rated_legs_per_core"] == min(s["rated_legs_per_core"] for s in r["sets"].values())
