"""Retrieval from speech, with the real ASR: `eval retrieval --from-audio` and `kb train-ranker --spoken`."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

QUERIES = 8


@pytest.fixture(scope="module")
def synthetic_calls(shared_data):
    return shared_data / "synthetic_calls"


@pytest.fixture(scope="module")
def spoken_queries(synthetic_calls, tmp_path_factory):
    """The first substantive caller turn of labelled synthetic calls, cut from the recordings."""
    from eval.data.make_call_queries import main as make_call_queries

    out = tmp_path_factory.mktemp("spoken")
    assert make_call_queries(synthetic_calls, out) >= QUERIES
    path = out / "queries.jsonl"
    rows = path.read_text(encoding="utf-8").splitlines()[:QUERIES]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _cli(args):
    from serving.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_eval_retrieval_from_audio_transcribes_and_ranks_as_speech(synthetic_calls, spoken_queries, tmp_path):
    out = tmp_path / "r.json"
    _cli(["eval", "retrieval", "--kb", str(synthetic_calls / "kb.jsonl"), "--queries", str(spoken_queries),
          "--from-audio", "--json", str(out)])
    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["from_audio"] and r["n_queries"] == QUERIES and r["asr_seconds"] > 0
    heard = [t["text"] for t in r["transcripts"]]
    assert all(heard) and heard != [json.loads(x)["query"] for x in spoken_queries.read_text().splitlines()]
    assert r["recall@3"] >= 0.6 and r["mrr"] >= 0.5


def test_from_audio_without_audio_is_a_clear_error(synthetic_calls, tmp_path):
    from domain.errors import AppError
    from serving.cli import app

    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "社保卡丢了", "expected_id": "x"}, ensure_ascii=False) + "\n")
    result = CliRunner().invoke(app, ["eval", "retrieval", "--kb", str(synthetic_calls / "kb.jsonl"),
                                      "--queries", str(queries), "--from-audio"])
    assert isinstance(result.exception, AppError) and "audio 字段" in str(result.exception)


def test_train_ranker_for_speech_from_asr_transcripts(synthetic_calls, spoken_queries, tmp_path):
    from knowledge.retrieval import FEATURES, Ranker

    text_queries = tmp_path / "text.jsonl"
    text_queries.write_text("".join(json.dumps({k: json.loads(x)[k] for k in ("query", "expected_id")},
                                               ensure_ascii=False) + "\n"
                                    for x in spoken_queries.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    out = tmp_path / "ranker_speech.json"
    _cli(["kb", "train-ranker", "--kb", str(synthetic_calls / "kb.jsonl"), "--queries", str(text_queries),
          "--spoken", str(spoken_queries), "--out", str(out)])
    ranker = Ranker.load(out)
    assert len(ranker.weights) == len(FEATURES) and "ASR transcripts" in ranker.trained_on
    assert f"({2 * QUERIES} queries)" in ranker.trained_on  # the written queries plus what the ASR heard of them
