"""Spoken queries: a recording of a caller's question → the transcript our ASR makes of it on the phone.

Used wherever retrieval is measured or trained on speech (``hotline eval retrieval --from-audio``,
``hotline kb train-ranker --spoken``), so both hear the same telephone channel: the audio is band-limited
to 300–3400 Hz and μ-law coded at 8 kHz, decoded by the configured engine, and post-corrected with the hot
words of the knowledge base being searched, as the live ASR followers correct with the published entries'.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from domain.errors import AppError
from knowledge.retrieval import KBDoc


def telephone_transcriber(docs: list[KBDoc], settings=None) -> Callable[[Path], str]:
    from asr.audio import load_audio, resample, telephone_band
    from asr.engines import create_asr_engine
    from asr.hotwords import Lexicon
    from demo import demo_settings
    from domain.settings import get_settings

    engine = create_asr_engine(settings or get_settings())
    # the spoken query sets are the demo tenant's callers: its base terms, as its live ASR followers use them
    lexicon = Lexicon.from_kb(((d.title, d.body) for d in docs), base=demo_settings().lexicon.base_terms)

    def transcribe(path: Path) -> str:
        audio = load_audio(path)
        phone = telephone_band(audio.mono(), audio.sample_rate)
        text = "".join(r.text for r in engine.transcribe(resample(phone, 8000, 16000)))
        return lexicon.correct(text) if text else text

    return transcribe


def transcribe_queries(rows: list[dict], base: Path, docs: list[KBDoc], settings=None) -> list[str]:
    """Transcripts of ``rows``' ``audio`` files (paths relative to ``base``), in order, heard by an ASR that
    knows the hot words of ``docs``."""
    missing = [r for r in rows if not r.get("audio")]
    if missing:
        raise AppError("bad_queries", f"语音查询每条都需要 audio 字段，缺少的第一条：{missing[0]}")
    transcribe = telephone_transcriber(docs, settings)
    return [transcribe(base / r["audio"]) for r in rows]
