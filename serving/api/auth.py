"""Login, logout, the current user and password change, for browsers (cookie + CSRF) and API clients (bearer)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from domain import accounts, tenant_settings
from domain.accounts import ROLES, Principal
from domain.models import Tenant
from domain.validation import ShortText
from serving.api.deps import CSRF_COOKIE, SESSION_COOKIE, current_principal, get_session

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    tenant: ShortText = Field(default="", description="租户代码；为空时使用默认租户")
    username: ShortText
    password: str = Field(max_length=200)
    mode: Literal["cookie", "bearer"] = "cookie"


class PasswordIn(BaseModel):
    old_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


def _me(principal: Principal) -> dict:
    user = principal.user
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
            "role_label": ROLES[user.role], "tenant_id": user.tenant_id,
            "password_change_required": user.must_change_password}


@router.post("/login")
def login(body: LoginIn, request: Request, response: Response, session: Session = Depends(get_session, scope="function")) -> dict:
    settings = request.app.state.settings
    user = accounts.authenticate(session, body.tenant or settings.default_tenant, body.username, body.password,
                                 ip=request.client.host if request.client else "")
    token, row = accounts.open_session(session, user, body.mode)
    principal = Principal(user=user, session=row)
    if body.mode == "bearer":
        return {"token": token, "token_type": "bearer", "user": _me(principal)}
    max_age = min(settings.session_minutes * 60, settings.session_max_hours * 3600)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=settings.cookie_secure,
                        max_age=max_age)
    response.set_cookie(CSRF_COOKIE, row.csrf_token, httponly=False, samesite="strict",
                        secure=settings.cookie_secure, max_age=max_age)
    return {"csrf_token": row.csrf_token, "user": _me(principal)}


@router.post("/logout")
def logout(response: Response, principal: Principal = Depends(current_principal),
           session: Session = Depends(get_session, scope="function")) -> dict:
    accounts.close_session(session, principal)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return {"ok": True}


@router.get("/me")
def me(principal: Principal = Depends(current_principal), session: Session = Depends(get_session, scope="function")) -> dict:
    """The signed-in user, the tenant's name and the time zone the pages show every time in."""
    return {**_me(principal), "csrf_token": principal.session.csrf_token if principal.session else None,
            "tenant_name": session.get(Tenant, principal.tenant_id).name,
            "time_zone": tenant_settings.get(session, principal.tenant_id).time.time_zone}


@router.post("/password")
def change_password(body: PasswordIn, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session, scope="function")) -> dict:
    accounts.change_password(session, principal.user, body.old_password, body.new_password)
    return {"ok": True}
