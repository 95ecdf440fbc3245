"""Monthly KPI (业务考核): indicator-by-indicator working, manual entries with audit trail,
trend over months and the 服务考核表 / 结算报表 exports."""
from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from domain.accounts import Principal
from domain.errors import AppError
from domain.models import Tenant
from domain.validation import ShortText
from qa import kpi
from qa.kpi_export import to_pdf, to_xlsx
from serving.api.deps import get_session, require_roles

router = APIRouter(prefix="/api/kpi", tags=["kpi"])

READERS = ("supervisor", "evaluator", "admin")
EDITORS = ("supervisor", "admin")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class EntryIn(BaseModel):
    kind: Literal["commendation", "incident", "leaver", "complaint", "rating_exclusion", "override"]
    value: float = Field(ge=0)
    note: ShortText = Field(min_length=1)
    field: ShortText | None = None


def _month(month: str) -> str:
    if not MONTH.match(month):
        raise AppError("invalid_month", f"月份格式应为 YYYY-MM：{month}", 422)
    return month


def _months(months: str) -> list[str]:
    out = [_month(m.strip()) for m in months.split(",") if m.strip()]
    if not out:
        raise AppError("invalid_month", "请至少指定一个月份", 422)
    return out


@router.get("/months/{month}")
def month_report(month: str, p: Principal = Depends(require_roles(*READERS)), session: Session = Depends(get_session, scope="function")):
    """Recompute the month from the system's data and the manual entries, and store it."""
    report = kpi.compute_month(session, p.tenant_id, _month(month))
    row = kpi._ensure_month(session, p.tenant_id, month)
    return {**report.to_dict(), "inputs": row.computed.get("inputs"), "entries": row.manual.get("entries", [])}


@router.post("/months/{month}/entries", status_code=201)
def add_entry(month: str, body: EntryIn, p: Principal = Depends(require_roles(*EDITORS)),
              session: Session = Depends(get_session, scope="function")):
    return kpi.add_manual_entry(session, p.tenant_id, _month(month), body.kind, body.value, body.note,
                                actor_id=p.user.id, actor_name=p.user.username, field_name=body.field)


@router.delete("/months/{month}/entries/{entry_id}", status_code=204)
def remove_entry(month: str, entry_id: int, p: Principal = Depends(require_roles(*EDITORS)),
                 session: Session = Depends(get_session, scope="function")):
    kpi.remove_manual_entry(session, p.tenant_id, _month(month), entry_id, actor_id=p.user.id,
                            actor_name=p.user.username)
    return Response(status_code=204)


@router.get("/trend")
def trend(months: str | None = Query(None, description="逗号分隔的 YYYY-MM；缺省为全部已计算月份"),
          p: Principal = Depends(require_roles(*READERS)), session: Session = Depends(get_session, scope="function")):
    return kpi.trend(session, p.tenant_id, _months(months) if months else None)


@router.get("/export")
def export(months: str = Query(..., description="逗号分隔的 YYYY-MM"), fmt: Literal["xlsx", "pdf"] = "xlsx",
           p: Principal = Depends(require_roles(*READERS)), session: Session = Depends(get_session, scope="function")):
    reports = [kpi.compute_month(session, p.tenant_id, m) for m in _months(months)]
    name = session.get(Tenant, p.tenant_id).name
    if fmt == "xlsx":
        body, media = to_xlsx(reports, name), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body, media = to_pdf(reports, name), "application/pdf"
    filename = f"kpi-{reports[0].month}-{reports[-1].month}.{fmt}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
