"""Monthly KPI exactly as the contract's 业务考核办法 (11 indicators), with the working shown.

``assess(inputs, settings)`` is pure arithmetic on counts, with the tenant's contract numbers
(:class:`domain.tenant_settings.KpiSettings`, set by its admins); ``gather(session, tenant_id, month)``
collects those counts from the database (calls, outages, SMS receipts, ratings, reviewed QA
samples) plus the month's manual entries; ``compute_month`` stores the result in ``KpiMonth``.

Arithmetic is exact (fractions), so boundary values (exactly 95 %, exactly 90 points) land on the
right side.  How a partial step is counted is a setting (``step_rounding``):
``ceil`` (default; a started step counts in full: 94.95 % with "−1 per 0.1 % below" costs 1 point),
``floor`` (only completed steps count) or ``proportional`` (fractional deductions).
Each indicator's score is floored at 0.  奖惩: net points (commendations − incidents), capped at +5.
"""
from __future__ import annotations

import calendar
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from zoneinfo import ZoneInfo

from domain import tenant_settings
from domain.tenant_settings import KpiSettings, Rounding


@dataclass
class KpiInputs:
    """Counts for one month (each a plain number so a month can be worked by hand)."""
    month: str
    service_minutes: float  # 月服务时间
    call_system_outage_minutes: float = 0
    line_outage_minutes: float = 0  # 不可抗力 already excluded
    sms_delivered: int = 0
    sms_sent: int = 0  # excluding empty/suspended numbers and abnormal handsets
    calls_incoming: int = 0
    calls_lost: int = 0  # lost by the system after entering the switch, before allocation
    calls_to_agents: int = 0  # transferred to agents, excluding callers hanging up within 20 s
    calls_answered: int = 0
    ratings_total: int = 0  # excluding dissatisfaction not caused by the agent's attitude
    ratings_satisfied: int = 0
    qa_samples: int = 0  # reviewed QA samples
    qa_samples_answer_ok: int = 0  # without a serious answer error
    qa_samples_service_ok: int = 0  # without a serious service violation
    complaints_justified: int = 0
    calls_handled: int = 0  # denominator of 服务投诉量 (calls answered)
    leavers: int = 0  # > half a year of service, dismissals not counted
    reward_points: float = 0  # commendations
    penalty_points: float = 0  # incidents


@dataclass
class Indicator:
    no: int
    code: str
    name: str
    standard: str
    weight: float
    actual: float | None  # percent or per-mille, as displayed
    unit: str
    numerator: float
    denominator: float
    steps: float
    deduction: float
    score: float
    working: str


@dataclass
class KpiReport:
    month: str
    indicators: list[Indicator]
    base_score: float
    bonus: float
    total_score: float
    coefficient: float
    fee_cny: float
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def coefficient_for(total: float) -> float:
    """90 ≤ N → 1.0; 80 ≤ N < 90 → 0.95; 70 ≤ N < 80 → 0.9; 60 < N < 70 → 0.8; N ≤ 60 → 0.75."""
    if total >= 90:
        return 1.0
    if total >= 80:
        return 0.95
    if total >= 70:
        return 0.9
    if total > 60:
        return 0.8
    return 0.75


def _steps(gap: Fraction, step: Fraction, rounding: Rounding) -> Fraction:
    if gap <= 0:
        return Fraction(0)
    raw = gap / step
    if rounding == "ceil":
        return Fraction(math.ceil(raw))
    if rounding == "floor":
        return Fraction(math.floor(raw))
    return raw


def _num(x: Fraction | float) -> float:
    return round(float(x), 4)


def _pct(num: float, den: float) -> Fraction | None:
    return Fraction(num).limit_denominator(10**9) / Fraction(den).limit_denominator(10**9) * 100 if den else None


def _rate_indicator(no, code, name, weight, num, den, *, threshold, step, higher_is_better, unit, rounding,
                    standard, empty_full=True) -> Indicator:
    value = None if not den else Fraction(num).limit_denominator(10**9) / Fraction(den).limit_denominator(10**9) * (
        1000 if unit == "‰" else 100)
    if value is None:
        return Indicator(no, code, name, standard, weight, None, unit, num, den, 0, 0.0,
                         float(weight) if empty_full else 0.0, f"本月无数据（分母为 0），按满分 {weight} 分计")
    gap = Fraction(threshold) - value if higher_is_better else value - Fraction(threshold)
    steps = _steps(gap, Fraction(step), rounding)
    deduction = min(Fraction(weight), steps)
    score = max(Fraction(0), Fraction(weight) - steps)
    rel = "低于" if higher_is_better else "高于"
    working = (f"{_num(num):g}/{_num(den):g} = {_num(value):g}{unit}；标准 {standard}；"
               + (f"{rel}标准 {_num(gap):g}{unit}，每 {_num(step):g}{unit} 扣 1 分，计 {_num(steps):g} 步，扣 {_num(deduction):g} 分"
                  if gap > 0 else "达标，不扣分")
               + f"；得分 {_num(score):g}")
    return Indicator(no, code, name, standard, weight, _num(value), unit, num, den, _num(steps), _num(deduction),
                     _num(score), working)


