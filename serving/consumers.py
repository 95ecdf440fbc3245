"""Bus consumers that run in the serving process.

* :class:`SegmentWriter` stores every final transcript segment as it arrives.
* :class:`CallTopicWriter` keeps on each call's CDR the category and district the copilot found.
* :class:`CallProcessorHost` runs one processor per call (the copilot, the live QA checker):
  transcript events in, new events (suggestions, alerts, warnings) out onto the bus.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Callable, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.db import session_scope
from domain.call_events import Event, Suggestion, TranscriptComplete, TranscriptFinal
from domain.models import Call, TranscriptSegment

log = logging.getLogger("hotline.consumers")


class CallProcessor(Protocol):
    """A per-call pipeline stage: frames in, frames out."""

    def process(self, event: Event) -> list[Event]: ...

    def close(self) -> list[Event]: ...


class _Consumer:
    name = "consumer"

    def __init__(self, bus) -> None:
        self._bus = bus
        self._sub = bus.subscribe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> "_Consumer":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Handle the events already queued (for up to ``timeout``), then stop: at shutdown the telephony has
        just stopped, and its last call events and transcript finals are stored."""
        self._stop.set()
        self._thread.join(timeout=timeout)
        self._sub.close()

    def _run(self) -> None:
        while True:
            event = self._sub.get(timeout=0.2)
            if event is None:
                if self._stop.is_set():
                    return
                continue
            try:
                self.handle(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the consumer
                log.exception("%s failed on %s for call %s", self.name, event.kind, event.call_id)

    def handle(self, event: Event) -> None:
        raise NotImplementedError


class SegmentWriter(_Consumer):
    """Persists final transcript segments, linked to their call's CDR when it exists."""

    name = "segment-writer"

    def __init__(self, bus, engine: Engine) -> None:
        super().__init__(bus)
        self._engine = engine
        self._call_ids: dict[str, int] = {}

    def handle(self, event: Event) -> None:
        if not isinstance(event, TranscriptFinal) or not event.text:
            return
        with session_scope(self._engine) as session:
            call_pk = self._call_ids.get(event.call_id)
            if call_pk is None:
                call_pk = session.scalar(select(Call.id).where(Call.call_uuid == event.call_id))
                if call_pk is not None:
                    self._call_ids[event.call_id] = call_pk
            session.add(TranscriptSegment(
                tenant_id=event.tenant_id, call_id=call_pk, leg=event.leg, speaker_role=event.role,
                start_ms=event.start_ms, end_ms=event.end_ms, text=event.text, is_final=True,
                confidence=event.confidence, engine=event.engine,
            ))


class CallTopicWriter(_Consumer):
    """Keeps on the call's CDR what the copilot understood it to be about: the ticket category and the draft's
    district, as they change.  So a call nobody made a ticket for is still found by category in the QA workspace
    and counted by district on the big screen."""

    name = "call-topic-writer"
    REMEMBERED_CALLS = 10_000  # the last topic written per call, so an unchanged suggestion writes nothing

    def __init__(self, bus, engine: Engine) -> None:
        super().__init__(bus)
        self._engine = engine
        self._written: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def handle(self, event: Event) -> None:
        if not isinstance(event, Suggestion) or not event.call_id:
            return
        topic = (event.category or "", str(event.ticket_draft.get("district") or ""))
        if not any(topic) or self._written.get(event.call_id) == topic:
            return
        with session_scope(self._engine) as session:
            call = session.scalar(select(Call).where(Call.call_uuid == event.call_id,
                                                     Call.tenant_id == event.tenant_id))
            if call is None:
                return
            call.category = topic[0][:200] or call.category
            call.district = topic[1][:32] or call.district
        self._written[event.call_id] = topic
        self._written.move_to_end(event.call_id)
        while len(self._written) > self.REMEMBERED_CALLS:
            self._written.popitem(last=False)


class CallProcessorHost(_Consumer):
    """One processor per live call, created on the call's first event and closed when its transcript is
    complete (after hang-up, once the ASR has caught up)."""

    def __init__(self, bus, name: str, factory: Callable[[Event], CallProcessor]) -> None:
        self.name = name
        super().__init__(bus)
        self._factory = factory
        self._calls: dict[str, CallProcessor] = {}

    def handle(self, event: Event) -> None:
        if not event.call_id or event.kind not in {"transcript.partial", "transcript.final", "transcript.complete",
                                                   "call.state"}:
            return
        processor = self._calls.get(event.call_id)
        if processor is None:
            if isinstance(event, TranscriptComplete):
                return
            processor = self._calls[event.call_id] = self._factory(event)
        out = processor.process(event)
        if isinstance(event, TranscriptComplete):  # the call has ended and its transcript is whole
            out += processor.close()
            del self._calls[event.call_id]
        for produced in out:
            self._bus.publish(produced)

    @property
    def live_calls(self) -> int:
        return len(self._calls)
