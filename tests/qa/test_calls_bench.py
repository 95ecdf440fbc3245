"""Metric helpers of `hotline eval calls`."""
from __future__ import annotations

from eval.calls_bench import der, match_answer_errors, prf


def test_der_perfect_swapped_labels_missed_and_confused():
    ref = [(0, 1000, "agent"), (1000, 2000, "caller")]
    assert der(ref, [(0, 1000, "SPK01"), (1000, 2000, "SPK00")])["der"] == 0.0  # labels are mapped optimally
    assert der(ref, [(0, 1000, "A")])["der"] == 0.5  # caller turn missed
    out = der(ref, [(0, 1500, "A"), (1500, 2000, "B")])
    assert out["confusion"] == 50 and out["der"] == 0.25
    assert der(ref, ref + [(3000, 4000, "agent")])["false_alarm"] == 100


def test_answer_error_matching_by_time_overlap():
    d = {"refs": [{"turn": 0, "start": 0.0, "end": 2.0}, {"turn": 1, "start": 2.5, "end": 6.0}],
         "answer_errors": [{"turn": 1}]}
    hit = {"evidence": {"start_ms": 3000, "end_ms": 5000}}
    miss = {"evidence": {"start_ms": 100, "end_ms": 900}}
    assert match_answer_errors(d, [hit]) == (1, 0, 0)
    assert match_answer_errors(d, [miss, hit, hit]) == (1, 2, 0)
    assert match_answer_errors(d, []) == (0, 0, 1)
    assert prf(8, 0, 0)["f1"] == 1.0 and prf(0, 0, 0)["precision"] == 1.0 and prf(1, 1, 0)["precision"] == 0.5
