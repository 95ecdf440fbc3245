"""Metric helpers of `hotline eval calls`, and its cross-fitting (`--folds`)."""
from __future__ import annotations

from eval.calls_bench import call_groups, match_answer_errors, prf


def test_der_perfect_swapped_labels_missed_and_confused():
    """The one DER (pyannote.metrics, 0.25 s collar each side), as `eval calls` and `eval diarization` report it."""
    from asr.diarization import Turn
    from eval.diarization_bench import diarization_error

    def turns(*spans):
        return [Turn(a, b, who) for a, b, who in spans]

    ref = turns((0, 1000, "agent"), (1000, 2000, "caller"))
    assert diarization_error(ref, turns((0, 1000, "SPK01"), (1000, 2000, "SPK00")))["der"] == 0.0  # mapped optimally
    assert diarization_error(ref, turns((0, 1000, "A")))["der"] == 0.5  # caller turn missed
    out = diarization_error(ref, turns((0, 1500, "A"), (1500, 2000, "B")))
    assert out["confusion_s"] == 0.25 and out["der"] == 0.25  # the collar leaves 1.25-1.75 s of the caller's turn
    assert diarization_error(ref, ref + turns((3000, 4000, "agent")))["false_alarm_s"] == 1.0


def test_answer_error_matching_by_time_overlap():
    d = {"refs": [{"turn": 0, "start": 0.0, "end": 2.0}, {"turn": 1, "start": 2.5, "end": 6.0}],
         "answer_errors": [{"turn": 1}]}
    hit = {"evidence": {"start_ms": 3000, "end_ms": 5000}}
    miss = {"evidence": {"start_ms": 100, "end_ms": 900}}
    assert match_answer_errors(d, [hit]) == (1, 0, 0)
    assert match_answer_errors(d, [miss, hit, hit]) == (1, 2, 0)
    assert match_answer_errors(d, []) == (0, 0, 1)
    assert prf(8, 0, 0)["f1"] == 1.0 and prf(0, 0, 0)["precision"] == 1.0 and prf(1, 1, 0)["precision"] == 0.5


def test_call_groups_keep_calls_of_one_entry_together_and_emergencies_apart():
    from domain.folds import assign_folds

    calls = [{"police_110": False, "kb_ids": ["kb1"]}, {"police_110": False, "kb_ids": ["kb1", "kb2"]},
             {"police_110": False, "kb_ids": ["kb2"]}, {"police_110": False, "kb_ids": ["kb3"]}]
    calls += [{"police_110": True, "kb_ids": ["kb060"]} for _ in range(4)]
    fold_of = assign_folds([call_groups(d) for d in calls], 2, strata=[str(d["police_110"]) for d in calls])
    assert len({fold_of[0], fold_of[1], fold_of[2]}) == 1
    assert sorted(fold_of[4:]) == [0, 0, 1, 1]  # every fold holds emergencies


def test_scorecard_fitted_from_the_table_is_what_tune_finds(shared_data, embedder):
    """``--folds`` scores each call once per grid value and fits each fold from that table: on the same calls
    it gives ``qa.scoring.tune``'s answer, and on a subset only that subset counts."""
    from eval.calls_bench import fit_scorecard, scorecard_tables
    from qa.labelled_calls import expected_items, load_calls, metadata_of
    from qa.scorecard import default_scorecard
    from qa.scoring import tune
    from qa.transcript import normalize

    calls = load_calls(shared_data / "synthetic_calls")[:8]  # d007: a 13.5 s unannounced silence
    for d in calls:
        d["segments"] = [{"role": r["speaker"], "start": r["start"], "end": r["end"], "text": r["text"]}
                         for r in d["refs"]]
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    tables = scorecard_tables(card, calls, embedder.queries)
    assert "long_silence_ms" in tables and "rate_min_cpm" not in tables  # speech rate has no label to fit
    silence = {"long_silence_ms": tables["long_silence_ms"]}
    fitted, values = fit_scorecard(card, silence, range(len(calls)))
    direct = tune(card, "long_silence_ms", [(normalize(d["segments"]), metadata_of(d)) for d in calls],
                  [expected_items(d, card) for d in calls], embed=embedder.queries)
    assert values == {"long_silence_ms": direct["best"]} and fitted.params["long_silence_ms"].value == direct["best"]
    assert direct["best"] < 13500  # d007's silence is caught
    _, loose = fit_scorecard(card, silence, [i for i, d in enumerate(calls) if d["id"] != "d007"])
    assert loose["long_silence_ms"] == card.params["long_silence_ms"].value  # nothing to catch: the default stays


def test_eval_calls_reuses_saved_transcripts(shared_data, tmp_path):
    """--transcripts: a call whose transcript is saved there is scored from it, without running ASR."""
    import json

    from typer.testing import CliRunner

    from qa.labelled_calls import load_calls, reference_segments
    from serving.cli import app

    data = shared_data / "synthetic_calls"
    d = next(c for c in load_calls(data) if c["id"] == "d036")  # a fight in progress, put through to 110
    saved = tmp_path / "asr"
    saved.mkdir()
    segments = reference_segments(d)
    assert segments[0]["role"] == "agent" and d["compliance"]["greeting"] == "ok"
    segments[0].update(text="您好，来宾12345热线，学后化物人为您服务。")  # the work number garbled
    (saved / "d036.json").write_text(json.dumps(segments, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["eval", "calls", "--data", str(data), "--ids", "d036", "--transcripts", str(saved),
                                      "--no-der", "--json", str(out)])
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["mode"] == "asr" and r["transcripts_reused"] == 1 and "speech" not in r
    assert r["police_110"]["tp"] == 1 and r["calls"] == 1
    # the greeting the ASR misheard is not deducted: it is counted as sent to a person
    assert r["items_needing_review"] == {"items": 1, "labelled_failed": 0} and r["compliance_label_agreement"]["greeting"] == 1.0


def test_review_threshold_is_fitted_for_precision_on_the_training_calls_only():
    """``--folds`` fits the answer check's review threshold on K-1 folds: the value that keeps the labelled error
    (heard surely) deducted and sends the misheard digit (heard unsurely) to review; a fold that holds only the
    misheard one learns nothing from the other."""
    from eval.calls_bench import fit_review_threshold

    def call(conf: float, labelled: bool) -> tuple[dict, list[dict]]:
        d = {"refs": [{"turn": 0, "start": 0.0, "end": 2.0}], "answer_errors": [{"turn": 0}] if labelled else []}
        return d, [{"asr_confidence": conf, "needs_review": False, "evidence": {"start_ms": 100, "end_ms": 1900}}]

    (a, fa), (b, fb), (c, fc) = call(0.9, True), call(0.2, False), call(None, True)
    calls, flags = [a, b, c], [fa, fb, fc]
    t = fit_review_threshold(calls, flags, [0, 1, 2])
    assert 0.2 < t <= 0.9
    assert fit_review_threshold(calls, flags, [1]) == 0.0  # nothing to find there: none sent to review needlessly
