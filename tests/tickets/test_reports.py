"""Ticket reports: hand-counted volumes, on-time completion, return rate and satisfaction, and the XLSX export."""
from __future__ import annotations

import io
from datetime import timedelta

from openpyxl import load_workbook

from tickets import reports as ticket_reports
from tickets.lifecycle import SlaPolicy, TicketDraft, create_ticket, transition


def test_report_figures_by_hand(session, tenant_id, clock):
    policy = SlaPolicy(default_hours=48, rules=[])
    start = clock()

    def ticket(category, district, steps, hours_between=1):
        t = create_ticket(session, tenant_id, TicketDraft(category=category, district=district, phone="13800138000"),
                          actor="agent", now=clock(), policy=policy)
        for action, kw in steps:
            clock.advance(hours=hours_between)
            transition(session, t, action, actor="agent", now=clock(), **kw)
        return t

    done = [("dispatch", {"department": "市住建局"}), ("sign", {}), ("complete", {"result": "已办"})]
    ticket("城乡建设/市政设施/路灯", "兴宾区", done + [("callback", {"satisfaction": 5})])  # on time
    late = done + [("callback", {"satisfaction": 2})]
    ticket("城乡建设/市容环境/占道经营", "兴宾区", late, hours_between=20)  # completed after 60 h of 48: late
    ticket("教育/义务教育/入学", "象州县", [("dispatch", {"department": "市教育局"}), ("return", {"reason": "非职责"}),
                                   ("redispatch", {"department": "象州县教育局"}), ("sign", {}),
                                   ("complete", {"result": "已答复"}), ("callback", {"satisfaction": 4})])
    ticket("教育/学前教育/收费", "象州县", [("dispatch", {"department": "市教育局"})])
    ticket("政务服务/热线服务/咨询", "", [("complete", {"result": "当场解答"})])  # never dispatched
    clock.advance(days=1)  # next local day
    ticket("教育/义务教育/入学", "合山市", [])

    report = ticket_reports.build(session, tenant_id, start - timedelta(hours=1), clock() + timedelta(hours=1))
    assert report["total"] == 6
    assert report["by_category"][:2] == [{"name": "教育", "count": 3}, {"name": "城乡建设", "count": 2}]
    assert {d["name"]: d["count"] for d in report["by_district"]} == {"兴宾区": 2, "象州县": 2, "合山市": 1, "（未填）": 1}
    assert {d["name"]: d["count"] for d in report["by_department"]}["象州县教育局"] == 1
    assert report["by_period"][0] == {"name": "2026-11-24", "count": 2}  # local days, in order
    assert sum(p["count"] for p in report["by_period"]) == 6
    assert (report["completed"], report["completed_on_time"], report["on_time_rate"]) == (4, 3, 0.75)
    assert (report["dispatched"], report["returned"], report["return_rate"]) == (4, 1, 0.25)
    assert report["satisfaction"] == {"rated": 3, "average": 3.67, "satisfied_rate": round(2 / 3, 4),
                                      "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}}
    month = ticket_reports.build(session, tenant_id, start - timedelta(hours=1), clock() + timedelta(hours=1), "month")
    assert month["by_period"] == [{"name": "2026-11", "count": 6}]

    wb = load_workbook(io.BytesIO(ticket_reports.to_xlsx(report)))
    overview = {row[0].value: row[1].value for row in wb["概览"].iter_rows()}
    assert overview["工单总量"] == 6 and overview["按时办结率"] == 0.75 and overview["退单率"] == 0.25
    assert [r[0].value for r in wb["按区县"].iter_rows(min_row=2)][:2] == ["兴宾区", "象州县"]


def test_xlsx_neutralises_formulas():
    data = {"start": "2026-11-01", "end": "2026-11-02", "total": 1, "completed": 0, "completed_on_time": 0,
            "on_time_rate": None, "dispatched": 0, "returned": 0, "return_rate": None, "overdue_open": 0,
            "satisfaction": {"rated": 0, "average": None, "satisfied_rate": None,
                             "distribution": {str(k): 0 for k in range(1, 6)}},
            **{k: [] for k in ("by_category_path", "by_district", "by_department", "by_request_type", "by_period",
                               "by_state")}, "by_category": [{"name": "=HYPERLINK(\"http://x\")", "count": 1}]}
    wb = load_workbook(io.BytesIO(ticket_reports.to_xlsx(data)))
    assert wb["按分类"]["A2"].value == "'=HYPERLINK(\"http://x\")"