def assess(inp: KpiInputs, s: KpiSettings = KpiSettings()) -> KpiReport:
    r = s.step_rounding
    inds = [
        _rate_indicator(1, "call_system_availability", "呼叫接入系统可用率", 10,
                        inp.service_minutes - inp.call_system_outage_minutes, inp.service_minutes,
                        threshold=95, step=Fraction(1, 10), higher_is_better=True, unit="%", rounding=r,
                        standard="≥95%"),
        _rate_indicator(2, "line_availability", "通信线路可用率", 10,
                        inp.service_minutes - inp.line_outage_minutes, inp.service_minutes,
                        threshold=95, step=Fraction(1, 10), higher_is_better=True, unit="%", rounding=r,
                        standard="≥95%"),
        _rate_indicator(3, "sms_arrival", "短信有效到达率", 5, inp.sms_delivered, inp.sms_sent,
                        threshold=95, step=1, higher_is_better=True, unit="%", rounding=r, standard="≥95%"),
        _rate_indicator(4, "call_loss", "呼损率", 10, inp.calls_lost, inp.calls_incoming,
                        threshold=5, step=Fraction(1, 10), higher_is_better=False, unit="%", rounding=r,
                        standard="<5%"),
        _rate_indicator(5, "manual_answer_rate", "人工接通率", 10, inp.calls_answered, inp.calls_to_agents,
                        threshold=90, step=Fraction(1, 2), higher_is_better=True, unit="%", rounding=r,
                        standard="≥90%"),
        _rate_indicator(6, "satisfaction", "按键满意率", 15, inp.ratings_satisfied, inp.ratings_total,
                        threshold=90, step=1, higher_is_better=True, unit="%", rounding=r, standard="≥90%"),
        _rate_indicator(7, "answer_accuracy", "解答准确率", 10, inp.qa_samples_answer_ok, inp.qa_samples,
                        threshold=90, step=1, higher_is_better=True, unit="%", rounding=r, standard="≥90%"),
        _rate_indicator(8, "complaints", "服务投诉量", 10, inp.complaints_justified, inp.calls_handled,
                        threshold=Fraction(s.complaint_threshold_permille).limit_denominator(1000), step=1,
                        higher_is_better=False, unit="‰", rounding=r,
                        standard=f"≤{s.complaint_threshold_permille:g}‰"),
        _rate_indicator(9, "service_compliance", "服务达标率", 10, inp.qa_samples_service_ok, inp.qa_samples,
                        threshold=90, step=1, higher_is_better=True, unit="%", rounding=r, standard="≥90%"),
        _rate_indicator(10, "staff_turnover", "人员流失率", 10, inp.leavers, s.contract_headcount,
                        threshold=4, step=3, higher_is_better=False, unit="%", rounding=r, standard="≤4%"),
    ]
    net = Fraction(inp.reward_points).limit_denominator(100) - Fraction(inp.penalty_points).limit_denominator(100)
    bonus = min(net, Fraction(s.bonus_cap).limit_denominator(100))
    inds.append(Indicator(11, "rewards", "奖惩指标", f"加分≤+{s.bonus_cap:g}", 0, _num(net), "分", inp.reward_points, inp.penalty_points, 0,
                          _num(-bonus) if bonus < 0 else 0.0, _num(bonus),
                          f"表扬 +{inp.reward_points:g}，惩罚 −{inp.penalty_points:g}，净 {_num(net):g} 分"
                          + (f"，加分封顶 +{s.bonus_cap:g}" if net > s.bonus_cap else "") + f"；计 {_num(bonus):+g} 分"))
    base = sum(Fraction(i.score).limit_denominator(10**6) for i in inds[:10])
    total = max(Fraction(0), base + bonus)
    coef = coefficient_for(float(total))
    fee = round(s.contract_total_cny / s.contract_months * coef, s.fee_decimals)
    return KpiReport(inp.month, inds, _num(base), _num(bonus), _num(total), coef, fee, s.model_dump())


