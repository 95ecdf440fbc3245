"""A real call flows end to end: SIP → ASR → stored transcript."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from domain.db import session_scope
from domain.events import TranscriptFinal
from domain.models import Call, TranscriptSegment
from serving.app import create_app
from tests.e2e.conftest import CALL_SECONDS

pytestmark = pytest.mark.slow


def test_call_is_transcribed_live_and_stored(system):
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
        events = []
        deadline = time.time() + CALL_SECONDS + 5
        while time.time() < deadline:
            event = seen.get(timeout=0.5)
            if event is not None:
                events.append(event)
        caller.send(op="hangup", id="c1")
        caller.ended("c1")
        deadline = time.time() + 120
        while time.time() < deadline and not any(e.kind == "call.state" and e.state == "ended" for e in events):
            event = seen.get(timeout=0.5)
            if event is not None:
                events.append(event)

    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    assert {e.leg for e in finals} == {"agent", "caller"}, [e.kind for e in events]
    agent_text = "".join(e.text for e in finals if e.leg == "agent")
    assert "12345" in agent_text or "来宾" in agent_text
    with session_scope(system.engine) as s:
        call = s.scalar(select(Call).where(Call.caller_number == "13978261453"))
        stored = s.scalars(select(TranscriptSegment).where(TranscriptSegment.call_id == call.id)).all()
    assert call.result == "answered"
    assert len(stored) == len(finals)
