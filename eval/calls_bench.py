"""`hotline eval calls`: the offline call pipeline against a labelled synthetic-calls folder.

Layout (see shared/data/synthetic_calls/README.md): ``kb.jsonl``, ``taxonomy.json``,
``dialogues/<id>.json`` (labels), ``audio/<id>.flac`` (stereo, left agent / right caller),
``refs/<id>.json`` (reference segments).  ``--from-reference`` starts from the reference
segments so QA quality can be told apart from ASR errors.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import typer

from domain.json_output import emit
from qa.labelled_calls import (COMPLIANCE_LABELS, LABEL_PASS, audio_path, expected_items, load_calls, load_kb,
                               metadata_of, reference_segments)


def greeting_class(result, segments) -> str:
    """ok / nonstandard / missing, from the greeting item and who spoke first."""
    if result.item("greeting").passed:
        return "ok"
    return "missing" if segments and segments[0].role == "caller" else "nonstandard"


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else (1.0 if not fn else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "tp": tp, "fp": fp, "fn": fn}


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def match_answer_errors(d: dict, predicted: list[dict]) -> tuple[int, int, int]:
    """An error matches a labelled one when its evidence overlaps the labelled turn in time."""
    spans = {r["turn"]: (r["start"] * 1000, r["end"] * 1000) for r in d["refs"]}
    gold = [spans[e["turn"]] for e in d["answer_errors"]]
    used, tp = set(), 0
    for e in predicted:
        span = (e["evidence"]["start_ms"], e["evidence"]["end_ms"])
        hit = next((i for i, g in enumerate(gold) if i not in used and _overlaps(span, g)), None)
        if hit is not None:
            used.add(hit)
            tp += 1
    return tp, len(predicted) - tp, len(gold) - len(used)


def kb_recall_at_3(d: dict, retrieve) -> float:
    query = "".join(s["text"] for s in d["segments"] if s["role"] == "caller")[:200]
    got = {str(h[0]) for h in retrieve(query, 3)}
    return len(got & set(d["kb_ids"])) / len(d["kb_ids"]) if d["kb_ids"] else 1.0


def evaluate(calls: list[dict], kb: list[dict], *, embed, retrieve, card, classify=None,
             cards: dict | None = None, review_below: dict[str, float] | None = None) -> dict:
    """Score every call (``call["segments"]`` already filled) and compare with the labels; ``cards``: a
    scorecard per call id (each fold's fitted one), else ``card`` for all; ``review_below``: likewise the answer
    check's ``review_below_confidence`` per call id; ``classify(text)``: the ticket classifier, for the category
    and for the scorecard's emergency rule (the live copilot's 110 detector)."""
    from copilot.processor import CopilotParams, category_text, conversation
    from qa.answers import AnswerChecker, AnswerParams
    from qa.scoring import score_call
    from qa.transcript import normalize

    checkers: dict[float | None, AnswerChecker] = {None: AnswerChecker(kb, retrieve)}

    def checker_for(call_id: str) -> AnswerChecker:
        t = review_below.get(call_id) if review_below else None
        if t not in checkers:
            checkers[t] = AnswerChecker(kb, retrieve, replace(AnswerParams(), review_below_confidence=t))
        return checkers[t]
    agree: dict[str, list[bool]] = {k: [] for k in (*COMPLIANCE_LABELS, "violation")}
    items: dict[str, list[bool]] = {}
    err_tp = err_fp = err_fn = 0
    call_tp = call_fp = call_fn = 0
    p110 = {"tp": 0, "fp": 0, "fn": 0}
    transfer_ok: list[bool] = []
    handling_ok: list[bool] = []
    review = {"flags": 0, "on_labelled_errors": 0}
    items_review = {"items": 0, "labelled_failed": 0}
    cat_l1: list[bool] = []
    cat_full: list[bool] = []
    recall3: list[float] = []
    per_call = []
    t0, c0 = time.perf_counter(), time.process_time()
    for d in calls:
        segs = normalize(d["segments"])
        call_card = cards[d["id"]] if cards else card
        res = score_call(segs, metadata_of(d), call_card, checker_for(d["id"]), embed=embed, categorize=classify)
        exp = expected_items(d, call_card)
        reviewable = {i.code for i in call_card.items if i.review_if is not None}
        for code, want in exp.items():
            items.setdefault(code, []).append(res.item(code).passed == want)
            if res.item(code).needs_review and code in reviewable:
                items_review["items"] += 1
                items_review["labelled_failed"] += not want
        mapped = {i.label: i.code for i in call_card.items if i.label}
        for label in COMPLIANCE_LABELS:
            if label == "greeting":
                agree[label].append(greeting_class(res, segs) == d["compliance"]["greeting"])
            elif label in mapped:
                agree[label].append(res.item(mapped[label]).passed == LABEL_PASS[label](d))
        predicted_violation = any(not res.item(mapped[lb]).passed for lb in COMPLIANCE_LABELS if lb in mapped)
        agree["violation"].append(predicted_violation == d["compliance"]["violation"])
        tp, fp, fn = match_answer_errors(d, res.answer_errors)
        err_tp, err_fp, err_fn = err_tp + tp, err_fp + fp, err_fn + fn
        flagged, gold = bool(res.answer_errors), not d["answer_accurate"]
        call_tp += flagged and gold
        call_fp += flagged and not gold
        call_fn += gold and not flagged
        item110 = next((i for i in res.items if i.label == "transferred_110"), None)
        detected = bool(item110 and item110.applicable)
        key = "tp" if detected and d["police_110"] else "fp" if detected else "fn" if d["police_110"] else None
        if key:
            p110[key] += 1
        if d["police_110"] and item110 is not None:
            transfer_ok.append(item110.passed == bool(d["transferred_110"]))
            if d.get("police_110_handling"):
                handling_ok.append(item110.handling == d["police_110_handling"])
        review["flags"] += len(res.uncertain_answer_errors)
        review["on_labelled_errors"] += match_answer_errors(d, res.uncertain_answer_errors)[0]
        if classify:
            cat = classify(category_text(conversation((s.role, s.text) for s in segs), CopilotParams().category_chars)).path or ""
            cat_l1.append(cat.split("/")[0] == d["category"].split("/")[0])
            cat_full.append(cat == d["category"])
        recall3.append(kb_recall_at_3(d, retrieve))
        per_call.append({"id": d["id"], "score": res.score,
                         "failed": [i.code for i in res.failed()],
                         "expected_failed": sorted(k for k, v in exp.items() if not v),
                         "answer_errors": [{k: e[k] for k in ("kb_id", "error_type", "quote", "severity")}
                                           for e in res.answer_errors]})
    all_items = [x for v in items.values() for x in v]
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    return {
        "calls": len(calls),
        "qa_item_agreement": mean(all_items),
        "item_agreement": {k: mean(v) for k, v in items.items()},
        "compliance_label_agreement": {k: mean(v) for k, v in agree.items()},
        "answer_errors": {"error_level": prf(err_tp, err_fp, err_fn), "call_level": prf(call_tp, call_fp, call_fn)},
        # errors in speech the ASR was unsure of go to a person ("needs review") and are not counted above
        "answer_errors_needing_review": review,
        # compliance items whose failure the ASR may have caused (scorecard review_if): not deducted, sent to a person
        "items_needing_review": items_review,
        "police_110": {**prf(p110["tp"], p110["fp"], p110["fn"]), "transfer_check_agreement": mean(transfer_ok),
                       "handling_agreement": mean(handling_ok)},
        "category_accuracy": {"level1": mean(cat_l1), "full_path": mean(cat_full)} if classify else None,
        "kb_recall_at_3": mean(recall3),
        "qa_seconds": round(time.perf_counter() - t0, 2),
        "qa_cpu_seconds": round(time.process_time() - c0, 2),  # scoring + retrieval + category + 110, all calls
        "per_call": per_call,
    }


def call_groups(d: dict) -> list[str]:
    """A call's fold group: the KB entries it answers from, so calls about one entry share a fold.  An
    emergency is its own group: its subject is the incident, and every one cites the 110-transfer entry."""
    return [] if d["police_110"] else [str(k) for k in d.get("kb_ids") or []]


def scorecard_tables(card, calls: list[dict], embed) -> dict:
    """Per scorecard parameter that labelled items use and that has a grid: ``qa.scoring.agreement_table`` over
    ``calls`` (each call scored once per grid value, whichever folds are fitted from it)."""
    from qa.scoring import agreement_table, items_using
    from qa.transcript import normalize

    expected = [expected_items(d, card) for d in calls]
    labelled = {code for e in expected for code in e}
    scored = [(normalize(d["segments"]), metadata_of(d)) for d in calls]
    return {name: agreement_table(card, name, scored, expected, embed=embed) for name, spec in card.params.items()
            if set(items_using(card, name)) & labelled
            and spec.min is not None and spec.max is not None and spec.step}


def fit_scorecard(card, tables: dict, rows) -> tuple[Any, dict]:
    """The scorecard with each tabled parameter set to its best value on the calls ``rows`` (one parameter at a
    time from the card's values, as ``hotline qa tune`` does); returns it and the fitted values."""
    from qa.scoring import best_value

    values = {name: best_value(card, name, codes, table, rows)["best"] for name, (codes, table) in tables.items()}
    return card.with_params(values), values


REVIEW_GRID = tuple(round(0.05 * i, 2) for i in range(19))  # review_below_confidence: 0.0 (none) … 0.9
REVIEW_BETA = 0.5  # fitted for F0.5 of the deducted errors: a false accusation costs more than an error left to review


def answer_flags(calls: list[dict], kb: list[dict], retrieve) -> list[list[dict]]:
    """Every call's answer-error flags before any goes to review (each with the ASR confidence of its words)."""
    from qa.answers import AnswerChecker, AnswerParams
    from qa.transcript import normalize

    checker = AnswerChecker(kb, retrieve, replace(AnswerParams(), review_below_confidence=0.0))
    return [[e.to_dict() for e in checker.check(normalize(d["segments"]))] for d in calls]


def fit_review_threshold(calls: list[dict], flags: list[list[dict]], rows) -> float:
    """The ``review_below_confidence`` of ``REVIEW_GRID`` whose deducted errors score the best F0.5 on the calls
    ``rows`` (ties: the lowest, which sends least to review)."""
    def f_beta(t: float) -> float:
        tp = fp = fn = 0
        for i in rows:
            kept = [e for e in flags[i] if not e["needs_review"]  # sent to review by a rule (a misheard number)
                    and (e["asr_confidence"] is None or e["asr_confidence"] >= t)]
            a, b, c = match_answer_errors(calls[i], kept)
            tp, fp, fn = tp + a, fp + b, fn + c
        b2 = REVIEW_BETA ** 2
        return (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp) if tp else 0.0

    return max(REVIEW_GRID, key=lambda t: (f_beta(t), -t))


def cross_fitted(calls: list[dict], folds: int, seed: int, evaluate_with: Callable[..., dict], card, embed,
                 flags: list[list[dict]]) -> dict:
    """``--folds``: the scorecard parameters and the answer check's review threshold fitted on all calls (in
    sample) and on K-1 folds for each held-out fold (out of fold), each scored by ``evaluate_with(card=...,
    cards=..., review_below=...)``; ``flags``: ``answer_flags`` of the calls."""
    from domain.folds import assign_folds, describe, splits

    fold_of = assign_folds([call_groups(d) for d in calls], folds, seed, strata=[str(d["police_110"]) for d in calls])
    tables = scorecard_tables(card, calls, embed)
    whole, whole_values = fit_scorecard(card, tables, range(len(calls)))
    whole_values["review_below_confidence"] = fit_review_threshold(calls, flags, range(len(calls)))
    cards, review_below, per_fold = {}, {}, []
    for train, test in splits(fold_of):
        fitted, values = fit_scorecard(card, tables, train)
        values["review_below_confidence"] = fit_review_threshold(calls, flags, train)
        per_fold.append(values)
        cards.update({calls[i]["id"]: fitted for i in test})
        review_below.update({calls[i]["id"]: values["review_below_confidence"] for i in test})

    def figures(**kw) -> dict:
        out = evaluate_with(**kw)
        out.pop("per_call")
        return out

    return {
        "folds": {**describe(fold_of, seed, "KB entries of the call (an emergency call alone), emergencies spread "
                                            "over the folds"),
                  "fitted_values_per_fold": per_fold},
        "fitted": [f"scorecard parameters used by labelled items, grid-searched one at a time (qa.scoring.tune): "
                   f"{', '.join(k for k in whole_values if k != 'review_below_confidence')}",
                   f"the answer check's review_below_confidence, for F{REVIEW_BETA} of deducted errors"],
        "not_fitted_here": not_fitted_here(),
        "in_sample": {"fitted_values": whole_values,
                      **figures(card=whole, review_below={d["id"]: whole_values["review_below_confidence"]
                                                          for d in calls})},
        "out_of_fold": figures(card=card, cards=cards, review_below=review_below),
    }


def not_fitted_here() -> dict:
    """What the copilot and QA use that ``--folds`` does not refit, and what each was fitted on (figures that
    use one are out of fold only if its training data holds none of these calls)."""
    from copilot.category import load_category_model
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder
    from knowledge.retrieval import RANKER_PATH, SPEECH_RANKER_PATH, Ranker

    settings = get_settings()
    model = load_category_model(configured_embedder(settings), settings.category_model_path, settings.data_dir)
    return {
        "category_model": model.trained_on,
        "speech_ranker": Ranker.load(SPEECH_RANKER_PATH).trained_on,
        "typed_ranker": Ranker.load(RANKER_PATH).trained_on,
        "rules": "110 alert rules, QA rules and answer-check patterns are written by hand (copilot.alerts, "
                 "qa/scorecards, qa.answers): nothing in them is fitted to labelled calls by a program",
    }


def _tools(kb: list[dict], lexical: bool, spoken: bool) -> tuple[Any, Any, str]:
    """(embed, retrieve, retrieval name): the knowledge helper's embedder and hybrid index, ranking with its
    ranker for ASR transcripts when ``spoken`` (as QA scoring in the running system does).

    Falls back to ``qa.answers.LexicalRetriever`` when asked (``--lexical``) or when the hybrid
    index cannot be built; the report names the retrieval actually used and why.
    """
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder
    from qa.answers import LexicalRetriever, load_kb as qa_kb

    embedder = configured_embedder(get_settings())
    lexical_retrieve = LexicalRetriever(qa_kb(kb))
    if lexical:
        return embedder.queries, lexical_retrieve, "qa.answers.LexicalRetriever"
    try:
        from knowledge.retrieval import HybridIndex, KBDoc

        index = HybridIndex(embedder)
        index.add([KBDoc(id=e["id"], title=e["question"], body=e["answer"], department=e.get("department", ""),
                         keywords=tuple(e.get("keywords", ())), category=e.get("category", "")) for e in kb])
    except (ImportError, OSError) as exc:
        return embedder.queries, lexical_retrieve, f"qa.answers.LexicalRetriever (hybrid index unavailable: {exc})"

    def retrieve(query: str, k: int) -> list[tuple[str, float]]:
        return [(str(h.id), h.score) for h in index.search(query, k, spoken=spoken).hits]

    return embedder.queries, retrieve, f"knowledge.retrieval.HybridIndex ({'spoken' if spoken else 'typed'} ranker)"


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("calls")
    def calls_cmd(
        data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="合成通话数据目录"),
        from_reference: bool = typer.Option(False, "--from-reference", help="从参考转写开始（不跑 ASR）"),
        json_out: Path | None = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
        limit: int = typer.Option(0, help="只评前 N 通（0 = 全部）"),
        ids: str = typer.Option("", help="只评这些通话（逗号分隔，如 d004,d020）"),
        lexical: bool = typer.Option(False, "--lexical", help="用内置字符二元组检索代替知识库混合检索"),
        no_der: bool = typer.Option(False, "--no-der", help="跳过单声道混音的说话人分离（DER）"),
        folds: int = typer.Option(0, "--folds", help="K 折：评分表参数在 K-1 折上拟合、在留出折上评测（K ≥ 2；0 = 不做）"),
        seed: int = typer.Option(12345, help="分折随机种子"),
        cpus: int = typer.Option(0, help="本地 Ray 使用的核数（0 = 全部；已设 HOTLINE_RAY_ADDRESS 时用整个集群）"),
        transcripts: Path | None = typer.Option(
            None, "--transcripts", file_okay=False,
            help="ASR 转写目录：已有 <通话>.json 的通话直接读取（不再识别），其余识别后写入，供重复评测"),
    ) -> None:
        """整条离线流水线（ASR、分离、分类、知识匹配、质检、110）对照标注评测。"""
        import qa.scoring  # noqa: F401 - load the QA code now, not after minutes of ASR
        from qa.scorecard import default_scorecard

        started = time.perf_counter()
        calls = load_calls(data)
        if ids:
            wanted = {i.strip() for i in ids.split(",") if i.strip()}
            calls = [d for d in calls if d["id"] in wanted]
        calls = calls[: limit or None]
        kb = load_kb(data)
        embed, retrieve, retrieval = _tools(kb, lexical, spoken=not from_reference)
        result: dict[str, Any] = {"benchmark": "calls", "data": str(data), "mode": "reference" if from_reference else "asr",
                                  "retrieval": retrieval}
        if from_reference:
            for d in calls:
                d["segments"] = reference_segments(d)
        else:
            todo = calls
            if transcripts:
                for d in calls:
                    if (saved := transcripts / f"{d['id']}.json").exists():
                        d["segments"] = json.loads(saved.read_text(encoding="utf-8"))
                todo = [d for d in calls if "segments" not in d]
                result["transcripts_reused"] = len(calls) - len(todo)
            if todo:  # speech figures (CER, DER, cost) are those of the calls recognised in this run
                result["speech"] = transcribe_calls(todo, data, kb, mono_der=not no_der, cpus=cpus)
            if transcripts:
                transcripts.mkdir(parents=True, exist_ok=True)
                for d in todo:
                    (transcripts / f"{d['id']}.json").write_text(json.dumps(d["segments"], ensure_ascii=False),
                                                                 encoding="utf-8")
        classify = _ticket_classifier()
        result["police_detector"] = "copilot.alerts.AlertDetector (scorecard op emergency)" + (
            " with the ticket classifier" if classify else "")
        card = default_scorecard()

        def evaluate_with(**kw) -> dict:
            return evaluate(calls, kb, embed=embed, retrieve=retrieve, classify=classify, **kw)

        result.update(evaluate_with(card=card))
        result["cost"] = batch_cost(result, time.perf_counter() - started)
        if folds:
            result.update(cross_fitted(calls, folds, seed, evaluate_with, card, embed, answer_flags(calls, kb, retrieve)))
        emit(result, json_out)


