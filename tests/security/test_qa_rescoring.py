"""Issue #26 item 8: re-scoring a call keeps one current QA result (older ones are versions), so the review queue
and the KPI count the call once; an open appeal follows the call to the new version.  Real HTTP, real scoring."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from domain.db import session_scope
from domain.models import Agent, AuditLog, Call, Tenant, TranscriptSegment, utcnow
from tests.conftest import login

TRANSCRIPT = [
    ("agent", 0, 7000, "您好，来宾12345政务服务便民热线，8号话务员为您服务，请问有什么可以帮您？"),
    ("caller", 7500, 12000, "我想问一下社保卡丢了怎么补办？"),
    ("agent", 12500, 20000, "这个不归我们管，你自己去查。"),  # a serious violation: always sampled for review
    ("agent", 20500, 24000, "感谢您的来电，再见。"),
]


def _stored_call(engine) -> int:
    now = utcnow()
    with session_scope(engine) as s:
        tenant = s.scalar(select(Tenant).where(Tenant.code == "laibin"))
        agent = s.scalar(select(Agent).where(Agent.tenant_id == tenant.id, Agent.work_no == "8"))
        call = Call(tenant_id=tenant.id, call_uuid="rescore-1", caller_number="13907721234", agent_id=agent.id,
                    started_at=now - timedelta(minutes=3), answered_at=now - timedelta(minutes=2, seconds=50),
                    ended_at=now - timedelta(minutes=2), result="answered")
        s.add(call)
        s.flush()
        for role, start, end, text in TRANSCRIPT:
            s.add(TranscriptSegment(tenant_id=tenant.id, call_id=call.id, leg=role, speaker_role=role,
                                    start_ms=start, end_ms=end, text=text, confidence=0.95))
        return call.id


def test_rescoring_keeps_one_current_result_and_the_kpi_counts_the_call_once(client, engine):
    call_id = _stored_call(engine)
    qa, agent, supervisor = login(client, "qa"), login(client, "agent"), login(client, "supervisor")
    first = client.post(f"/api/qa/calls/{call_id}/score", headers=qa)
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert v1["version"] == 1 and v1["review_state"] == "queued"
    appeal = client.post(f"/api/qa/results/{v1['id']}/agent", headers=agent,
                         json={"action": "appeal", "comment": "我已告知市民办理渠道"})
    assert appeal.status_code == 200

    for _ in range(3):
        assert client.post(f"/api/qa/calls/{call_id}/score", headers=qa).status_code == 201

    results = [r for r in client.get("/api/qa/results", headers=qa).json() if r["call_id"] == call_id]
    assert [(r["version"], r["agent_state"]) for r in results] == [(4, "appealed")]  # the appeal moved along
    current = results[0]
    assert [r["id"] for r in client.get("/api/qa/queue", headers=qa).json()] == [current["id"]]
    assert [r["id"] for r in client.get("/api/qa/results", headers=agent).json()] == [current["id"]]
    detail = client.get(f"/api/qa/results/{current['id']}", headers=qa).json()
    assert [(v["version"], v["superseded_at"] is None) for v in detail["versions"]] == \
        [(1, False), (2, False), (3, False), (4, True)]

    stale = client.post(f"/api/qa/results/{v1['id']}/finish", headers=qa)  # superseded versions are read-only
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "result_superseded"
    assert client.post(f"/api/qa/results/{current['id']}/finish", headers=qa).status_code == 200
    upheld = client.post(f"/api/qa/results/{current['id']}/appeal", headers=qa,
                         json={"upheld": False, "comment": "复核后维持"})
    assert upheld.status_code == 200 and upheld.json()["agent_state"] == "appeal_rejected"

    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    inputs = client.get(f"/api/kpi/months/{month}", headers=supervisor).json()["inputs"]
    assert inputs["qa_samples"] == 1 and inputs["qa_samples_service_ok"] == 0
    with session_scope(engine) as s:
        assert s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "qa.rescored")) == 3
