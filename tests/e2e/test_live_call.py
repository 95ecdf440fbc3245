"""A real call flows end to end: SIP → streaming ASR → bus → stored transcript, live QA and post-call QA."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from domain.db import session_scope
from domain.call_events import QAWarning, Suggestion, TranscriptFinal
from domain.models import Call, QAResult, TranscriptSegment
from serving.app import create_app
from tests.e2e.conftest import CALL_SECONDS

pytestmark = pytest.mark.slow


def _drain(sub, events: list, until, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not until(events):
        event = sub.get(timeout=0.5)
        if event is not None:
            events.append(event)


def _qa_result(engine, call_pk: int):
    with session_scope(engine) as s:
        qa = s.scalar(select(QAResult).where(QAResult.call_id == call_pk))
        return (qa, {i.item_code: i.passed for i in qa.items}) if qa else (None, {})


def test_call_is_transcribed_live_stored_and_scored(system):
    app = create_app(system.settings, system.engine, live=True)
    with TestClient(app):
        seen = app.state.bus.subscribe()
        worker = system.start_worker()
        agent = system.agent_phone("8")
        caller = system.caller_phone("13978261453")
        caller.call("c1", worker.uri, wav=str(system.caller_wav), dtmf="1", dtmf_after=0.5,
                    **{"from": "13978261453"})
        caller.state("c1", "CONFIRMED", timeout=20)
        agent.incoming(1, timeout=30)
        events: list = []
        _drain(seen, events, lambda _: False, CALL_SECONDS + 5)
        caller.send(op="hangup", id="c1")
        caller.ended("c1")
        _drain(seen, events, lambda ev: any(e.kind == "transcript.complete" for e in ev), 120)
        with session_scope(system.engine) as s:
            call = s.scalar(select(Call).where(Call.caller_number == "13978261453"))
        deadline = time.time() + 90
        while (qa := _qa_result(system.engine, call.id))[0] is None and time.time() < deadline:
            time.sleep(0.5)

    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    heard = [(e.leg, e.text) for e in finals]
    assert {e.leg for e in finals} == {"agent", "caller"}, heard
    agent_text = "".join(e.text for e in finals if e.leg == "agent")
    caller_text = "".join(e.text for e in finals if e.leg == "caller")
    assert len(agent_text) > 40 and len(caller_text) > 20, heard
    with session_scope(system.engine) as s:
        stored = s.scalars(select(TranscriptSegment).where(TranscriptSegment.call_id == call.id)).all()
    assert call.result == "answered" and call.agent_id is not None
    assert len(stored) == len(finals)
    complete = [e for e in events if e.kind == "transcript.complete"]
    assert complete[0].segments == len(finals), "transcript.complete comes after the last final"
    assert any(e.kind == "call.state" and e.state == "ended" for e in events)
    suggestions = [e for e in events if isinstance(e, Suggestion) and not e.no_good_match]
    assert suggestions, "the copilot suggested KB entries while the call ran"
    assert any("社保" in hit.title for s in suggestions for hit in s.hits), [h.title for s in suggestions for h in s.hits]
    assert suggestions[-1].ticket_draft.get("phone") or suggestions[-1].category
    assert all(e.kind != "copilot.police_alert" for e in events)
    result, items = qa
    assert result is not None and items, "post-call QA result stored"
    assert {"greeting", "closing", "read_back", "forbidden_phrases", "answer_accuracy"} <= set(items), items
    assert items["forbidden_phrases"] is True and items["rude"] is True, heard
