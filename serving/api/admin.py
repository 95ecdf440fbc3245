"""User administration and the audit log (admin; supervisors may list users)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import accounts
from domain.accounts import ROLES, Principal
from domain.errors import not_found
from domain.models import AuditLog, Tenant, User
from domain.validation import ShortText
from serving.api.deps import get_session, require_roles

router = APIRouter(prefix="/api/admin", tags=["admin"])


class UserIn(BaseModel):
    username: ShortText
    password: str = Field(max_length=200)
    role: ShortText
    display_name: ShortText = ""


class ResetPasswordIn(BaseModel):
    new_password: str = Field(max_length=200)


def _user_out(user: User) -> dict:
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
            "role_label": ROLES.get(user.role, user.role), "active": user.active,
            "must_change_password": user.must_change_password}


def _tenant_user(session: Session, principal: Principal, user_id: int) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.tenant_id == principal.tenant_id))
    if user is None:
        raise not_found("用户")
    return user


@router.get("/users")
def list_users(principal: Principal = Depends(require_roles("admin", "supervisor")),
               session: Session = Depends(get_session, scope="function")) -> list[dict]:
    users = session.scalars(select(User).where(User.tenant_id == principal.tenant_id).order_by(User.id))
    return [_user_out(u) for u in users]


@router.post("/users", status_code=201)
def add_user(body: UserIn, principal: Principal = Depends(require_roles("admin")),
             session: Session = Depends(get_session, scope="function")) -> dict:
    tenant = session.get(Tenant, principal.tenant_id)
    user = accounts.create_user(session, tenant, body.username, body.password, body.role, body.display_name)
    return _user_out(user)


@router.post("/users/{user_id}/deactivate")
def deactivate_user(user_id: int, principal: Principal = Depends(require_roles("admin")),
                    session: Session = Depends(get_session, scope="function")) -> dict:
    user = _tenant_user(session, principal, user_id)
    accounts.set_active(session, user, False)
    return _user_out(user)


@router.post("/users/{user_id}/password")
def reset_password(user_id: int, body: ResetPasswordIn, principal: Principal = Depends(require_roles("admin")),
                   session: Session = Depends(get_session, scope="function")) -> dict:
    user = _tenant_user(session, principal, user_id)
    accounts.change_password(session, user, None, body.new_password)
    return _user_out(user)


@router.get("/audit")
def audit_log(principal: Principal = Depends(require_roles("admin")), session: Session = Depends(get_session, scope="function"),
              action: str | None = Query(None, max_length=64), since: datetime | None = None,
              limit: int = Query(200, ge=1, le=1000)) -> list[dict]:
    query = select(AuditLog).where(AuditLog.tenant_id == principal.tenant_id)
    if action:
        query = query.where(AuditLog.action == action)
    if since:
        query = query.where(AuditLog.at >= since)
    rows = session.scalars(query.order_by(AuditLog.id.desc()).limit(limit))
    return [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor_name, "action": r.action, "entity": r.entity,
             "entity_id": r.entity_id, "before": r.before, "after": r.after, "ip": r.ip} for r in rows]
