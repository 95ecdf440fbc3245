"""Tenants, users, roles, password policy, lockout and sessions (等保二级)."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import audit
from domain.errors import AppError
from domain.models import AuditLog, AuthSession, Role, Tenant, User, utcnow
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


# Passwords an attacker tries first.  A password is refused when, lower-cased and without the digits and symbols
# around it, it is one of these words (with 0/1/3/4/5/7/@/$ read as the letters they stand for: P@ssw0rd!), or when
# it is one of the whole strings below (keyboard walks, the published demo password).
_COMMON_WORDS = frozenset("""
password passwd passw pass word admin administrator root user login guest test demo default changeme welcome
letmein iloveyou qwerty qwertyu qwertyui qwertyuiop qwert asdf asdfg asdfgh asdfghjkl zxcvbn zxcvbnm qazwsx abc
abcd abcde abcdef abcdefg abcdefgh secret system manager super superman master monkey dragon sunshine princess
football baseball shadow hello china beijing hotline laibin service
""".split())
_COMMON_PASSWORDS = frozenset("""
hotline#2026 1qaz@wsx 1qaz2wsx 1qaz@wsx3edc 1qaz2wsx3edc 1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y qaz123wsx
!qaz2wsx #edc4rfv zaq1@wsx zaq12wsx 123qwe!@# 123qweasd 123456abc abc@123456 aa123456 a1b2c3d4e5
""".split())
_LEET = str.maketrans("01345789@$!", "oleastbgasi")
_EDGE = re.compile(r"^[^a-z]+|[^a-z]+$")


def is_common_password(password: str) -> bool:
    folded = password.lower()
    if folded in _COMMON_PASSWORDS:
        return True
    core = _EDGE.sub("", folded)
    return core in _COMMON_WORDS or core.translate(_LEET) in _COMMON_WORDS


def check_password_policy(password: str, settings: Settings | None = None, *, username: str = "",
                          published_ok: bool = False) -> None:
    """Length, character classes, not a common or published password, not containing the user name.

    ``published_ok``: only the demo loader sets it, to create the demo users with the README's password
    (flagged ``must_change_password``)."""
    settings = settings or get_settings()
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    if len(password) < settings.password_min_length or classes < 3:
        raise AppError(
            "weak_password",
            f"密码至少{settings.password_min_length}位，且包含大写字母、小写字母、数字、特殊字符中的三类",
            422,
        )
    if not published_ok and is_common_password(password):
        raise AppError("common_password", "该密码过于常见或已公开，请换一个不易猜到的密码", 422)
    if len(username) >= 3 and username.lower() in password.lower():
        raise AppError("password_contains_username", "密码不能包含用户名", 422)


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
    *,
    demo: bool = False,
) -> User:
    """The password was chosen by whoever creates the account, so the user is asked to change it at login
    (``must_change_password``).  ``demo``: the demo loader's users, which may have the published demo password."""
    if not _USERNAME.match(username):
        raise AppError("invalid_username", "用户名只能包含字母、数字、下划线、点和短横线（2-64位）", 422)
    if role not in ROLES:
        raise AppError("invalid_role", f"未知角色：{role}", 422)
    check_password_policy(password, username=username, published_ok=demo)
    ensure_roles(session)
    if session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username)):
        raise AppError("user_exists", "用户名已存在", 409)
    user = User(
        tenant_id=tenant.id,
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        must_change_password=True,
    )
    session.add(user)
    session.flush()
    return user


# ---------------------------------------------------------------- login
# Every failed login is an ``auth.login_failed`` audit row (tenant, user name as typed, source address, time);
# the throttles below count those rows, so the audit log is the single record of failures:
# - account + source: ``lockout_attempts`` failures from one address against one user name within
#   ``lockout_minutes`` (since that address last logged in as that user) lock that pair, never the account;
# - source: ``login_source_attempts`` failures from one address within ``lockout_minutes``, whatever the user
#   names, refuse every login from it (429) until the window has passed;
# - account: ``login_account_attempts`` failures against one user name from all addresses within
#   ``lockout_minutes`` (a distributed guess) admit only addresses that logged in as that user during the last
#   ``TRUSTED_SOURCE_DAYS`` days.
# Unknown and known user names are counted alike, and every attempt that reaches the password check costs one
# argon2 verification (a dummy hash for unknown users), so neither time nor answer tells whether a user exists:
# unknown user, wrong password, a locked pair or a deactivated account answer the same 401 unless the password is
# right.
FAILED = "auth.login_failed"
TRUSTED_SOURCE_DAYS = 30


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, InvalidHashError):
        return False


