"""Agent feedback on copilot suggestions: used, not helpful, corrected category."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
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