def transcribe_calls(calls: list[dict], data: Path, kb: list[dict], *, mono_der: bool = True,
                     cpus: int = 0) -> dict:
    """ASR on each channel (filling ``call["segments"]``) and diarization of the mono mix, one Ray task per call
    over the cluster (``qa.batch``; ``cpus`` limits a local Ray); CER, DER, CPU seconds per call-second."""
    from asr.diarization import Turn
    from asr.hotwords import Lexicon
    from asr.text import edit_distance, normalise_for_cer
    from eval.diarization_bench import diarization_error
    from demo import demo_settings
    from domain.settings import get_settings
    from qa import batch

    settings = get_settings()
    lexicon = Lexicon.from_kb(((e["question"], e["answer"]) for e in kb),
                              base=demo_settings().lexicon.base_terms)  # the demo tenant's calls
    by_id = {d["id"]: d for d in calls}
    errors = chars = 0
    asr_cpu = audio_s = der_cpu = task_wall = 0.0
    der_sum = {"missed_s": 0.0, "false_alarm_s": 0.0, "confusion_s": 0.0, "reference_s": 0.0}
    per_call, failed, nodes, engines = [], [], set(), set()
    t0 = time.perf_counter()
    jobs = [batch.Job(d["id"], str(audio_path(data, d).resolve())) for d in calls]
    outcomes = batch.run(jobs, settings, lexicon=lexicon, mono_diarization=mono_der, num_cpus=cpus or None)
    for outcome in batch.track(outcomes, len(jobs), "识别与分离"):
        d = by_id[outcome.key]
        if not outcome.ok:
            failed.append({"id": d["id"], "error": outcome.error})
            d["segments"] = []
            continue
        nodes.add(outcome.node_id)
        engines.add(outcome.engine)
        asr_cpu, der_cpu = asr_cpu + outcome.asr_cpu_s, der_cpu + outcome.mono_cpu_s
        audio_s, task_wall = audio_s + outcome.audio_s, task_wall + outcome.wall_s
        d["segments"] = outcome.segments
        call_err = call_chars = 0
        for role in ("agent", "caller"):
            ref = normalise_for_cer("".join(r["text"] for r in d["refs"] if r["speaker"] == role))
            hyp = normalise_for_cer("".join(s["text"] for s in outcome.segments if s["role"] == role))
            call_err, call_chars = call_err + edit_distance(ref, hyp), call_chars + len(ref)
        errors, chars = errors + call_err, chars + call_chars
        row = {"id": d["id"], "cer": round(call_err / max(call_chars, 1), 4)}
        if mono_der:
            ref_turns = [Turn(round(r["start"] * 1000), round(r["end"] * 1000), r["speaker"]) for r in d["refs"]]
            one = diarization_error(ref_turns, outcome.mono_turns)
            for k in der_sum:
                der_sum[k] = round(der_sum[k] + one[k], 3)
            row["der"] = one["der"]
        per_call.append(row)
    wall = time.perf_counter() - t0
    cores = batch.cpu_count()
    # CPU seconds of the tasks per audio second (robust when other jobs share the cores), and the wall time of
    # the whole batch on the cluster's cores
    out = {"engine": ", ".join(sorted(engines)) or settings.asr_engine, "cer": round(errors / max(chars, 1), 4), "audio_seconds": round(audio_s, 1),
           "wall_seconds": round(wall, 1), "cores": cores, "nodes": len(nodes),
           "asr_cpu_seconds": round(asr_cpu, 1), "task_wall_seconds": round(task_wall, 1),
           "rtf_per_core_wall": round(wall / max(audio_s, 1e-9) * cores, 4),
           "rtf_per_core_cpu": round(asr_cpu / max(audio_s, 1e-9), 4),
           "failed": failed, "per_call": sorted(per_call, key=lambda r: r["id"])}
    if mono_der:
        out["der_mono_mix"] = round((der_sum["missed_s"] + der_sum["false_alarm_s"] + der_sum["confusion_s"])
                                    / max(der_sum["reference_s"], 1e-9), 4)  # 0.25 s collar, as eval diarization
        out["der_detail"] = der_sum
        out["diarization_cpu_seconds"] = round(der_cpu, 1)
        out["rtf_per_core_cpu_with_diarization"] = round((asr_cpu + der_cpu) / max(audio_s, 1e-9), 4)
    return out


def batch_cost(result: dict, wall_s: float) -> dict:
    """Batch QA's cost: CPU seconds per call-second of ASR, diarization (the mono mix's, when measured) and
    scoring, and the command's wall time (issue #27's target is 0.15 CPU-s per call-second)."""
    speech = result.get("speech") or {}
    audio = speech.get("audio_seconds") or 0.0
    cpu = speech.get("asr_cpu_seconds", 0.0) + speech.get("diarization_cpu_seconds", 0.0) + result["qa_cpu_seconds"]
    return {"cpu_seconds": round(cpu, 1), "cpu_s_per_call_s": round(cpu / audio, 4) if audio else None,
            "wall_seconds": round(wall_s, 1)}


def _ticket_classifier():
    """The copilot's work-order classifier (default model, loaded once): ``text -> CategoryPrediction``, or None
    when the copilot helper is not installed."""
    try:
        from copilot.category import load_category_model
        from knowledge.embedding import configured_embedder
    except ImportError:
        return None
    from domain.settings import get_settings

    settings = get_settings()
    return load_category_model(configured_embedder(settings), settings.category_model_path, settings.data_dir).predict
