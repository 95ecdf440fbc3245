"""Staff directory: agents' work numbers and names, for labelling results on any staff page."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.accounts import Principal
from domain.models import Agent
from serving.api.deps import current_principal, get_session

router = APIRouter(prefix="/api/directory", tags=["directory"])


@router.get("/agents")
def agents(principal: Principal = Depends(current_principal), session: Session = Depends(get_session, scope="function")) -> list[dict]:
    rows = session.scalars(select(Agent).where(Agent.tenant_id == principal.tenant_id).order_by(Agent.work_no))
    return [{"id": a.id, "work_no": a.work_no, "name": a.name} for a in rows]
