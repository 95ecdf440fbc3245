"""Agent feedback on copilot suggestions (used, not helpful, corrected category) and the desk of the call in
hand, which a reload restores (``serving.desk.LiveDesks``)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.validation import ShortText
from domain.accounts import Principal
from domain.errors import AppError
from domain.models import Call
from knowledge import service
from knowledge.taxonomy import Taxonomy
from serving.api.deps import get_session, get_taxonomy, require_roles
from telephony.desk import agent_of_user

router = APIRouter(prefix="/api/copilot", tags=["copilot"])


class FeedbackIn(BaseModel):
    kind: Literal["used", "unhelpful", "category_corrected"]
    entry_id: int | None = None
    call_id: int | None = None
    category: ShortText = Field("", max_length=200, description="The corrected category path (category_corrected).")
    suggested_category: ShortText = Field("", max_length=200)

    @model_validator(mode="after")
    def _needs(self) -> "FeedbackIn":
        if self.kind in ("used", "unhelpful") and self.entry_id is None:
            raise ValueError("请指明是哪条知识（entry_id）")
        if self.kind == "category_corrected" and not self.category:
            raise ValueError("请填写更正后的分类（category）")
        return self


@router.post("/feedback", status_code=201)
def feedback(body: FeedbackIn, principal: Principal = Depends(require_roles("agent", "supervisor")),
             taxonomy: Taxonomy = Depends(get_taxonomy), session: Session = Depends(get_session, scope="function")) -> dict:
    if body.call_id is not None and session.scalar(
            select(Call.id).where(Call.id == body.call_id, Call.tenant_id == principal.tenant_id)) is None:
        raise AppError("not_found", "通话不存在", 404)
    detail = ""
    if body.kind == "category_corrected":
        if body.category not in set(taxonomy.paths):
            raise AppError("bad_category", f"分类“{body.category}”不在分类体系中", 422)
        detail = f"{body.suggested_category} → {body.category}" if body.suggested_category else body.category
    row = service.record_feedback(session, principal.tenant_id, body.kind, entry_id=body.entry_id,
                                  user_id=principal.user.id, call_id=body.call_id, detail=detail)
    return {"id": row.id, "kind": row.kind, "entry_id": row.entry_id, "detail": row.detail}


def _agent_id(session: Session, principal: Principal) -> int:
    return agent_of_user(session, principal.tenant_id, principal.user.id).id


@router.get("/desk")
def desk(request: Request, principal: Principal = Depends(require_roles("agent")),
         session: Session = Depends(get_session, scope="function")) -> dict:
    """The agent's call in hand: call link, transcript, cards, draft, alerts (``call`` is null without one)."""
    current = request.app.state.desks.current(principal.tenant_id, _agent_id(session, principal))
    return current or {"call": None}


@router.get("/wall/alerts")
def wall_alerts(request: Request, principal: Principal = Depends(require_roles("supervisor", "admin"))) -> dict:
    """The standing alerts of the calls on agents' desks, newest first (the wall after a reload)."""
    return {"alerts": request.app.state.desks.alerts(principal.tenant_id)}


class CardIn(BaseModel):
    call_id: ShortText = Field(..., min_length=1, max_length=100, description="The live call (its UUID).")
    entry_id: ShortText = Field(..., min_length=1, max_length=100)
    action: Literal["pin", "unpin", "dismiss"]


@router.post("/desk/cards")
def mark_card(body: CardIn, request: Request, principal: Principal = Depends(require_roles("agent")),
              session: Session = Depends(get_session, scope="function")) -> dict:
    """Pin, unpin or dismiss a suggestion card; a dismissal is stored as ``unhelpful`` feedback on the entry."""
    agent_id = _agent_id(session, principal)
    if body.action == "dismiss" and body.entry_id.isdigit():  # stored first: the mark below cannot fail after it
        call_pk = session.scalar(select(Call.id).where(Call.call_uuid == body.call_id,
                                                       Call.tenant_id == principal.tenant_id))
        service.record_feedback(session, principal.tenant_id, "unhelpful", entry_id=int(body.entry_id),
                                user_id=principal.user.id, call_id=call_pk, detail="坐席在通话中移除了该推荐")
    marks = request.app.state.desks.mark_card(principal.tenant_id, agent_id, body.call_id, body.entry_id, body.action)
    if marks is None:
        raise AppError("not_found", "通话不存在或已不在您的工作台上", 404)
    return marks


class DraftEditIn(BaseModel):
    call_id: ShortText = Field(..., min_length=1, max_length=100)
    fields: dict[Literal["request_type", "category", "caller_name", "phone", "address", "incident_address",
                         "district", "respondent", "summary", "result"], str] = Field(..., max_length=10)

    @model_validator(mode="after")
    def _short(self) -> "DraftEditIn":
        if any(len(v) > 4000 for v in self.fields.values()):
            raise ValueError("工单字段过长（每项最多 4000 字）")
        return self


@router.put("/desk/draft")
def edit_draft(body: DraftEditIn, request: Request, principal: Principal = Depends(require_roles("agent")),
               session: Session = Depends(get_session, scope="function")) -> dict:
    """The draft fields the agent typed, kept with the call so a reload restores them."""
    edits = request.app.state.desks.edit_draft(principal.tenant_id, _agent_id(session, principal), body.call_id,
                                               body.fields)
    if edits is None:
        raise AppError("not_found", "通话不存在或已不在您的工作台上", 404)
    return {"draft_edits": edits}
