"""The incoming-call panel: who is calling, from their previous calls and tickets (首问负责制)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.accounts import Principal
from domain.models import Agent, Call, Ticket
from serving.api.deps import get_session, require_roles

router = APIRouter(prefix="/api/callers", tags=["callers"])
HISTORY_LIMIT = 10
RESULT_LABELS = {"answered": "已接通", "abandoned": "排队放弃", "abandoned_short": "短时放弃", "lost": "振铃未接",
                 "blocked": "黑名单拦截", "out_of_hours": "非工作时间"}
STATE_LABELS = {"created": "已创建", "dispatched": "已派单", "signed": "已签收", "returned": "已退单",
                "in_progress": "办理中", "completed": "已办结", "callback": "已回访", "closed": "已关闭"}


@router.get("/{phone}/history")
def caller_history(phone: str = Path(pattern=r"^\+?[0-9-]{3,20}$"),
                   principal: Principal = Depends(require_roles("agent", "supervisor")),
                   session: Session = Depends(get_session, scope="function")) -> dict:
    calls = list(session.scalars(select(Call).where(Call.tenant_id == principal.tenant_id, Call.caller_number == phone)
                                 .order_by(Call.started_at.desc()).limit(HISTORY_LIMIT + 1)))
    agents = {a.id: a for a in session.scalars(select(Agent).where(Agent.tenant_id == principal.tenant_id))}
    tickets = list(session.scalars(select(Ticket).where(Ticket.tenant_id == principal.tenant_id, Ticket.phone == phone)
                                   .order_by(Ticket.created_at.desc()).limit(HISTORY_LIMIT)))
    known = next((t for t in tickets if t.caller_name or t.address), None)
    return {
        "phone": phone,
        "caller_name": known.caller_name if known else "",
        "address": known.address if known else "",
        # the newest row is usually the call ringing now
        "calls": [{"started_at": c.started_at.isoformat(), "result": c.result,
                   "result_label": RESULT_LABELS.get(c.result, c.result or "进行中"),
                   "agent": f"{agents[c.agent_id].work_no}号 {agents[c.agent_id].name}" if c.agent_id in agents else ""}
                  for c in calls if c.ended_at is not None][:HISTORY_LIMIT],
        "tickets": [{"id": t.id, "number": t.number, "category": t.category, "state": t.state,
                     "state_label": STATE_LABELS.get(t.state, t.state), "summary": t.summary,
                     "created_at": t.created_at.isoformat()} for t in tickets],
    }
