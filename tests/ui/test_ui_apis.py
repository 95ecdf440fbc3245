"""The small APIs behind the pages: call-traffic reports and XLSX, the dashboard, caller history, evaluations."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import select

from domain.db import session_scope
from domain.models import Agent, Call, Tenant, Ticket
from domain.tenant_settings import DEFAULT_TIME_ZONE
from tickets.call_reports import period_bounds
from tests.conftest import login


def _calls(engine):
    """Six calls today (local time): 4 answered (rated 5, 4, 2 and unrated), one lost, one abandoned."""
    now = datetime.now(ZoneInfo(DEFAULT_TIME_ZONE)).replace(hour=10, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
    with session_scope(engine) as s:
        tenant = s.scalar(select(Tenant).where(Tenant.code == "laibin"))
        agent = s.scalar(select(Agent).where(Agent.work_no == "8"))
        specs = [("answered", 5_000, 5), ("answered", 30_000, 4), ("answered", 10_000, 2), ("answered", 1_000, None),
                 ("lost", 40_000, None), ("abandoned", 50_000, None)]
        for i, (result, wait, sat) in enumerate(specs):
            answered = now + timedelta(seconds=wait / 1000) if result == "answered" else None
            s.add(Call(tenant_id=tenant.id, call_uuid=f"r{i}", caller_number="13907721234", skill_group="social",
                       queue_wait_ms=wait, agent_id=agent.id if result != "abandoned" else None, started_at=now,
                       answered_at=answered, ended_at=now + timedelta(seconds=120), result=result, satisfaction=sat,
                       district="兴宾区", category="公安政法/治安管理/紧急警情转接" if i == 0 else ""))
        s.add(Ticket(tenant_id=tenant.id, number="T-1", phone="13907721234", caller_name="刘女士", address="合山市",
                     summary="反映路灯不亮，鸟鸟前猫秘股", category="城乡建设/市政设施/路灯"))


def test_reports_compute_from_cdrs(client, engine):
    _calls(engine)
    sup = login(client, "supervisor")
    overall = client.get("/api/reports/calls/overall?period=day", headers=sup).json()["rows"][0]
    assert overall["offered"] == 6 and overall["answered"] == 4 and overall["lost"] == 2
    assert overall["answer_rate"] == 66.7
    assert overall["service_level"] == 75.0  # 3 of 4 answered within 20 s
    assert overall["satisfaction_rate"] == 66.7  # 2 satisfied of 3 rated
    groups = client.get("/api/reports/calls/skill_group?period=week", headers=sup).json()
    assert groups["rows"][0]["skill_group"] == "社保医保"  # the group's name, not its code
    lost = client.get("/api/reports/calls/lost?period=month", headers=sup).json()
    assert len(lost["rows"]) == 2 and lost["rows"][0]["caller"] == "139****1234"  # masked
    x = client.get("/api/reports/calls/satisfaction/xlsx?period=week", headers=sup)
    sheet = load_workbook(io.BytesIO(x.content)).active
    assert sheet["A1"].value.startswith("客户满意率（周报）") and sheet["A2"].value == "日期"
    assert client.get("/api/reports/calls/nope", headers=sup).json()["error"]["code"] == "unknown_report"
    assert client.get("/api/reports/calls/overall", headers=login(client, "agent")).status_code == 403
    dash = client.get("/api/reports/dashboard", headers=sup).json()
    assert dash["today"]["offered"] == 6
    assert {d["name"] for d in dash["districts"]} >= {"兴宾区", "金秀瑶族自治县"}
    # the category trend counts calls nobody made a ticket for, by the copilot's category
    trend = {series["name"]: sum(series["data"]) for series in dash["category_trend"]["series"]}
    assert trend == {"城乡建设": 1, "公安政法": 1}
    # hot words come from the centre's vocabulary (here the ticket's category), never misheard fragments
    assert {w["name"] for w in dash["hot_words"]} == {"路灯", "市政设施"}


def test_period_bounds():
    from datetime import date

    assert period_bounds("week", date(2026, 11, 26)) == (date(2026, 11, 23), date(2026, 11, 30))
    assert period_bounds("month", date(2026, 12, 31)) == (date(2026, 12, 1), date(2027, 1, 1))


def test_caller_history(client, engine):
    _calls(engine)
    history = client.get("/api/callers/13907721234/history", headers=login(client, "agent")).json()
    assert history["caller_name"] == "刘女士" and history["address"] == "合山市"
    assert len(history["calls"]) == 6 and history["tickets"][0]["number"] == "T-1"
    assert client.get("/api/callers/abc/history", headers=login(client, "agent")).status_code == 422
    assert client.get("/api/callers/13907721234/history", headers=login(client, "qa")).status_code == 403


def test_evaluation_arguments_are_checked(client):
    ev = login(client, "evaluator")
    benches = {b["name"]: b for b in client.get("/api/evaluations/benchmarks", headers=ev).json()}
    assert "asr" in benches and any(p["name"] == "data" and p["required"] for p in benches["asr"]["params"])
    r = client.post("/api/evaluations/runs", json={"benchmark": "asr", "args": {}}, headers=ev)
    assert r.status_code == 422 and "缺少必填参数" in r.json()["error"]["message"]
    r = client.post("/api/evaluations/runs", json={"benchmark": "asr", "args": {"data": "--help"}}, headers=ev)
    assert r.status_code == 422
    r = client.post("/api/evaluations/runs", json={"benchmark": "asr", "args": {"bogus": "1"}}, headers=ev)
    assert r.json()["error"]["code"] == "unknown_parameter"
    assert client.post("/api/evaluations/runs", json={"benchmark": "nope"}, headers=ev).status_code == 404
    assert client.get("/api/evaluations/runs", headers=login(client, "agent")).status_code == 403
