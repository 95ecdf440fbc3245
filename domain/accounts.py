"""Tenants, users, roles, password policy, lockout and sessions (等保二级)."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import audit
from domain.errors import AppError
from domain.models import AuthSession, Role, Tenant, User, utcnow
from domain.settings import Settings, get_settings

ROLES: dict[str, str] = {
    "agent": "话务员",
    "qa_reviewer": "质检员",
    "knowledge_manager": "知识库管理员",
    "supervisor": "班长/主管",
    "evaluator": "评测员",
    "admin": "系统管理员",
}

_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")


@dataclass(frozen=True)
class Principal:
    user: User
    session: AuthSession | None

    @property
    def tenant_id(self) -> int:
        return self.user.tenant_id

    @property
    def role(self) -> str:
        return self.user.role


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def check_password_policy(password: str, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    if len(password) < settings.password_min_length or classes < 3:
        raise AppError(
            "weak_password",
            f"密码至少{settings.password_min_length}位，且包含大写字母、小写字母、数字、特殊字符中的三类",
            422,
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def ensure_roles(session: Session) -> None:
    existing = set(session.scalars(select(Role.name)))
    for name, label in ROLES.items():
        if name not in existing:
            session.add(Role(name=name, label=label))
    session.flush()


def ensure_tenant(session: Session, code: str, name: str | None = None) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.code == code))
    if tenant is None:
        tenant = Tenant(code=code, name=name or code)
        session.add(tenant)
        session.flush()
    return tenant


def create_user(
    session: Session,
    tenant: Tenant,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
) -> User:
    if not _USERNAME.match(username):
        raise AppError("invalid_username", "用户名只能包含字母、数字、下划线、点和短横线（2-64位）", 422)
    if role not in ROLES:
        raise AppError("invalid_role", f"未知角色：{role}", 422)
    check_password_policy(password)
    ensure_roles(session)
    if session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username)):
        raise AppError("user_exists", "用户名已存在", 409)
    user = User(
        tenant_id=tenant.id,
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, tenant_code: str, username: str, password: str, ip: str = "") -> User:
    """Verify a login; lock the account after too many failures.  Every attempt is audited."""
    settings = get_settings()
    failure = AppError("invalid_credentials", "用户名或密码错误", 401)
    tenant = session.scalar(select(Tenant).where(Tenant.code == tenant_code))
    user = None
    if tenant is not None:
        user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username))
    if user is None:
        audit.record(session, "auth.login_failed", tenant_id=tenant.id if tenant else None,
                     actor_name=username[:64], entity="user", ip=ip, after={"reason": "unknown_user"})
        session.commit()
        raise failure
    now = utcnow()
    locked_until = _aware(user.locked_until)
    if locked_until and locked_until > now:
        audit.record(session, "auth.login_failed", tenant_id=user.tenant_id, actor_id=user.id,
                     actor_name=user.username, entity="user", entity_id=user.id, ip=ip, after={"reason": "locked"})
        session.commit()
        minutes = max(1, int((locked_until - now).total_seconds() // 60) + 1)
        raise AppError("account_locked", f"登录失败次数过多，账号已锁定，请{minutes}分钟后再试", 423)
    if not user.active:
        audit.record(session, "auth.login_failed", tenant_id=user.tenant_id, actor_id=user.id,
                     actor_name=user.username, entity="user", entity_id=user.id, ip=ip, after={"reason": "inactive"})
        session.commit()
        raise AppError("account_inactive", "账号已注销", 403)
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        user.failed_logins += 1
        reason = {"reason": "bad_password", "failed_logins": user.failed_logins}
        if user.failed_logins >= settings.lockout_attempts:
            user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            reason["locked_until"] = user.locked_until.isoformat()
        audit.record(session, "auth.login_failed", tenant_id=user.tenant_id, actor_id=user.id,
                     actor_name=user.username, entity="user", entity_id=user.id, ip=ip, after=reason)
        session.commit()
        raise failure
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record(session, "auth.login", tenant_id=user.tenant_id, actor_id=user.id, actor_name=user.username,
                 entity="user", entity_id=user.id, ip=ip)
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user: User, kind: str) -> tuple[str, AuthSession]:
    """Create a cookie session or bearer token; returns the raw token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    row = AuthSession(tenant_id=user.tenant_id, user_id=user.id, token_hash=_token_hash(token),
                      csrf_token=secrets.token_urlsafe(24), kind=kind)
    session.add(row)
    session.flush()
    return token, row


def resolve_token(session: Session, token: str) -> Principal | None:
    row = session.scalar(select(AuthSession).where(AuthSession.token_hash == _token_hash(token)))
    if row is None or row.revoked:
        return None
    now = utcnow()
    if now - _aware(row.last_seen_at) > timedelta(minutes=get_settings().session_minutes):
        row.revoked = True
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    row.last_seen_at = now
    return Principal(user=user, session=row)


def close_session(session: Session, principal: Principal) -> None:
    if principal.session is not None:
        principal.session.revoked = True
    audit.record(session, "auth.logout", tenant_id=principal.tenant_id, actor_id=principal.user.id,
                 actor_name=principal.user.username, entity="user", entity_id=principal.user.id)


def change_password(session: Session, user: User, old: str | None, new: str) -> None:
    if old is not None:
        try:
            _hasher.verify(user.password_hash, old)
        except (VerifyMismatchError, InvalidHashError):
            raise AppError("invalid_credentials", "原密码错误", 400) from None
    check_password_policy(new)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    for row in session.scalars(select(AuthSession).where(AuthSession.user_id == user.id, AuthSession.revoked.is_(False))):
        row.revoked = True


def set_active(session: Session, user: User, active: bool) -> None:
    user.active = active
    if not active:
        for row in session.scalars(select(AuthSession).where(AuthSession.user_id == user.id)):
            row.revoked = True
