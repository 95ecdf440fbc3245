"""Ticket reports: volumes by category, district, department, request type and period; on-time completion rate,
return rate and satisfaction; exported to XLSX."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import spreadsheet, tenant_settings
from domain.models import Ticket, TicketEvent
from tickets.lifecycle import OPEN_STATES, STATE_LABELS, as_utc


def _period(at: datetime, granularity: str, tz: ZoneInfo) -> str:
    local = as_utc(at).astimezone(tz)
    if granularity == "month":
        return local.strftime("%Y-%m")
    if granularity == "week":
        monday = local.date() - timedelta(days=local.weekday())
        return f"{monday:%Y-%m-%d}周"
    return local.strftime("%Y-%m-%d")


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def build(session: Session, tenant_id: int, start: datetime, end: datetime, granularity: str = "day") -> dict:
    """The report over tickets created in [start, end)."""
    tickets = session.scalars(select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.created_at >= start,
                                                   Ticket.created_at < end)).all()
    ids = [t.id for t in tickets]
    actions: dict[int, set[str]] = {}
    for ticket_id, action in session.execute(select(TicketEvent.ticket_id, TicketEvent.action).where(
            TicketEvent.tenant_id == tenant_id, TicketEvent.ticket_id.in_(ids),
            TicketEvent.action.in_(("dispatch", "return")))) if ids else []:
        actions.setdefault(ticket_id, set()).add(action)
    completed = [t for t in tickets if t.completed_at is not None]
    on_time = [t for t in completed if t.due_at is None or as_utc(t.completed_at) <= as_utc(t.due_at)]
    dispatched = [t for t in tickets if "dispatch" in actions.get(t.id, ())]
    returned = [t for t in dispatched if "return" in actions.get(t.id, ())]
    rated = [t.satisfaction for t in tickets if t.satisfaction is not None]
    own = tenant_settings.get(session, tenant_id)
    tz = own.zone
    now = tenant_settings.local_now(tz)
    overdue_open = [t for t in tickets if t.state in OPEN_STATES and t.due_at and as_utc(t.due_at) < now]

    def volumes(key) -> list[dict]:
        return [{"name": name or "（未填）", "count": n} for name, n in Counter(key(t) for t in tickets).most_common()]

    return {
        "start": tenant_settings.isoformat(start, tz), "end": tenant_settings.isoformat(end, tz), "granularity": granularity,
        "total": len(tickets),
        "by_state": [{"name": STATE_LABELS[s], "count": n} for s, n in Counter(t.state for t in tickets).most_common()],
        "by_category": volumes(lambda t: t.category.split("/")[0]),
        "by_category_path": volumes(lambda t: t.category),
        "by_district": volumes(lambda t: t.district),
        "by_department": volumes(lambda t: t.department),
        "by_request_type": volumes(lambda t: t.request_type),
        "by_period": sorted(volumes(lambda t: _period(t.created_at, granularity, tz)), key=lambda r: r["name"]),
        "completed": len(completed), "completed_on_time": len(on_time),
        "on_time_rate": _ratio(len(on_time), len(completed)),
        "dispatched": len(dispatched), "returned": len(returned), "return_rate": _ratio(len(returned), len(dispatched)),
        "overdue_open": len(overdue_open),
        "satisfaction": {"rated": len(rated), "average": round(sum(rated) / len(rated), 2) if rated else None,
                         "satisfied_rate": _ratio(sum(1 for s in rated if s >= own.kpi.satisfied_min_rating), len(rated)),
                         "distribution": {str(k): rated.count(k) for k in range(1, 6)}},
    }


def to_xlsx(report: dict) -> bytes:
    overview = [["统计区间", f"{report['start'][:10]} 至 {report['end'][:10]}（不含）"], ["工单总量", report["total"]],
                ["已办结", report["completed"]], ["按时办结", report["completed_on_time"]],
                ["按时办结率", report["on_time_rate"]], ["已派单", report["dispatched"]], ["被退单", report["returned"]],
                ["退单率", report["return_rate"]], ["超期未办结", report["overdue_open"]],
                ["回访数", report["satisfaction"]["rated"]], ["平均满意度（1–5）", report["satisfaction"]["average"]],
                ["满意率（4–5 分）", report["satisfaction"]["satisfied_rate"]]]
    sheets = [spreadsheet.Sheet("概览", [], overview, widths=[22, 40])]
    for title, key, label in (("按分类", "by_category", "一级分类"), ("按分类明细", "by_category_path", "分类"),
                              ("按区县", "by_district", "区县"), ("按部门", "by_department", "承办部门"),
                              ("按诉求类型", "by_request_type", "诉求类型"), ("按时间", "by_period", "时段"),
                              ("按状态", "by_state", "状态")):
        sheets.append(spreadsheet.Sheet(title, [label, "工单量"], [[i["name"], i["count"]] for i in report[key]],
                                        widths=[36, 10]))
    sheets.append(spreadsheet.Sheet("满意度", ["满意度", "回访数"],
                                    [[int(k), n] for k, n in report["satisfaction"]["distribution"].items()]))
    return spreadsheet.to_xlsx(sheets)