def quarter_fee(reports: list[KpiReport]) -> float:
    """Quarterly settlement: the sum of three monthly fees."""
    if len(reports) != 3:
        raise ValueError("季度结算需要三个月的考核结果")
    return round(sum(r.fee_cny for r in reports), 2)


# ------------------------------------------------------------------ from the database
def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first and next month's first instant, in the tenant's zone ``tz``."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=tz)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"月份格式应为 YYYY-MM：{month!r}") from exc
    return start, start + timedelta(days=calendar.monthrange(year, mon)[1])


MANUAL_KINDS = {
    "commendation": "表扬（加分）",
    "incident": "惩罚（扣分）",
    "leaver": "离职人员（服务满半年，非辞退）",
    "complaint": "经核实的有效服务投诉",
    "rating_exclusion": "非服务态度原因的不满意评价（剔除）",
}


def _ensure_month(session, tenant_id: int, month: str):
    from sqlalchemy import select

    from domain.models import KpiMonth

    month_bounds(month, timezone.utc)  # a valid month
    row = session.scalars(select(KpiMonth).where(KpiMonth.tenant_id == tenant_id, KpiMonth.month == month)).first()
    if row is None:
        row = KpiMonth(tenant_id=tenant_id, month=month, manual={"entries": []}, computed={})
        session.add(row)
        session.flush()
    return row


def add_manual_entry(session, tenant_id: int, month: str, kind: str, value: float, note: str, *,
                     actor_id: int | None = None, actor_name: str = "", field_name: str | None = None) -> dict:
    """Record a manual input (表扬/惩罚/离职/有效投诉/评价剔除, or ``override`` of a counted input)."""
    from domain import audit
    from domain.errors import AppError

    if kind == "override":
        if field_name not in KpiInputs.__dataclass_fields__ or field_name == "month":
            raise AppError("invalid_field", f"无法覆盖的考核数据项：{field_name}", 422)
    elif kind not in MANUAL_KINDS:
        raise AppError("invalid_kind", f"未知的手工录入类型：{kind}", 422)
    if value < 0:
        raise AppError("invalid_value", "录入数值不能为负数", 422)
    if not note.strip():
        raise AppError("note_required", "手工录入必须填写说明", 422)
    row = _ensure_month(session, tenant_id, month)
    entries = list((row.manual or {}).get("entries", []))
    entry = {"id": max((e["id"] for e in entries), default=0) + 1, "kind": kind, "value": value, "note": note.strip(),
             "field": field_name, "by": actor_name, "at": datetime.now(timezone.utc).isoformat()}
    entries.append(entry)
    row.manual = {**(row.manual or {}), "entries": entries}
    audit.record(session, "kpi.manual_add", tenant_id=tenant_id, actor_id=actor_id, actor_name=actor_name,
                 entity="kpi_month", entity_id=f"{month}#{entry['id']}", after=entry)
    return entry


def remove_manual_entry(session, tenant_id: int, month: str, entry_id: int, *, actor_id: int | None = None,
                        actor_name: str = "") -> None:
    from domain import audit
    from domain.errors import not_found

    row = _ensure_month(session, tenant_id, month)
    entries = list((row.manual or {}).get("entries", []))
    entry = next((e for e in entries if e["id"] == entry_id), None)
    if entry is None:
        raise not_found("手工录入")
    row.manual = {**row.manual, "entries": [e for e in entries if e["id"] != entry_id]}
    audit.record(session, "kpi.manual_remove", tenant_id=tenant_id, actor_id=actor_id, actor_name=actor_name,
                 entity="kpi_month", entity_id=f"{month}#{entry_id}", before=entry)


