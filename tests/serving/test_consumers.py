"""Consumers: feed events into the bus, assert the rows and events that come out."""
from __future__ import annotations

import time

from sqlalchemy import select

from domain.db import session_scope
from domain.call_events import CallState, QAWarning, Suggestion, TranscriptComplete, TranscriptFinal
from domain.models import Call, Tenant, TranscriptSegment
from serving.consumers import CallProcessorHost, CallTopicWriter, SegmentWriter
from serving.event_bus import LocalBus


def _wait(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _final(call_id, text, start=0, tenant_id=1):
    return TranscriptFinal(tenant_id=tenant_id, call_id=call_id, leg="agent", role="agent", start_ms=start,
                           end_ms=start + 800, text=text, confidence=0.8, engine="test")


def test_segment_writer_links_segments_to_the_cdr(engine):
    with session_scope(engine) as s:
        tenant = Tenant(code="t", name="t")
        s.add(tenant)
        s.flush()
        s.add(Call(tenant_id=tenant.id, call_uuid="call-1", caller_number="13900000000"))
    bus = LocalBus()
    writer = SegmentWriter(bus, engine).start()
    bus.publish(_final("call-1", "您好，来宾12345", 0))
    bus.publish(_final("call-1", "", 900))  # empty text is not stored
    bus.publish(_final("call-1", "请讲", 1000))
    with session_scope(engine) as s:
        assert _wait(lambda: len(s.scalars(select(TranscriptSegment)).all()) == 2)
        rows = s.scalars(select(TranscriptSegment).order_by(TranscriptSegment.start_ms)).all()
        call_pk = s.scalar(select(Call.id))
    writer.stop()
    assert [r.text for r in rows] == ["您好，来宾12345", "请讲"]
    assert {r.call_id for r in rows} == {call_pk}


def test_call_topic_writer_keeps_the_copilots_category_and_district_on_the_cdr(engine):
    with session_scope(engine) as s:
        tenant = Tenant(code="t", name="t")
        s.add(tenant)
        s.flush()
        tenant_id = tenant.id
        s.add(Call(tenant_id=tenant_id, call_uuid="call-topic", caller_number="13900000000"))
    bus = LocalBus()
    writer = CallTopicWriter(bus, engine).start()

    def topic():
        with session_scope(engine) as s:
            call = s.scalar(select(Call).where(Call.call_uuid == "call-topic"))
            return call.category, call.district

    common = {"tenant_id": tenant_id, "call_id": "call-topic"}
    bus.publish(Suggestion(**common, category="公安政法/治安管理/紧急警情转接", ticket_draft={}))
    assert _wait(lambda: topic() == ("公安政法/治安管理/紧急警情转接", ""))
    bus.publish(Suggestion(**common, category="公安政法/治安管理/紧急警情转接", ticket_draft={"district": "兴宾区"}))
    assert _wait(lambda: topic() == ("公安政法/治安管理/紧急警情转接", "兴宾区"))
    bus.publish(Suggestion(**common, category=None, ticket_draft={}))  # nothing found this turn: nothing lost
    bus.publish(Suggestion(tenant_id=tenant_id + 1, call_id="call-topic", category="别的租户", ticket_draft={}))
    time.sleep(0.3)
    writer.stop()
    assert topic() == ("公安政法/治安管理/紧急警情转接", "兴宾区")


class _ReadBackChecker:
    """A tiny processor: warns when the call ends without a read-back."""

    def __init__(self, first):
        self.call_id, self.tenant_id, self.heard = first.call_id, first.tenant_id, []

    def process(self, event):
        if isinstance(event, TranscriptFinal):
            self.heard.append(event.text)
        return []

    def close(self):
        if not any("复述" in t for t in self.heard):
            return [QAWarning(tenant_id=self.tenant_id, call_id=self.call_id, item="read_back", message="未复述诉求")]
        return []


def test_processor_host_runs_one_processor_per_call():
    bus = LocalBus()
    out = bus.subscribe()
    host = CallProcessorHost(bus, "qa-live", _ReadBackChecker).start()
    bus.publish(_final("a", "我给您复述一下"))
    bus.publish(_final("b", "好的"))
    assert _wait(lambda: host.live_calls == 2)
    bus.publish(CallState(tenant_id=1, call_id="a", state="ended"))
    assert not _wait(lambda: host.live_calls < 2, timeout=0.5), "hang-up alone does not close: ASR may be behind"
    bus.publish(TranscriptComplete(tenant_id=1, call_id="a", segments=1))
    bus.publish(TranscriptComplete(tenant_id=1, call_id="b", segments=1))
    warnings = []
    deadline = time.time() + 5
    while time.time() < deadline and not warnings:
        event = out.get(timeout=0.2)
        if isinstance(event, QAWarning):
            warnings.append(event)
    host.stop()
    assert [(w.call_id, w.item) for w in warnings] == [("b", "read_back")]
    assert host.live_calls == 0
