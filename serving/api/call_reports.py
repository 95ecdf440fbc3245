"""The call-traffic reports and the supervisors' dashboard over HTTP; the reports are built in
:mod:`tickets.call_reports`."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from domain.accounts import Principal
from domain.spreadsheet import XLSX_MEDIA_TYPE
from serving.api.deps import get_session, require_roles
from tickets import call_reports
from tickets.call_reports import Period

router = APIRouter(prefix="/api/reports", tags=["reports"])
SUPERVISORS = require_roles("supervisor", "admin")


@router.get("/calls")
def list_reports(_principal: Principal = Depends(SUPERVISORS)) -> list[dict]:
    return [{"name": name, "title": title} for name, title in call_reports.REPORT_TITLES.items()]


@router.get("/calls/{name}")
def get_report(name: str, period: Period = "day", day: date | None = Query(None, alias="date"),
               principal: Principal = Depends(SUPERVISORS),
               session: Session = Depends(get_session, scope="function")) -> dict:
    return call_reports.build_report(session, principal.tenant_id, name, period, day)


@router.get("/calls/{name}/xlsx")
def export_report(name: str, period: Period = "day", day: date | None = Query(None, alias="date"),
                  principal: Principal = Depends(SUPERVISORS),
                  session: Session = Depends(get_session, scope="function")) -> Response:
    report = call_reports.build_report(session, principal.tenant_id, name, period, day)
    filename = f"{name}-{report['period']}-{report['start']}.xlsx"
    return Response(call_reports.to_xlsx(report), media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/dashboard")
def get_dashboard(principal: Principal = Depends(SUPERVISORS),
                  session: Session = Depends(get_session, scope="function")) -> dict:
    return call_reports.dashboard(session, principal.tenant_id)
