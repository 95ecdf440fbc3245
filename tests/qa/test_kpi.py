"""Monthly KPI arithmetic against hand-worked months (contract 业务考核办法)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from domain.tenant_settings import KpiSettings
from qa.kpi import KpiInputs, assess, coefficient_for, quarter_fee

MONTH_MIN = 30 * 24 * 60  # a 30-day month: 43 200 service minutes
CONTRACT = KpiSettings(contract_total_cny=6_855_800)  # the demo tenant's contract total


def perfect(**kw) -> KpiInputs:
    base = dict(month="2026-06", service_minutes=MONTH_MIN, sms_delivered=990, sms_sent=1000, calls_incoming=1000,
                calls_lost=10, calls_to_agents=1000, calls_answered=950, ratings_total=1000, ratings_satisfied=950,
                qa_samples=10, qa_samples_answer_ok=10, qa_samples_service_ok=10, calls_handled=950)
    base.update(kw)
    return KpiInputs(**base)


def scores(report) -> dict[str, float]:
    return {i.code: i.score for i in report.indicators}


def test_full_marks_with_bonus_goes_above_100_and_bonus_is_capped():
    # worked by hand: every indicator meets its standard → 100; commendations 7 − incidents 0 → capped +5
    r = assess(perfect(reward_points=7), CONTRACT)
    assert r.base_score == 100 and r.bonus == 5 and r.total_score == 105
    assert r.coefficient == 1.0
    assert r.fee_cny == 190438.89  # 6 855 800 / 36 = 190 438.888… → 0.01 CNY
    rewards = r.indicators[-1]
    assert rewards.no == 11 and "封顶" in rewards.working


def test_exact_boundaries_meet_the_standard():
    # 95.000 % availability (2 160 of 43 200 minutes down), 95 % SMS, exactly 5 % loss, exactly 90 % answer rate
    r = assess(perfect(call_system_outage_minutes=2160, line_outage_minutes=2160, sms_delivered=950,
                       calls_lost=50, calls_answered=900, ratings_satisfied=900, qa_samples_answer_ok=9,
                       qa_samples_service_ok=9))
    s = scores(r)
    assert s["call_system_availability"] == 10 and s["line_availability"] == 10
    assert s["sms_arrival"] == 5 and s["call_loss"] == 10 and s["manual_answer_rate"] == 10
    assert s["satisfaction"] == 15 and s["answer_accuracy"] == 10 and s["service_compliance"] == 10
    assert r.total_score == 100


def test_exactly_90_points_is_coefficient_one():
    # 12 justified complaints / 1 000 handled calls = 12 ‰: 10 ‰ above the 2 ‰ setting → −10 → 0 (floor)
    r = assess(perfect(complaints_justified=12, calls_handled=1000))
    assert scores(r)["complaints"] == 0
    assert r.total_score == 90 and r.coefficient == 1.0


@pytest.mark.parametrize("rounding,line,satisfaction", [
    ("ceil", 8, 14),  # 94.85 %: 0.15 % below → 2 started steps; 89.5 %: 0.5 % below → 1 step
    ("floor", 9, 15),  # only completed steps count
    ("proportional", 8.5, 14.5),
])
def test_partial_steps_follow_the_rounding_setting(rounding, line, satisfaction):
    inp = perfect(line_outage_minutes=MONTH_MIN * 0.0515, ratings_satisfied=895)
    r = assess(inp, KpiSettings(step_rounding=rounding))
    s = scores(r)
    assert s["line_availability"] == line and s["satisfaction"] == satisfaction
    assert "0.15%" in r.indicators[1].working


def test_deductions_per_indicator_and_floor_at_zero():
    r = assess(perfect(
        sms_delivered=930,  # 93 % → 2 % below, −1 per 1 % → 3
        calls_lost=62,  # 6.2 % → 1.2 % above, −1 per 0.1 % → 10 − 12 → floor 0
        calls_answered=880,  # 88 % → 2 % below, −1 per 0.5 % → 6
        qa_samples=20, qa_samples_answer_ok=17,  # 85 % → 5 below → 5
        qa_samples_service_ok=19,  # 95 % → 10
        leavers=2,  # 2/27 = 7.41 % → 3.41 % above, −1 per 3 % (ceil → 2) → 8
        penalty_points=3,
    ), CONTRACT)
    s = scores(r)
    assert s["sms_arrival"] == 3 and s["call_loss"] == 0 and s["manual_answer_rate"] == 6
    assert s["answer_accuracy"] == 5 and s["service_compliance"] == 10 and s["staff_turnover"] == 8
    assert r.indicators[3].deduction == 10  # never more than the weight
    assert r.base_score == 10 + 10 + 3 + 0 + 6 + 15 + 5 + 10 + 10 + 8
    assert r.total_score == 77 - 3 and r.coefficient == 0.9
    assert r.fee_cny == round(6_855_800 / 36 * 0.9, 2)


@pytest.mark.parametrize("total,coef", [
    (100, 1.0), (90, 1.0), (89.99, 0.95), (80, 0.95), (79.5, 0.9), (70, 0.9), (69.9, 0.8), (60.5, 0.8),
    (60, 0.75), (12, 0.75),
])
def test_grade_bands(total, coef):
    assert coefficient_for(total) == coef


def test_quarterly_settlement_sums_three_months_and_contract_total_is_a_setting():
    s = KpiSettings(contract_total_cny=3_600_000)
    months = [assess(replace(perfect(), month=m), s) for m in ("2026-04", "2026-05", "2026-06")]
    assert all(m.fee_cny == 100_000 for m in months)
    assert quarter_fee(months) == 300_000
    with pytest.raises(ValueError):
        quarter_fee(months[:2])


def test_complaint_threshold_is_a_setting():
    inp = perfect(complaints_justified=3, calls_handled=1000)  # 3 ‰
    assert scores(assess(inp))["complaints"] == 9  # 1 ‰ above 2 ‰
    assert scores(assess(inp, KpiSettings(complaint_threshold_permille=20)))["complaints"] == 10


def test_month_without_data_scores_full_and_says_so():
    r = assess(KpiInputs(month="2026-02", service_minutes=28 * 1440))
    assert r.total_score == 100
    assert "无数据" in r.indicators[2].working


# ------------------------------------------------------------------ from the database
def test_compute_month_from_database_with_manual_entries(engine):
    from sqlalchemy import select

    from domain.db import session_scope
    from domain.models import AuditLog, Call, KpiMonth, ServiceOutage, SmsMessage, Tenant
    from qa import kpi

    def local(*parts):  # the tenant's time (the default zone), stored as UTC like every timestamp
        return datetime(*parts, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(timezone.utc)

    day = local(2026, 6, 10, 9)
    with session_scope(engine) as s:
        t = Tenant(code="kpi", name="KPI")
        s.add(t)
        s.flush()
        for i in range(100):
            result = "lost" if i < 6 else "abandoned_short" if i < 10 else "abandoned" if i < 18 else "answered"
            s.add(Call(tenant_id=t.id, call_uuid=f"c{i}", caller_number="1", started_at=day + timedelta(minutes=i),
                       result=result, queue_wait_ms=30000, satisfaction=(5 if i % 10 else 2) if result == "answered" else None))
        s.add(Call(tenant_id=t.id, call_uuid="may", caller_number="1", started_at=local(2026, 5, 31, 23), result="lost"))
        s.add(ServiceOutage(tenant_id=t.id, system="call_system", started_at=local(2026, 5, 31, 23),
                            ended_at=local(2026, 6, 1, 1), note="跨月"))  # 60 min inside June
        s.add(ServiceOutage(tenant_id=t.id, system="line", started_at=day, ended_at=day + timedelta(hours=50),
                            force_majeure=True))
        for i, status in enumerate(["delivered"] * 18 + ["failed", "empty_number", "suspended"]):
            s.add(SmsMessage(tenant_id=t.id, idempotency_key=f"k{i}", phone="1", body="x", status=status,
                             created_at=day))
        s.flush()
        kpi.add_manual_entry(s, t.id, "2026-06", "commendation", 2, "市民来信表扬", actor_name="admin")
        kpi.add_manual_entry(s, t.id, "2026-06", "leaver", 1, "坐席张某离职（服务满一年）", actor_name="admin")
        e = kpi.add_manual_entry(s, t.id, "2026-06", "incident", 1, "误录", actor_name="admin")
        kpi.remove_manual_entry(s, t.id, "2026-06", e["id"], actor_name="admin")
        inp = kpi.gather(s, t.id, "2026-06")
        assert inp.calls_incoming == 100 and inp.calls_lost == 6
        assert inp.calls_to_agents == 90 and inp.calls_answered == 82  # 4 short abandons excluded
        assert inp.call_system_outage_minutes == 60 and inp.line_outage_minutes == 0
        assert (inp.sms_delivered, inp.sms_sent) == (18, 19)
        assert inp.ratings_total == 82 and inp.ratings_satisfied == 82 - 8  # i = 20, 30, … 90 rated 2
        assert inp.reward_points == 2 and inp.penalty_points == 0 and inp.leavers == 1
        report = kpi.compute_month(s, t.id, "2026-06", KpiSettings())
        assert report.fee_cny == 0  # a tenant without a contract total yet
        tid = t.id
    # 呼损 6 % → 1 % above → −10 → 0; 人工接通 82/90 = 91.1 % ok; SMS 94.7 % → −1 → 4;
    # 满意 74/82 = 90.24 % ok; 流失 1/27 = 3.7 % ok; no QA samples → full; commendation +2
    s_ = scores(report)
    assert s_["call_loss"] == 0 and s_["sms_arrival"] == 4 and s_["satisfaction"] == 15
    assert report.total_score == 100 - 10 - 1 + 2
    with session_scope(engine) as s:
        row = s.scalars(select(KpiMonth).where(KpiMonth.tenant_id == tid)).one()
        assert row.total_score == 91 and row.coefficient == 1.0
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.tenant_id == tid))]
        assert actions.count("kpi.manual_add") == 3 and actions.count("kpi.manual_remove") == 1
        assert kpi.trend(s, tid)[0]["month"] == "2026-06"


def test_manual_entry_rejects_bad_input(engine):
    from domain.db import session_scope
    from domain.errors import AppError
    from domain.models import Tenant
    from qa import kpi

    with session_scope(engine) as s:
        t = Tenant(code="kpi2", name="KPI")
        s.add(t)
        s.flush()
        for kind, value, note in [("bonus", 1, "x"), ("commendation", -1, "x"), ("commendation", 1, " ")]:
            with pytest.raises(AppError):
                kpi.add_manual_entry(s, t.id, "2026-06", kind, value, note)
        with pytest.raises(ValueError):
            kpi.gather(s, t.id, "2026-13")


def test_exports_xlsx_and_pdf_with_working_and_quarter_total():
    from io import BytesIO

    from openpyxl import load_workbook

    from qa.kpi_export import to_pdf, to_xlsx

    months = [assess(replace(perfect(reward_points=1), month=m)) for m in ("2026-04", "2026-05", "2026-06")]
    months[1] = assess(perfect(month="2026-05", complaints_justified=12, calls_handled=1000, penalty_points=1))
    wb = load_workbook(BytesIO(to_xlsx(months, "来宾市")))
    assert wb.sheetnames == ["服务考核表2026-04", "服务考核表2026-05", "服务考核表2026-06", "结算报表"]
    sheet = wb["服务考核表2026-05"]
    names = [row[1] for row in sheet.iter_rows(min_row=3, values_only=True)]
    assert names[:3] == ["呼叫接入系统可用率", "通信线路可用率", "短信有效到达率"] and names[-1] == "合计"
    complaints = next(row for row in sheet.iter_rows(values_only=True) if row[1] == "服务投诉量")
    assert complaints[6] == 0 and "12‰" in complaints[7]
    settle = [row for row in wb["结算报表"].iter_rows(min_row=3, values_only=True)]
    assert settle[3][0].endswith("季度合计") and settle[3][3] == round(sum(m.fee_cny for m in months), 2)
    pdf = to_pdf(months, "来宾市")
    assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf
    with pytest.raises(ValueError):
        to_xlsx([])


def test_compute_month_uses_the_tenants_contract_numbers_and_zone(engine):
    """compute_month without explicit numbers takes the tenant's (domain.tenant_settings); the month's first
    instant is midnight in the tenant's zone."""
    from domain import tenant_settings
    from domain.db import session_scope
    from domain.models import Call, Tenant
    from qa import kpi

    with session_scope(engine) as s:
        t = Tenant(code="kpi3", name="KPI")
        s.add(t)
        s.flush()
        own = tenant_settings.TenantSettings().model_copy(update={
            "kpi": KpiSettings(contract_total_cny=3_600_000, complaint_threshold_permille=20),
            "time": tenant_settings.TimeSettings(time_zone="America/New_York")})
        tenant_settings.save(s, t.id, own)
        # 2026-06-01 02:00 UTC is still May 31 in New York: not a June call there
        s.add(Call(tenant_id=t.id, call_uuid="edge", caller_number="1", result="answered",
                   started_at=datetime(2026, 6, 1, 2, tzinfo=timezone.utc)))
        s.add(Call(tenant_id=t.id, call_uuid="june", caller_number="1", result="answered",
                   started_at=datetime(2026, 6, 1, 5, tzinfo=timezone.utc)))
        s.flush()
        assert kpi.gather(s, t.id, "2026-06").calls_incoming == 1
        report = kpi.compute_month(s, t.id, "2026-06")
    assert report.settings["contract_total_cny"] == 3_600_000 and report.settings["complaint_threshold_permille"] == 20
    assert report.fee_cny == round(3_600_000 / 36 * report.coefficient, 2)
