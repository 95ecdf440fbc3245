"""FastAPI dependencies: database session, the authenticated principal, role checks and the app's KB indexes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from domain.accounts import Principal, resolve_token
from domain.db import session_scope
from domain.errors import AppError

if TYPE_CHECKING:
    from knowledge.live import TenantIndexes
    from knowledge.taxonomy import Taxonomy

SESSION_COOKIE = "hotline_session"
CSRF_COOKIE = "hotline_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def knowledge_indexes(app) -> "TenantIndexes":
    """The app's live KB search indexes (one per tenant, built from its settings on first use). The knowledge
    API, the live copilot and QA scoring share them, so one embedder serves search and semantic QA rules."""
    from knowledge.live import TenantIndexes

    if getattr(app.state, "knowledge_indexes", None) is None:
        app.state.knowledge_indexes = TenantIndexes(app.state.settings)
    return app.state.knowledge_indexes


def get_taxonomy(request: Request) -> "Taxonomy":
    """The ticket taxonomy the app's settings name (``HOTLINE_TAXONOMY_PATH``)."""
    from knowledge.taxonomy import Taxonomy

    return Taxonomy.load(request.app.state.settings.taxonomy_path)


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed before the response is sent, rolled back on error.

    Always depend on it as ``Depends(get_session, scope="function")``: with the default request
    scope FastAPI would run the commit after the response, acknowledging writes not yet durable.
    """
    with session_scope(request.app.state.engine) as session:
        session.info["ip"] = request.client.host if request.client else ""
        yield session


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def authenticate_request(request: Request, session: Session) -> Principal:
    token = _bearer(request)
    via_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        via_cookie = True
    principal = resolve_token(session, token) if token else None
    if principal is None:
        raise AppError("unauthenticated", "请先登录或登录已过期", 401)
    if via_cookie and request.method not in _SAFE_METHODS:
        if request.headers.get(CSRF_HEADER) != principal.session.csrf_token:
            raise AppError("csrf_failed", "请求校验失败（CSRF），请刷新页面后重试", 403)
    session.info["actor"] = principal
    return principal


def current_principal(request: Request, session: Session = Depends(get_session, scope="function")) -> Principal:
    return authenticate_request(request, session)


def require_roles(*roles: str):
    """Dependency factory: the caller must hold one of ``roles`` (admin is not implicitly allowed)."""

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in roles:
            raise AppError("forbidden", "无权访问该功能", 403)
        return principal

    dependency.allowed_roles = roles  # read by the role × endpoint test matrix
    return dependency
