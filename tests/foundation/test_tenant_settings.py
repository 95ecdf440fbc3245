"""Tenant settings: a new tenant has none of the demo city's data, admins edit them through the API (role- and
tenant-checked, audited, validated in Chinese), and times follow the tenant's zone."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import select

from domain import accounts, tenant_settings
from domain.db import session_scope
from demo import DEMO_PASSWORD
from domain.models import AuditLog, Call, Tenant
from tickets.call_reports import build_report
from tests.conftest import login


def test_a_tenant_added_from_the_cli_gets_no_demo_data(app, engine, db_url, tmp_path):
    env = {**os.environ, "HOTLINE_DATABASE_URL": db_url, "HOTLINE_DATA_DIR": str(tmp_path / "cli")}
    hotline = Path(sys.executable).with_name("hotline")
    done = subprocess.run([str(hotline), "tenant", "add", "wuzhou", "梧州市12345政务服务便民热线"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([str(hotline), "tenant", "add", "wuzhou", "x"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode != 0 and "已存在" in again.stdout + again.stderr

    from knowledge.live import TenantLexicons

    with session_scope(engine) as s:
        demo = s.scalar(select(Tenant).where(Tenant.code == "laibin"))
        new = s.scalar(select(Tenant).where(Tenant.code == "wuzhou"))
        own = tenant_settings.get(s, new.id)
        assert own == tenant_settings.TenantSettings()
        assert own.lexicon.base_terms == [] and tenant_settings.gazetteer(s, new.id) == {}
        assert own.kpi.contract_total_cny == 0
        assert "兴宾区" in tenant_settings.gazetteer(s, demo.id)
        assert "河西街道" in tenant_settings.gazetteer(s, demo.id)["兴宾区"]
        lexicons = TenantLexicons()
        assert "金秀瑶族自治县" in lexicons.get(s, demo.id).terms
        assert lexicons.get(s, new.id).terms == []  # no KB, no base terms: nothing of the demo city


def test_settings_round_trip_with_role_tenant_checks_audit_and_chinese_errors(client, engine):
    admin = login(client, "admin")
    groups = {g["name"]: g for g in client.get("/api/admin/settings", headers=admin).json()["groups"]}
    assert set(groups) == {"lexicon", "places", "kpi", "time", "knowledge"}
    assert groups["time"]["values"]["time_zone"] == "Asia/Shanghai"
    assert groups["kpi"]["schema"]["properties"]["contract_months"]["description"].startswith("合同月数")

    for role in ("supervisor", "agent", "qa", "km", "evaluator"):
        headers = login(client, role)
        assert client.get("/api/admin/settings", headers=headers).status_code == 403
        assert client.put("/api/admin/settings/kpi", headers=headers, json={}).status_code == 403

    places = {"districts": ["兴宾区", "新区"], "gazetteer": {"新区": ["甲街道", "乙镇"]}}
    r = client.put("/api/admin/settings/places", headers=admin, json=places)
    assert r.status_code == 200, r.text
    assert r.json()["values"] == places
    r = client.put("/api/admin/settings/kpi", headers=admin,
                   json={**groups["kpi"]["values"], "contract_total_cny": 1_200_000, "kb_four_eyes": True})
    assert r.status_code == 422 and r.json()["error"]["message"] == "「kb_four_eyes」不是可设置的项目"
    r = client.put("/api/admin/settings/knowledge", headers=admin, json={"kb_four_eyes": True})
    assert r.json()["values"] == {"kb_four_eyes": True}

    bad = [
        ("time", {"time_zone": "Mars/Olympus"}, "未知时区“Mars/Olympus”，请填写 IANA 时区名称，如 Asia/Shanghai"),
        ("time", {"working_hours": ["18:00-08:00"]}, "人工服务时间“18:00-08:00”的结束必须晚于开始"),
        ("time", {"working_hours": ["早八点"]}, "人工服务时间“早八点”应写成 时:分-时:分，如 08:00-12:00"),
        ("kpi", {"contract_months": 0}, "「合同月数」不能小于 1"),
        ("kpi", {"satisfied_min_rating": "五"}, "「评分不低于此值计为满意」应为整数"),
        ("places", {"districts": ["甲区"], "gazetteer": {"乙区": ["丙镇"]}}, "地名库中的“乙区”不在辖区列表中"),
        ("lexicon", {"base_terms": ["热线\x00"]}, "包含不允许的控制字符"),
    ]
    for group, body, message in bad:
        r = client.put(f"/api/admin/settings/{group}", headers=admin, json=body)
        assert r.status_code == 422 and r.json()["error"]["message"] == message, (group, r.text)
    assert client.put("/api/admin/settings/nope", headers=admin, json={}).status_code == 404

    with session_scope(engine) as s:
        demo_id = s.scalar(select(Tenant.id).where(Tenant.code == "laibin"))
        own = tenant_settings.get(s, demo_id)
        assert own.places.districts == ["兴宾区", "新区"] and own.knowledge.kb_four_eyes
        audit = s.scalars(select(AuditLog).where(AuditLog.tenant_id == demo_id,
                                                 AuditLog.action == "tenant_settings.update")).all()
        assert [a.actor_name for a in audit] == ["admin", "admin"]  # two saves, the refused ones left no trace
        assert audit[-1].after["data"]["knowledge"] == {"kb_four_eyes": True}
        other = accounts.ensure_tenant(s, "wuzhou", "梧州市12345政务服务便民热线")
        accounts.create_user(s, other, "admin", DEMO_PASSWORD + "x", "admin", "梧州管理员")

    # another tenant's admin sees and changes only its own settings
    wuzhou = login(client, "admin", DEMO_PASSWORD + "x", tenant="wuzhou")
    theirs = {g["name"]: g["values"] for g in client.get("/api/admin/settings", headers=wuzhou).json()["groups"]}
    assert theirs["places"] == {"districts": [], "gazetteer": {}} and theirs["lexicon"] == {"base_terms": []}
    # the dashboard lists the tenant's districts
    districts = [d["name"] for d in client.get("/api/reports/dashboard", headers=login(client, "supervisor"))
                 .json()["districts"]]
    assert districts == ["兴宾区", "新区"]


def test_today_is_the_tenants_day_and_api_times_carry_their_offset(client, engine):
    with session_scope(engine) as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.code == "laibin"))
        # 23:30 UTC on 6 December is 07:30 on 7 December in Asia/Shanghai
        s.add(Call(tenant_id=tenant_id, call_uuid="late", caller_number="13900000000", result="answered",
                   started_at=datetime(2026, 12, 6, 23, 30, tzinfo=timezone.utc),
                   answered_at=datetime(2026, 12, 6, 23, 30, 5, tzinfo=timezone.utc),
                   ended_at=datetime(2026, 12, 6, 23, 35, tzinfo=timezone.utc)))
    with session_scope(engine) as s:
        assert build_report(s, tenant_id, "overall", "day", date(2026, 12, 7))["rows"][0]["offered"] == 1
        assert build_report(s, tenant_id, "overall", "day", date(2026, 12, 6))["rows"][0]["offered"] == 0
        hourly = build_report(s, tenant_id, "hourly", "day", date(2026, 12, 7))["rows"]
        assert [r["hour"] for r in hourly if r["offered"]] == ["07:00"]
        stored = s.scalar(select(Call).where(Call.call_uuid == "late"))
        assert stored.started_at == datetime(2026, 12, 6, 23, 30, tzinfo=timezone.utc)  # read back as aware UTC
        tenant_settings.save(s, tenant_id, tenant_settings.get(s, tenant_id).model_copy(
            update={"time": tenant_settings.TimeSettings(time_zone="America/New_York")}))
    with session_scope(engine) as s:  # in New York it is still 6 December, 18:30
        assert build_report(s, tenant_id, "overall", "day", date(2026, 12, 6))["rows"][0]["offered"] == 1
    sup = login(client, "supervisor")
    r = client.get("/api/reports/calls/overall", params={"period": "day", "date": "2026-12-06"}, headers=sup)
    assert r.json()["rows"][0]["offered"] == 1
    assert client.get("/api/auth/me", headers=sup).json()["time_zone"] == "America/New_York"
    audit = client.get("/api/admin/audit", headers=login(client, "admin")).json()
    assert audit and all(row["at"].endswith("+00:00") for row in audit)  # UTC with its offset; pages convert


def test_working_hours_are_read_on_the_tenants_clock():
    hours = tenant_settings.TimeSettings(working_hours=["08:00-12:00", " 14:00－18:00 "])
    assert hours.working_hours == ["08:00-12:00", "14:00-18:00"]
    assert hours.is_working(datetime(2026, 12, 7, 1, 30, tzinfo=timezone.utc))  # 09:30 in Asia/Shanghai
    assert not hours.is_working(datetime(2026, 12, 7, 4, 30, tzinfo=timezone.utc))  # 12:30 there
    assert hours.is_working(datetime(2026, 12, 7, 9, 30, tzinfo=timezone.utc))  # 17:30 there
    assert not hours.is_working(datetime(2026, 12, 7, 17, 30, tzinfo=timezone.utc))  # 01:30 there, not 17:30
    assert tenant_settings.TimeSettings().is_working(datetime(2026, 12, 7, 15, 59, tzinfo=timezone.utc))  # 7×24
    assert not tenant_settings.TimeSettings(working_hours=[]).is_working(datetime.now(timezone.utc))
