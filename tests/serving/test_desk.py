"""serving.desk.LiveDesks: the agent's call in hand, kept from the bus, as a reloaded desk restores it."""
from __future__ import annotations

import time

from domain.call_events import CallState, KnowledgeHit, QAWarning, Suggestion, TranscriptFinal
from serving.desk import LiveDesks
from serving.event_bus import LocalBus


def _wait(check, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("the desk store did not catch up")


def test_desk_keeps_the_agents_call_and_what_they_did():
    bus = LocalBus()
    desks = LiveDesks(bus).start()
    try:
        common = {"tenant_id": 1, "call_id": "u1"}
        bus.publish(TranscriptFinal(**common, leg="caller", role="caller", start_ms=0, end_ms=900, text="IVR 里说的"))
        bus.publish(CallState(**common, state="talking", caller="13877201234", agent_id=7, detail={"call_db_id": 42}))
        bus.publish(TranscriptFinal(**common, leg="caller", role="caller", start_ms=9700, end_ms=15000, text="社保卡丢了"))
        bus.publish(TranscriptFinal(**common, leg="agent", role="agent", start_ms=3000, end_ms=8000, text="您好"))
        card = KnowledgeHit(entry_id=5, title="社保卡补办", answer="到窗口补办", score=0.9, trigger="社保卡丢了", first_ms=9700)
        bus.publish(Suggestion(**common, hits=[card], ticket_draft={"summary": "市民来电咨询。"}))
        bus.publish(QAWarning(**common, item="read_back", message="尚未复述"))
        bus.publish(QAWarning(**common, item="read_back", message="已满足", resolved=True))
        bus.publish(CallState(tenant_id=1, call_id="other", state="talking", agent_id=8))
        _wait(lambda: (desks.current(1, 8) or {}).get("call") is not None)
        desk = desks.current(1, 7)
        assert desk["call"]["db_id"] == 42 and desk["call"]["caller"] == "13877201234"
        assert [s["text"] for s in desk["transcript"]] == ["您好", "社保卡丢了"]  # in call time, IVR before it left out
        assert desk["suggestion"]["hits"][0]["trigger"] == "社保卡丢了"
        assert desk["warnings"] == []  # withdrawn once met
        assert desks.current(2, 7) is None  # another tenant's agent 7 has no call here
        assert desks.mark_card(1, 8, "u1", "5", "pin") is None  # not agent 8's call
        assert desks.mark_card(1, 7, "u1", "5", "pin") == {"pinned": ["5"], "dismissed": []}
        assert desks.mark_card(1, 7, "u1", "5", "dismiss") == {"pinned": [], "dismissed": ["5"]}
        assert desks.edit_draft(1, 7, "u1", {"summary": "坐席改写"}) == {"summary": "坐席改写"}
        bus.publish(CallState(**common, state="ended", agent_id=7))
        _wait(lambda: desks.current(1, 7)["call"]["state"] == "ended")
        assert desks.current(1, 7)["draft_edits"] == {"summary": "坐席改写"}  # kept for after-call work
        bus.publish(CallState(tenant_id=1, call_id="u2", state="talking", agent_id=7))
        _wait(lambda: desks.current(1, 7)["call"]["id"] == "u2")  # the next call replaces it
        assert desks.current(1, 7)["transcript"] == []
    finally:
        desks.stop()
        bus.close()


def test_wall_alerts_are_the_tenants_own_and_for_supervisors_only(engine, settings):
    """GET /api/copilot/wall/alerts: another tenant's supervisor sees none of this tenant's alerts; agents may not ask."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from demo import seed_demo
    from domain.call_events import PoliceAlert
    from domain.db import session_scope
    from domain.models import Agent, Tenant
    from serving.app import create_app
    from tests.conftest import login

    with session_scope(engine) as s:
        seed_demo(s, "laibin")
        seed_demo(s, "hechi")
        tenant = s.scalar(select(Tenant.id).where(Tenant.code == "laibin"))
        agent = s.scalar(select(Agent.id).where(Agent.tenant_id == tenant, Agent.work_no == "8"))
    app = create_app(settings, engine)
    with TestClient(app) as client:
        common = {"tenant_id": tenant, "call_id": "wall-tenant-1"}
        app.state.bus.publish(CallState(**common, state="talking", caller="13877201234", agent_id=agent))
        app.state.bus.publish(PoliceAlert(**common, reason="打架斗殴", evidence="楼下有人打架"))
        ours = login(client, "supervisor")
        _wait(lambda: client.get("/api/copilot/wall/alerts", headers=ours).json()["alerts"])
        (alert,) = client.get("/api/copilot/wall/alerts", headers=ours).json()["alerts"]
        assert (alert["kind"], alert["call_id"], alert["agent_id"]) == ("police", "wall-tenant-1", agent)
        theirs = login(client, "supervisor", tenant="hechi")
        assert client.get("/api/copilot/wall/alerts", headers=theirs).json() == {"alerts": []}
        assert client.get("/api/copilot/wall/alerts", headers=login(client, "agent")).status_code == 403