def _utc(dt: datetime) -> datetime:
    """Database times are UTC; SQLite hands them back naive, PostgreSQL aware."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def _overlap_minutes(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(_utc(end), hi) - max(_utc(start), lo)).total_seconds() / 60)


def gather(session, tenant_id: int, month: str, s: KpiSettings = KpiSettings()) -> KpiInputs:
    """Counts for ``month`` from the system's own data plus the month's manual entries."""
    from sqlalchemy import select

    from domain.models import Call, QAResult, ServiceOutage, SmsMessage

    lo, hi = (bound.astimezone(timezone.utc) for bound in month_bounds(month, tenant_settings.zone(session, tenant_id)))
    inp = KpiInputs(month=month, service_minutes=(hi - lo).total_seconds() / 60)
    for o in session.scalars(select(ServiceOutage).where(ServiceOutage.tenant_id == tenant_id,
                                                         ServiceOutage.started_at < hi, ServiceOutage.ended_at > lo)):
        minutes = _overlap_minutes(o.started_at, o.ended_at, lo, hi)
        if o.system == "call_system":
            inp.call_system_outage_minutes += minutes
        elif o.system == "line" and not o.force_majeure:
            inp.line_outage_minutes += minutes
    excluded_sms = {"empty_number", "suspended", "abnormal_handset", "queued"}
    for status in session.scalars(select(SmsMessage.status).where(
            SmsMessage.tenant_id == tenant_id, SmsMessage.created_at >= lo, SmsMessage.created_at < hi)):
        if status not in excluded_sms:
            inp.sms_sent += 1
            inp.sms_delivered += status == "delivered"
    for c in session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.direction == "in",
                                                Call.started_at >= lo, Call.started_at < hi)):
        inp.calls_incoming += 1
        inp.calls_lost += c.result == "lost"
        short = c.result == "abandoned_short" or (c.result == "abandoned" and c.queue_wait_ms < s.abandon_short_s * 1000)
        if c.result == "answered" or (c.result == "abandoned" and not short):
            inp.calls_to_agents += 1
        inp.calls_answered += c.result == "answered"
        inp.calls_handled += c.result == "answered"
        if c.satisfaction is not None:
            inp.ratings_total += 1
            inp.ratings_satisfied += c.satisfaction >= s.satisfied_min_rating
    for r in session.scalars(select(QAResult).where(QAResult.tenant_id == tenant_id, QAResult.sampled.is_(True),
                                                    QAResult.review_state == "reviewed",
                                                    QAResult.superseded_at.is_(None),  # one per call
                                                    QAResult.created_at >= lo, QAResult.created_at < hi)):
        inp.qa_samples += 1
        inp.qa_samples_answer_ok += not r.serious_answer_error
        inp.qa_samples_service_ok += not r.serious_service_violation
    row = _ensure_month(session, tenant_id, month)
    overrides = {}
    for e in (row.manual or {}).get("entries", []):
        if e["kind"] == "commendation":
            inp.reward_points += e["value"]
        elif e["kind"] == "incident":
            inp.penalty_points += e["value"]
        elif e["kind"] == "leaver":
            inp.leavers += int(e["value"])
        elif e["kind"] == "complaint":
            inp.complaints_justified += int(e["value"])
        elif e["kind"] == "rating_exclusion":
            inp.ratings_total -= int(e["value"])
        elif e["kind"] == "override":
            overrides[e["field"]] = e["value"]
    inp.ratings_total = max(inp.ratings_total, inp.ratings_satisfied)
    for name, value in overrides.items():
        setattr(inp, name, value)
    return inp


def compute_month(session, tenant_id: int, month: str, s: KpiSettings | None = None) -> KpiReport:
    """The month's report with the tenant's contract numbers (or ``s``), stored in ``KpiMonth``."""
    s = s or tenant_settings.get(session, tenant_id).kpi
    inputs = gather(session, tenant_id, month, s)
    report = assess(inputs, s)
    row = _ensure_month(session, tenant_id, month)
    row.computed = {"inputs": asdict(inputs), "report": report.to_dict()}
    row.total_score, row.coefficient, row.fee_cny = report.total_score, report.coefficient, report.fee_cny
    row.computed_at = datetime.now(timezone.utc)
    return report


def trend(session, tenant_id: int, months: list[str] | None = None) -> list[dict]:
    """Stored monthly results, oldest first: total, coefficient, fee and each indicator's score."""
    from sqlalchemy import select

    from domain.models import KpiMonth

    q = select(KpiMonth).where(KpiMonth.tenant_id == tenant_id, KpiMonth.total_score.is_not(None))
    if months:
        q = q.where(KpiMonth.month.in_(months))
    out = []
    for row in session.scalars(q.order_by(KpiMonth.month)):
        rep = row.computed.get("report", {})
        out.append({"month": row.month, "total_score": row.total_score, "coefficient": row.coefficient,
                    "fee_cny": row.fee_cny,
                    "indicators": {i["code"]: i["score"] for i in rep.get("indicators", [])}})
    return out


def quarter_of(month: str) -> list[str]:
    start, _ = month_bounds(month, timezone.utc)
    first = (start.month - 1) // 3 * 3 + 1
    return [f"{start.year}-{m:02d}" for m in range(first, first + 3)]