def _failure_times(session: Session, since: datetime, **match) -> list[datetime]:
    q = select(AuditLog.at).where(AuditLog.action == FAILED, AuditLog.at >= since)
    for column, value in match.items():
        q = q.where(getattr(AuditLog, column).is_(None) if value is None else getattr(AuditLog, column) == value)
    return [_aware(at) for at in session.scalars(q.order_by(AuditLog.at))]


def _last_login(session: Session, tenant_id: int | None, username: str, ip: str, since: datetime) -> datetime | None:
    """When ``username`` last logged in from ``ip`` (since ``since``)."""
    return _aware(session.scalar(select(func.max(AuditLog.at)).where(
        AuditLog.action == "auth.login", AuditLog.tenant_id == tenant_id, AuditLog.actor_name == username,
        AuditLog.ip == ip, AuditLog.at >= since)))


def _unlocked_at(times: list[datetime], limit: int, window: timedelta) -> datetime | None:
    """When a sliding window of ``window`` holding ``times`` drops below ``limit`` failures (None: it is below)."""
    return times[-limit] + window if limit > 0 and len(times) >= limit else None


def _retry_minutes(until: datetime, now: datetime) -> int:
    return max(1, int((until - now).total_seconds() // 60) + 1)


def authenticate(session: Session, tenant_code: str, username: str, password: str, ip: str = "") -> User:
    """Verify a login under the throttles above; every attempt is audited."""
    settings = get_settings()
    now = utcnow()
    window = timedelta(minutes=settings.lockout_minutes)
    name = username[:64]
    tenant = session.scalar(select(Tenant).where(Tenant.code == tenant_code))
    tenant_id = tenant.id if tenant else None
    user = None
    if tenant is not None:
        user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username))

    def fail(reason: str, error: AppError, **detail) -> AppError:
        audit.record(session, FAILED, tenant_id=tenant_id, actor_id=user.id if user else None, actor_name=name,
                     entity="user", entity_id=user.id if user else "", ip=ip, after={"reason": reason, **detail})
        session.commit()
        return error

    generic = AppError("invalid_credentials", "用户名或密码错误", 401)
    source_times = _failure_times(session, now - window, ip=ip)
    source_until = _unlocked_at(source_times, settings.login_source_attempts, window)
    if source_until is not None:
        raise fail("source_throttled", AppError(
            "too_many_attempts", f"该地址登录失败次数过多，请{_retry_minutes(source_until, now)}分钟后再试", 429))
    pair_since = max(now - window, _last_login(session, tenant_id, name, ip, now - window) or now - window)
    pair_times = _failure_times(session, pair_since, tenant_id=tenant_id, actor_name=name, ip=ip)
    pair_until = _unlocked_at(pair_times, settings.lockout_attempts, window)
    account_times = _failure_times(session, now - window, tenant_id=tenant_id, actor_name=name)
    account_until = _unlocked_at(account_times, settings.login_account_attempts, window)
    if account_until is not None and _last_login(session, tenant_id, name, ip,
                                                 now - timedelta(days=TRUSTED_SOURCE_DAYS)) is not None:
        account_until = None  # an address this user logged in from before is not held back by others' guesses
    right = _verify(user.password_hash if user else None, password)
    if not right:
        detail = {}
        if pair_until is None and len(pair_times) + 1 >= settings.lockout_attempts > 0:
            detail["locked"] = "account_source"  # this failure locks the user name for this address
        if len(source_times) + 1 >= settings.login_source_attempts > 0:
            detail["source_throttled"] = True
        raise fail("unknown_user" if user is None else "bad_password", generic, **detail)
    if pair_until is not None or account_until is not None:
        until = max(t for t in (pair_until, account_until) if t is not None)
        raise fail("locked", AppError(
            "account_locked", f"登录失败次数过多，账号已锁定，请{_retry_minutes(until, now)}分钟后再试", 423),
            scope="account_source" if pair_until is not None else "account")
    if not user.active:
        raise fail("inactive", AppError("account_inactive", "账号已注销", 403))
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
    now, settings = utcnow(), get_settings()
    if now - _aware(row.last_seen_at) > timedelta(minutes=settings.session_minutes) or \
            now - _aware(row.created_at) > timedelta(hours=settings.session_max_hours):
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
    check_password_policy(new, username=user.username)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    user.must_change_password = old is None  # a password someone else set (admin reset) is the user's to change
    for row in session.scalars(select(AuthSession).where(AuthSession.user_id == user.id, AuthSession.revoked.is_(False))):
        row.revoked = True


def set_active(session: Session, user: User, active: bool) -> None:
    user.active = active
    if not active:
        for row in session.scalars(select(AuthSession).where(AuthSession.user_id == user.id)):
            row.revoked = True
