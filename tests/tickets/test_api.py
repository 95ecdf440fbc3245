"""The tickets API over the real app: hang-up creation, actions, errors in Chinese, roles, reports and XLSX."""
from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import func, select

from domain.db import session_scope
from domain.models import Call, Ticket, TranscriptSegment
from tests.conftest import login

DRAFT = {"category": "城乡建设/市政设施/路灯", "request_type": "求助", "caller_name": "张先生", "phone": "13800138000",
         "incident_address": "兴宾区城东路12号", "summary": "路灯不亮已一周", "district": "兴宾区", "kb_entry_ids": []}


def _call(engine, uuid="api-call-1", skill_group="general") -> int:
    with session_scope(engine) as s:
        call = Call(tenant_id=1, call_uuid=uuid, caller_number="13900000001", skill_group=skill_group)
        s.add(call)
        s.flush()
        s.add(TranscriptSegment(tenant_id=1, call_id=call.id, leg="caller", speaker_role="caller", start_ms=0,
                                end_ms=900, text="我家门口路灯坏了"))
        return call.id


def test_ticket_api_lifecycle_reports_and_errors(client, engine):
    agent, supervisor, evaluator = login(client, "agent"), login(client, "supervisor"), login(client, "evaluator")
    call_id = _call(engine)

    r = client.post("/api/tickets/from-call", headers=agent, json={"call_id": call_id, "draft": DRAFT, "confirmed": False})
    assert r.status_code == 409 and r.json()["error"]["code"] == "draft_not_confirmed"
    assert "确认" in r.json()["error"]["message"]
    r = client.post("/api/tickets/from-call", headers=agent, json={"call_id": call_id, "draft": DRAFT, "confirmed": True})
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert ticket["number"].startswith("LB") and ticket["state"] == "created" and ticket["sla"]["remaining_s"] > 0
    assert "dispatch" in ticket["allowed_actions"]
    tid = ticket["id"]

    r = client.post(f"/api/tickets/{tid}/actions", headers=agent, json={"action": "callback", "satisfaction": 5})
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
    assert "当前状态为「已创建」" in r.json()["error"]["message"]
    r = client.post(f"/api/tickets/{tid}/actions", headers=agent, json={"action": "dispatch"})
    assert r.status_code == 422 and "承办部门" in r.json()["error"]["message"]
    for body in ({"action": "dispatch", "department": "兴宾区城管局"}, {"action": "sign"}, {"action": "start"},
                 {"action": "complete", "result": "已修复路灯"}, {"action": "callback", "satisfaction": 4}):
        r = client.post(f"/api/tickets/{tid}/actions", headers=agent, json=body)
        assert r.status_code == 200, r.text
    r = client.post(f"/api/tickets/{tid}/actions", headers=agent, json={"action": "reopen", "reason": "不满意"})
    assert r.status_code == 403
    r = client.post(f"/api/tickets/{tid}/actions", headers=supervisor, json={"action": "reopen", "reason": "不满意"})
    assert r.status_code == 200 and r.json()["state"] == "created"

    detail = client.get(f"/api/tickets/{tid}", headers=agent).json()
    assert [h["action"] for h in detail["history"]] == ["create", "dispatch", "sign", "start", "complete", "callback",
                                                         "reopen"]
    assert detail["transcript"][0]["text"] == "我家门口路灯坏了"
    assert client.get("/api/tickets?state=created", headers=agent).json()[0]["id"] == tid
    assert client.get("/api/tickets/999999", headers=agent).status_code == 404

    # control characters inside the nested draft, or a summary past its 4,000 characters, are rejected and nothing
    # is written (markup is text: tests/security/test_input.py)
    with session_scope(engine) as s:
        before = s.scalar(select(func.count(Ticket.id)))
    for field in ("summary", "caller_name", "category", "incident_address"):
        r = client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, field: "路灯\x00不亮"}})
        assert r.status_code == 422, r.text
    r = client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, "summary": "路" * 4001}})
    assert r.status_code == 422
    with session_scope(engine) as s:
        assert s.scalar(select(func.count(Ticket.id))) == before

    r = client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, "category": "教育/义务教育",
                                                                    "district": "象州县"}, "note": "来信"})
    assert r.status_code == 201
    assert client.post("/api/tickets/supervise", headers=supervisor).json() == []

    report = client.get("/api/tickets/reports", headers=evaluator).json()
    assert report["total"] == 2 and report["dispatched"] == 1 and report["completed"] == 0
    assert {d["name"] for d in report["by_district"]} == {"兴宾区", "象州县"}
    assert client.get("/api/tickets/reports", headers=agent).status_code == 403
    r = client.get("/api/tickets/reports.xlsx", headers=supervisor)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    assert {"概览", "按分类", "按区县", "按部门", "按时间", "满意度"} <= set(wb.sheetnames)
    assert wb["概览"]["B2"].value == 2
    assert client.get("/api/tickets/reports?start=2026-12-01&end=2026-11-01", headers=supervisor).status_code == 422


def test_automatic_creation_only_for_configured_skill_groups(app, client, engine):
    app.state.settings.ticket_auto_create_groups = "social"
    agent = login(client, "agent")
    manual, auto = _call(engine, "c-manual", "general"), _call(engine, "c-auto", "social")
    r = client.post("/api/tickets/from-call", headers=agent, json={"call_id": manual, "draft": DRAFT, "confirmed": False})
    assert r.status_code == 409
    r = client.post("/api/tickets/from-call", headers=agent, json={"call_id": auto, "draft": DRAFT, "confirmed": False})
    assert r.status_code == 201 and r.json()["source"] == "auto"
    r = client.post("/api/tickets/from-call", headers=agent, json={"call_id": auto, "draft": DRAFT, "confirmed": True})
    assert r.status_code == 409 and r.json()["error"]["code"] == "ticket_exists"


def test_operator_views_sms_kpi_and_dead_letter_retry(client, engine):
    from domain.models import OutboxMessage, SmsMessage

    with session_scope(engine) as s:
        s.add_all([SmsMessage(tenant_id=1, idempotency_key=f"k{i}", phone="1", body="x", status=st, gateway_id="g")
                   for i, st in enumerate(["delivered", "delivered", "failed", "empty_number"])])
        s.add(OutboxMessage(tenant_id=1, channel="police110", idempotency_key="dead-1", payload={}, status="dead",
                            attempts=12, last_error="HTTP 401"))
    supervisor, admin = login(client, "supervisor"), login(client, "admin")
    kpi = client.get("/api/tickets/sms-delivery", headers=supervisor).json()
    assert (kpi["sent"], kpi["delivered"], kpi["excluded"], kpi["rate"]) == (4, 2, 1, round(2 / 3, 4))
    status = client.get("/api/tickets/integrations", headers=supervisor).json()
    assert status["dead"][0]["last_error"] == "HTTP 401" and status["sms"]["delivered"] == 2
    dead_id = status["dead"][0]["id"]
    assert client.post(f"/api/tickets/integrations/outbox/{dead_id}/retry", headers=supervisor).status_code == 403
    r = client.post(f"/api/tickets/integrations/outbox/{dead_id}/retry", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert client.post(f"/api/tickets/integrations/outbox/{dead_id}/retry", headers=admin).status_code == 409
