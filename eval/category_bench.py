"""`hotline eval category` (message classifier) and `hotline eval copilot` (live copilot on labelled calls)."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import typer

from domain.json_output import emit

# Level-1 names of the bundled taxonomy → domain labels used by citizen-message datasets.
DOMAIN_OF_LEVEL1 = {
    "城乡建设": "城建", "住房保障": "城建", "交通运输": "交通", "教育": "教育", "政务服务": "政务",
    "市场监管": "企业", "公安政法": "治安", "生态环境": "环保", "劳动和社会保障": "就业",
    "卫生健康": "医疗", "农业农村": "三农", "民政": "民政",
}
# Our five request types → the three coarse ones (建言 / 投诉/求助 / 咨询).
COARSE_REQUEST_TYPE = {"建议": "建言", "投诉": "投诉/求助", "求助": "投诉/求助", "举报": "投诉/求助", "咨询": "咨询"}


def _embedder():
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder

    settings = get_settings()
    return settings, configured_embedder(settings)


def _accuracy(pred: list[str], gold: list[str]) -> float:
    return round(sum(p == g for p, g in zip(pred, gold)) / max(len(gold), 1), 4)


def _macro_f1(pred: list[str], gold: list[str]) -> float:
    from sklearn.metrics import f1_score

    return round(float(f1_score(gold, pred, average="macro", zero_division=0)), 4)


def run_category(data: Path, test_fraction: float, max_train: int, seed: int) -> dict:
    """Held-out split of a labelled message set: shipped model (mapped labels) vs a model trained on its train split."""
    from copilot.category import CategoryModel, CategoryParams, load_category_model
    from copilot.ticket import TicketDrafter
    from knowledge.kbfile import read_jsonl

    rows = [r for r in read_jsonl(data) if isinstance(r, dict) and str(r.get("text", "")).strip()]
    random.Random(seed).shuffle(rows)
    n_test = int(len(rows) * test_fraction)
    if not n_test or len(rows) == n_test:
        raise typer.BadParameter(f"{data.name} 中带 text 字段的样本只有 {len(rows)} 条，不够划分训练集和测试集，无法评测")
    settings, emb = _embedder()
    test, train = rows[:n_test], rows[n_test:][:max_train]
    shipped = load_category_model(emb, settings.category_model_path, settings.data_dir)
    drafter = TicketDrafter()
    result: dict = {"benchmark": "category", "data": str(data), "n_train": len(train), "n_test": len(test),
                    "seed": seed, "shipped_model": shipped.trained_on}
    texts = [r["text"] for r in test]
    for field, mapping in (("domain", DOMAIN_OF_LEVEL1), ("request_type", COARSE_REQUEST_TYPE)):
        tr = [r for r in train if r.get(field)]
        te = [r for r in test if r.get(field)]
        if not tr or not te:
            continue
        gold = [r[field] for r in te]
        te_texts = [r["text"] for r in te]
        t0 = time.perf_counter()
        if field == "domain":
            shipped_pred = [mapping.get(p.split("/")[0], "") for p in shipped.predict_many(te_texts)]
        else:
            shipped_pred = [mapping[drafter.request_type(t)] for t in te_texts]
        shipped_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        own = CategoryModel.train([r["text"] for r in tr], [r[field] for r in tr], emb, CategoryParams(C=10.0))
        train_s = time.perf_counter() - t0
        own_pred = own.predict_many(te_texts)
        majority = max(set(gold), key=gold.count)
        result[field] = {
            "labels": sorted(set(gold)), "n_test": len(te), "majority_class_accuracy": _accuracy([majority] * len(gold), gold),
            "shipped": {"accuracy": _accuracy(shipped_pred, gold), "macro_f1": _macro_f1(shipped_pred, gold),
                        "how": "bundled taxonomy level 1 mapped to domain" if field == "domain"
                        else "request-type rules mapped to 3 classes", "seconds": round(shipped_s, 1)},
            "trained_on_train_split": {"accuracy": _accuracy(own_pred, gold), "macro_f1": _macro_f1(own_pred, gold),
                                       "train_seconds": round(train_s, 1)},
        }
    del texts
    return result


def replay_copilot(engine, dialogues: list[dict]) -> dict:
    """Replays labelled calls (dialogues/*.json) through the copilot turn by turn, as final segments."""
    import numpy as np

    from copilot.processor import latency_ms
    from domain.call_events import PoliceAlert, Suggestion

    cpu: list[float] = []
    lat, l1_ok, l3_ok, rt_ok, kb_hit, kb_hit_first, kb_calls, kb_at_end = [], 0, 0, 0, 0, 0, 0, 0
    first_right_s: list[float] = []  # call time when a right card first shows (end of the turn that brought it)
    tp = fp = fn = 0
    field_ok: dict[str, list[int]] = {k: [0, 0] for k in ("caller_name", "phone")}
    for d in dialogues:
        proc, events = _processor_and_turns(engine, d)
        alerted, last, seen, first_hits, right_at = False, None, set(), None, None
        for ev in events:
            cpu0 = time.thread_time()
            produced = proc.process(ev)
            if any(isinstance(o, Suggestion) for o in produced):
                cpu.append((time.thread_time() - cpu0) * 1000)
            for out in produced:
                if isinstance(out, PoliceAlert):
                    alerted = True
                if isinstance(out, Suggestion):
                    lat.append(latency_ms(out))
                    last = out
                    ids = {h.entry_id for h in out.hits}
                    seen |= ids
                    first_hits = ids if first_hits is None else first_hits
                    if right_at is None and ids & set(d.get("kb_ids") or ()):
                        right_at = ev.end_ms / 1000
        tp += alerted and d["police_110"]
        fp += alerted and not d["police_110"]
        fn += (not alerted) and d["police_110"]
        if last is not None:
            l1_ok += last.category.split("/")[0] == d["category"].split("/")[0]
            l3_ok += last.category == d["category"]
            rt_ok += last.ticket_draft.get("request_type") == d["request_type"]
            if d.get("ticket"):
                for k in field_ok:
                    field_ok[k][1] += 1
                    field_ok[k][0] += last.ticket_draft.get(k) == d["ticket"].get(k)
        if d.get("kb_ids"):
            kb_calls += 1
            kb_hit += bool(seen & set(d["kb_ids"]))
            kb_hit_first += bool((first_hits or set()) & set(d["kb_ids"]))
            kb_at_end += bool(last is not None and {h.entry_id for h in last.hits} & set(d["kb_ids"]))
            if right_at is not None:
                first_right_s.append(right_at)
    n = len(dialogues)
    return {
        "category_level1_accuracy": round(l1_ok / n, 4), "category_level3_accuracy": round(l3_ok / n, 4),
        "request_type_accuracy": round(rt_ok / n, 4),
        "police_110": {"tp": tp, "fp": fp, "fn": fn, "recall": round(tp / max(tp + fn, 1), 4),
                       "precision": round(tp / max(tp + fp, 1), 4)},
        "kb_recall_any_suggestion": round(kb_hit / max(kb_calls, 1), 4),
        "kb_recall_first_suggestion": round(kb_hit_first / max(kb_calls, 1), 4),
        # the card stack at hang-up holds a right entry; when one first showed (call time, needs turn times)
        "kb_card_present_at_hang_up": round(kb_at_end / max(kb_calls, 1), 4),
        "kb_first_right_card_s_p50": round(float(np.percentile(first_right_s, 50)), 1) if first_right_s else None,
        "kb_first_right_card_s_p90": round(float(np.percentile(first_right_s, 90)), 1) if first_right_s else None,
        "ticket_field_exact": {k: round(v[0] / max(v[1], 1), 4) for k, v in field_ok.items()},
        "suggestion_latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "suggestion_latency_ms_p95": round(float(np.percentile(lat, 95)), 1),
        "suggestion_cpu_ms_p50": round(float(np.percentile(cpu, 50)), 1),
        "suggestion_cpu_ms_p95": round(float(np.percentile(cpu, 95)), 1),
        "suggestions": len(lat),
    }


KB_FIGURES = ("kb_recall_any_suggestion", "kb_recall_first_suggestion")


def copilot_rankers(engine, dialogues: list[dict], folds: int, seed: int) -> dict:
    """``--folds``: the copilot's KB suggestions ranked by its shipped speech ranker, by plain e5, and by
    ``select_ranker`` fitted on the calls (the simplest ranking stage not beaten out of fold), in sample and out
    of fold.  Sample per call: what the caller said (first 200 characters), labelled with the call's KB
    entries.  Ranking alone is compared: the no-match threshold is off (a calibration fitted on whole calls
    does not suit the copilot's per-turn queries)."""
    from dataclasses import replace

    from eval.calls_bench import call_groups
    from domain.folds import assign_folds, describe, splits
    from knowledge.retrieval import Ranker, plain_e5_weights, ranking_samples, select_ranker

    index = engine.index
    shipped, params = index.speech_ranker, index.params
    calls = [d for d in dialogues if d.get("kb_ids")]
    samples = ranking_samples(index, [("，".join(t["text"] for t in d["turns"] if t["speaker"] == "caller")[:200],
                                       set(d["kb_ids"])) for d in calls])
    groups = [call_groups(d) for d in calls]
    fold_of = assign_folds(groups, folds, seed, strata=[str(d["police_110"]) for d in calls])

    def kb_figures(ranker, rows: list[int]) -> dict[str, float]:
        index.speech_ranker = ranker
        out = replay_copilot(engine, [calls[i] for i in rows])
        return {k: out[k] for k in KB_FIGURES}

    everyone = list(range(len(calls)))
    methods: dict = {}
    index.params = replace(params, no_match_threshold=0.0)
    try:
        for name, ranker in (("production", shipped), ("e5", Ranker(plain_e5_weights()))):
            fig = kb_figures(ranker, everyone)
            methods[name] = {"fitted": [], "in_sample": fig, "out_of_fold": fig}
        whole = select_ranker([samples[i] for i in everyone], groups, seed=seed)
        parts, kept = [], []
        for train, test in splits(fold_of):
            r = select_ranker([samples[i] for i in train], [groups[i] for i in train], seed=seed)
            kept.append(r.gate["kept"])
            parts.append((len(test), kb_figures(r, test)))
        methods["ranker_selected_here"] = {
            "fitted": ["knowledge.retrieval.select_ranker on the training calls: the simplest of plain e5, dense and "
                       "hybrid ranking not beaten out of fold within them"],
            "in_sample": kb_figures(whole, everyone),
            "out_of_fold": {k: round(sum(n * fig[k] for n, fig in parts) / len(calls), 4) for k in KB_FIGURES},
            "kept_in_sample": whole.gate["kept"], "kept_per_fold": kept}
    finally:
        index.speech_ranker, index.params = shipped, params
    return {"folds": describe(fold_of, seed, "KB entries of the call (an emergency call alone), emergencies spread "
                                             "over the folds"),
            "no_match_threshold": "off", "calls_with_kb_entries": len(calls), "methods": methods}


CARD_THRESHOLDS = (0.0, 0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3)


def card_threshold_curve(engine, dialogues: list[dict], folds: int, seed: int) -> dict:
    """The card stack at hang-up for each probability a hit must reach to become a card (the retrieval's
    ``no_match_threshold``): right card present, card precision (right cards over cards at hang-up) and cards per
    call.  With ``folds``, the threshold is chosen on K-1 folds (the lowest whose card precision on the training
    calls is at least that of the shipped threshold there) and scored on the held-out fold."""
    from dataclasses import replace

    from domain.folds import assign_folds, describe, splits
    from eval.calls_bench import call_groups

    calls = [d for d in dialogues if d.get("kb_ids")]
    engine_params, index_params = engine.params, engine.index.params
    engine.params = replace(engine_params, max_cards=10_000)
    engine.index.params = replace(index_params, no_match_threshold=0.0)
    try:  # every hit of every turn, with its best score: the stack at any threshold is read off it
        stacks = [_final_cards(engine, d) for d in calls]
    finally:
        engine.params, engine.index.params = engine_params, index_params

    def figures(t: float, rows: list[int]) -> dict:
        present = cards = right = 0
        for i in rows:
            kept = sorted((s for s in stacks[i] if s[1] >= t), key=lambda s: -s[1])[: engine_params.max_cards]
            hits = sum(entry in calls[i]["kb_ids"] for entry, _ in kept)
            present += hits > 0
            cards += len(kept)
            right += hits
        return {"threshold": t, "kb_card_present_at_hang_up": round(present / max(len(rows), 1), 4),
                "card_precision": round(right / max(cards, 1), 4), "cards_per_call": round(cards / max(len(rows), 1), 2)}

    everyone = list(range(len(calls)))
    shipped = index_params.no_match_threshold
    result = {"shipped_threshold": shipped, "curve": [figures(t, everyone) for t in CARD_THRESHOLDS]}
    if folds:
        fold_of = assign_folds([call_groups(d) for d in calls], folds, seed,
                               strata=[str(d["police_110"]) for d in calls])
        present = right_share = 0.0
        chosen = []
        for train, test in splits(fold_of):
            floor = figures(shipped, train)["card_precision"]
            t = min(t for t in CARD_THRESHOLDS + (shipped,) if figures(t, train)["card_precision"] >= floor)
            chosen.append(t)
            out = figures(t, test)
            present += out["kb_card_present_at_hang_up"] * len(test)
            right_share += out["card_precision"] * len(test)
        result["out_of_fold"] = {
            "fitted": "the lowest threshold whose card precision on the training calls is at least the shipped "
                      "threshold's there", "chosen_per_fold": chosen,
            "kb_card_present_at_hang_up": round(present / len(calls), 4),
            "card_precision": round(right_share / len(calls), 4),
            "folds": describe(fold_of, seed, "KB entries of the call, emergencies spread over the folds")}
    return result


def _final_cards(engine, dialogue: dict) -> list[tuple]:
    """(entry id, best score) of every card the call's copilot put on its stack."""
    from domain.call_events import Suggestion

    proc, events = _processor_and_turns(engine, dialogue)
    last = None
    for ev in events:
        for out in proc.process(ev):
            last = out if isinstance(out, Suggestion) else last
    return [(h.entry_id, h.score) for h in last.hits] if last else []


def _processor_and_turns(engine, dialogue: dict) -> tuple:
    """A copilot for the call, and its turns as the final transcript segments the live path would feed it."""
    from domain.call_events import TranscriptFinal

    def final(leg: str, role: str, start_ms: int, end_ms: int, text: str) -> TranscriptFinal:
        return TranscriptFinal(call_id=dialogue["id"], leg=leg, role=role, start_ms=start_ms, end_ms=end_ms, text=text)

    proc = engine.new_processor(final("caller", "caller", 0, 0, ""))
    return proc, [final("caller" if t["speaker"] == "caller" else "agent", t["speaker"], t.get("start_ms", 0),
                        t.get("end_ms", 0), t["text"]) for t in dialogue["turns"]]


def with_turn_times(dialogue: dict, calls_dir: Path) -> dict:
    """The call's turns with ``start_ms``/``end_ms`` from its reference timing (refs/<id>.json), when there is one."""
    ref = calls_dir / "refs" / f"{dialogue['id']}.json"
    if ref.exists():
        times = {r["turn"]: r for r in json.loads(ref.read_text(encoding="utf-8"))}
        for t in dialogue["turns"]:
            if t.get("turn") in times:
                t["start_ms"], t["end_ms"] = (round(times[t["turn"]][k] * 1000) for k in ("start", "end"))
    return dialogue


def with_asr_turns(dialogue: dict, transcripts: Path) -> dict:
    """The call's turns as the ASR heard them: ``<transcripts>/<id>.json``, the segments that ``hotline eval calls
    --transcripts`` saved (role, start_ms, end_ms, text, confidence); the labels stay the dialogue's."""
    saved = transcripts / f"{dialogue['id']}.json"
    if not saved.is_file():
        raise typer.BadParameter(f"{saved} 不存在：先运行 hotline eval calls --transcripts {transcripts} 识别这些通话")
    dialogue["turns"] = [{"speaker": seg["role"], "start_ms": seg["start_ms"], "end_ms": seg["end_ms"],
                          "text": seg["text"]}
                         for seg in json.loads(saved.read_text(encoding="utf-8")) if seg["text"].strip()]
    return dialogue


def run_copilot(calls_dir: Path, kb: Path | None, folds: int = 0, seed: int = 12345,
                transcripts: Path | None = None) -> dict:
    """The copilot on labelled calls with the shipped models, replaying the reference text, or with
    ``transcripts`` the ASR transcripts; with ``folds``, what can be fitted on the calls (the speech ranker, or
    plain e5 in its place) in sample and out of fold."""
    from copilot.category import load_category_model
    from copilot.processor import CopilotModels
    from eval.calls_bench import not_fitted_here
    from knowledge.kbfile import load_kb_docs
    from knowledge.retrieval import HybridIndex

    settings, emb = _embedder()
    kb = kb or calls_dir / "kb.jsonl"
    index = HybridIndex(emb)
    index.add(load_kb_docs(kb))
    engine = CopilotModels(index=index, category=load_category_model(emb, settings.category_model_path, settings.data_dir))
    files = sorted((calls_dir / "dialogues").glob("*.json"))
    if not files:
        raise typer.BadParameter(f"{calls_dir}/dialogues 下没有对话文件")
    dialogues = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    if transcripts:
        dialogues = [with_asr_turns(d, transcripts) for d in dialogues]
        transcript = f"ASR transcripts ({transcripts})"
    else:
        dialogues = [with_turn_times(d, calls_dir) for d in dialogues]
        transcript = "reference text (turn times from refs/ where present)"
    result = {"benchmark": "copilot", "transcript": transcript, "calls": len(dialogues), "kb": str(kb),
              "speech_ranker": index.speech_ranker.trained_on,
              **replay_copilot(engine, dialogues)}
    result["card_threshold"] = card_threshold_curve(engine, dialogues, folds, seed)
    if folds:
        not_fitted = not_fitted_here()
        not_fitted.pop("speech_ranker")
        result["cross_fitted"] = {**copilot_rankers(engine, dialogues, folds, seed), "not_fitted_here": not_fitted,
                                  "note": "category, request type, 110 and ticket fields: nothing refitted per fold; "
                                          "their figures above are out of fold where not_fitted_here's training "
                                          "data holds none of these calls"}
    return result


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("category")
    def category(
        data: Path = typer.Option(..., exists=True, dir_okay=False,
                                  help="Messages JSONL with text and domain and/or request_type labels."),
        test_fraction: float = typer.Option(0.2, help="Held-out share."),
        max_train: int = typer.Option(4000, help="Cap on training examples for the train-split model."),
        seed: int = typer.Option(12345),
        json_out: Path = typer.Option(None, "--json", help="Also write the JSON report here."),
    ) -> None:
        """工单分类评测：发布模型 vs 在训练集上训练的模型（留出测试集）。"""
        emit(run_category(data, test_fraction, max_train, seed), json_out)

    @eval_app.command("copilot")
    def copilot(
        calls: Path = typer.Option(..., exists=True, file_okay=False,
                                   help="Labelled calls folder (dialogues/*.json, kb.jsonl)."),
        kb: Path = typer.Option(None, help="KB JSONL; default: <calls>/kb.jsonl."),
        folds: int = typer.Option(0, help="Also fit the speech ranker (or plain e5) on K-1 folds of the calls and "
                                          "score the held-out fold (K >= 2)."),
        seed: int = typer.Option(12345, help="Seed of the fold split."),
        transcripts: Path = typer.Option(None, "--transcripts", exists=True, file_okay=False,
                                         help="Replay the ASR transcripts saved here by `hotline eval calls "
                                              "--transcripts` instead of the reference text."),
        json_out: Path = typer.Option(None, "--json", help="Also write the JSON report here."),
    ) -> None:
        """坐席助手评测：110 告警、分类、诉求类型、挂机时推荐卡片命中率与首次出现时间、推荐延迟；--folds 交叉验证。"""
        emit(run_copilot(calls, kb, folds, seed, transcripts), json_out)
