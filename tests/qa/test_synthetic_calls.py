"""The default scorecard against the labelled synthetic calls, with the real e5 embedder (reference transcripts)."""
from __future__ import annotations

import pytest

from eval.calls_bench import evaluate
from qa.labelled_calls import expected_items, load_calls, load_kb, metadata_of
from qa.answers import LexicalRetriever
from qa.answers import load_kb as qa_kb
from qa.scorecard import default_scorecard


@pytest.fixture(scope="module")
def dataset(shared_data):
    data = shared_data / "synthetic_calls"
    if not (data / "dialogues").is_dir():
        pytest.skip(f"synthetic calls not found at {data}")
    calls = load_calls(data)
    for d in calls:
        d["segments"] = [{"role": r["speaker"], "start": r["start"], "end": r["end"], "text": r["text"]}
                         for r in d["refs"]]
    return calls, load_kb(data)


@pytest.fixture(scope="module")
def embed(embedder):
    return embedder.queries  # as the live QA scorer embeds


@pytest.mark.slow
def test_reference_transcripts_meet_the_targets(dataset, embed):
    calls, kb = dataset
    report = evaluate(calls, kb, embed=embed, retrieve=LexicalRetriever(qa_kb(kb)), card=default_scorecard())
    assert report["qa_item_agreement"] >= 0.95
    assert report["answer_errors"]["error_level"]["f1"] >= 0.85
    assert report["police_110"]["recall"] == 1.0
    assert all(v >= 0.9 for v in report["compliance_label_agreement"].values())


@pytest.mark.slow
def test_tune_grid_searches_a_named_parameter(dataset):
    from qa.scoring import tune

    calls, _ = dataset
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    sample = calls[:12]  # d007 has a 13.5 s unannounced silence, d005 a 12 s announced hold
    out = tune(card, "long_silence_ms", [(d["segments"], metadata_of(d)) for d in sample],
               [expected_items(d, card) for d in sample])
    assert out["items"] == ["long_silence"] and len(out["grid"]) == 16
    assert 5000 <= out["best"] <= 13000 and out["best_agreement"] == 1.0
    worst = min(g["agreement"] for g in out["grid"])
    assert worst < 1.0  # 14 s or more misses d007
