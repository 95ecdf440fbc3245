"""The live speech pipeline of a bridge worker: forked audio in, transcript events out on the bus.

Each leg of each call gets its own :class:`asr.streaming.LegStream` (VAD endpointing, partials,
finals).  The bridge's media fork calls this sink from its own thread, never from the pjmedia
clock thread, so decoding never delays audio; while decoding, frames wait in the fork's queue.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from asr.hotwords import Lexicon
from asr.streaming import LegStream, StreamParams
from asr.vad import SileroVad
from domain.db import make_engine, session_scope
from domain.events import AudioFrame, CallState, Event
from domain.models import KnowledgeEntry, KnowledgeVersion
from domain.settings import Settings, get_settings
from serving.events import Publisher, publisher_for

log = logging.getLogger("hotline.pipeline")


def knowledge_lexicon(settings: Settings) -> Lexicon:
    """Hot words from the published knowledge base (plus the built-in Laibin terms)."""
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(KnowledgeVersion.title, KnowledgeVersion.body)
                .join(KnowledgeEntry, KnowledgeEntry.id == KnowledgeVersion.entry_id)
                .where(KnowledgeEntry.status == "published",
                       KnowledgeVersion.version == KnowledgeEntry.published_version)
            ).all()
    finally:
        engine.dispose()
    return Lexicon.from_texts([f"{title}\n{body}" for title, body in rows])


class TranscribingSink:
    """A ``telephony.media.MediaSink``: streams each leg through ASR and publishes what it hears."""

    def __init__(self, publisher: Publisher, asr_engine, lexicon: Lexicon | None,
                 params: StreamParams = StreamParams()) -> None:
        self._publisher = publisher
        self._engine = asr_engine
        self._lexicon = lexicon
        self._params = params
        self._streams: dict[tuple[str, str], LegStream] = {}
        self._lock = threading.Lock()

    def _stream(self, frame: AudioFrame) -> LegStream:
        key = (frame.call_id, frame.leg)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = LegStream(
                self._engine, SileroVad(frame.sample_rate), call_id=frame.call_id, tenant_id=frame.tenant_id,
                leg=frame.leg, role=frame.leg, sample_rate=frame.sample_rate, params=self._params,
                lexicon=self._lexicon,
            )
        return stream

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self._publisher.publish(event)

    def on_audio(self, frame: AudioFrame) -> None:
        with self._lock:
            stream = self._stream(frame)
        self._publish(stream.push(frame))

    def on_call_event(self, event: CallState) -> None:
        if event.state == "ended":
            with self._lock:
                ending = [self._streams.pop(key) for key in list(self._streams) if key[0] == event.call_id]
            for stream in ending:
                self._publish(stream.flush())
        self._publish([event])

    @property
    def live_legs(self) -> int:
        return len(self._streams)


def bridge_sink() -> TranscribingSink:
    """Factory named by ``HOTLINE_TELEPHONY_SINK=serving.pipeline:bridge_sink``."""
    from asr.engines import create_engine

    settings = get_settings()
    lexicon = knowledge_lexicon(settings) if settings.asr_hotwords else None
    return TranscribingSink(publisher_for(settings), create_engine(settings), lexicon)
