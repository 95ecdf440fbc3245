"""The audit log: logins, failed logins and every data change, with before/after values."""
from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from domain.models import AuditLog, utcnow
from domain.pii import mask_value

_SECRET_COLUMNS = {"password_hash", "token_hash", "csrf_token"}


def snapshot(obj: Any) -> dict:
    """Column values of an ORM object, JSON-safe, without secrets."""
    out = {}
    for attr in inspect(obj).mapper.column_attrs:
        if attr.key in _SECRET_COLUMNS:
            continue
        value = getattr(obj, attr.key)
        out[attr.key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def record(
    session: Session,
    action: str,
    *,
    tenant_id: int | None,
    actor_id: int | None = None,
    actor_name: str = "",
    entity: str = "",
    entity_id: Any = "",
    before: dict | None = None,
    after: dict | None = None,
    ip: str = "",
) -> AuditLog:
    row = AuditLog(
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=mask_value(before) if before is not None else None,
        after=mask_value(after) if after is not None else None,
        ip=ip,
    )
    session.add(row)
    return row


_NOT_AUDITED = {"audit_log", "auth_sessions", "inbox_receipts"}


def _diff_before(obj: Any) -> dict:
    state = inspect(obj)
    before = {}
    for attr in state.mapper.column_attrs:
        if attr.key in _SECRET_COLUMNS:
            continue
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            before[attr.key] = old.isoformat() if hasattr(old, "isoformat") else old
    return before


@event.listens_for(Session, "after_flush")
def _audit_changes(session: Session, _ctx) -> None:
    """Record every insert, update and delete with before/after values.

    Runs after the flush so new rows have their ids; the audit rows are written in the same
    transaction, so a change and its audit record commit or roll back together.
    The acting user comes from ``session.info["actor"]`` (a ``Principal``), set by the API layer;
    changes made by CLI and background jobs are recorded as actor ``system``.
    """
    actor = session.info.get("actor")
    actor_id = actor.user.id if actor else None
    actor_name = actor.user.username if actor else session.info.get("actor_name", "system")
    ip = session.info.get("ip", "")
    rows = []
    for action, objs in (("create", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objs:
            table = getattr(obj, "__tablename__", None)
            if table is None or table in _NOT_AUDITED:
                continue
            if action == "update":
                before = _diff_before(obj)
                if not before:
                    continue
                after = {k: v for k, v in snapshot(obj).items() if k in before}
            else:
                before = snapshot(obj) if action == "delete" else None
                after = snapshot(obj) if action == "create" else None
            rows.append({
                "tenant_id": getattr(obj, "tenant_id", None) if table != "tenants" else obj.id,
                "actor_id": actor_id, "actor_name": actor_name, "action": f"{table}.{action}",
                "entity": table, "entity_id": str(getattr(obj, "id", "") or ""),
                "before": mask_value(before) if before is not None else None,
                "after": mask_value(after) if after is not None else None,
                "ip": ip, "at": utcnow(),
            })
    if rows:
        session.connection().execute(AuditLog.__table__.insert(), rows)
