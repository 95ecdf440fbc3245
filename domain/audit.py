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
# written by the live pipeline, one row per sentence (the call itself is audited); a person's change or a deletion is
_NOT_AUDITED_CREATES = {"transcript_segments"}


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
            if table is None or table in _NOT_AUDITED or (action == "create" and table in _NOT_AUDITED_CREATES):
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


# The audit log in words for people (the admin page): named actions, and "<table>.<create|update|delete>".
_ACTIONS = {
    "auth.login": "登录", "auth.logout": "退出登录", "auth.login_failed": "登录失败", "recording.play": "播放录音",
    "knowledge.create": "新建知识条目", "knowledge.update": "修改知识条目", "knowledge.submit": "提交知识条目审核",
    "knowledge.publish": "发布知识条目", "knowledge.reject": "退回知识条目", "knowledge.archive": "归档知识条目",
    "knowledge.restore": "恢复知识条目", "qa.rescored": "重新质检评分", "qa.review": "复核质检项",
    "qa.review_finished": "完成质检复核", "qa.agent_acknowledge": "坐席确认质检结果", "qa.agent_appeal": "坐席提出申诉",
    "qa.appeal_resolved": "处理坐席申诉", "qa.scorecard_saved": "保存评分表", "qa.scorecard_activated": "启用评分表",
    "kpi.manual_add": "录入考核扣分/加分项", "kpi.manual_remove": "删除考核扣分/加分项",
}
_TABLES = {
    "tenants": "单位", "tenant_settings": "单位设置", "roles": "角色", "users": "用户", "auth_sessions": "登录会话",
    "skill_groups": "技能组", "agents": "坐席", "queues": "队列", "blocked_numbers": "黑名单号码", "calls": "通话记录",
    "call_legs": "通话分段", "recordings": "录音", "transcript_segments": "转写", "agent_messages": "坐席消息",
    "service_outages": "系统停机记录", "tickets": "工单", "ticket_counters": "工单编号", "ticket_events": "工单流转",
    "sms_messages": "短信", "outbox": "待发消息", "inbox_receipts": "接收回执", "parked_events": "暂存事件",
    "knowledge_entries": "知识条目", "knowledge_versions": "知识条目版本", "knowledge_feedback": "知识反馈",
    "scorecards": "评分表", "qa_results": "质检结果", "qa_item_results": "质检项结果", "qa_reviews": "质检复核",
    "kpi_months": "月度考核",
}
_VERBS = {"create": "新建", "update": "修改", "delete": "删除"}


def describe(action: str) -> str:
    """An audit action in Chinese (``auth.login_failed`` → 登录失败, ``tickets.update`` → 修改工单)."""
    if action in _ACTIONS:
        return _ACTIONS[action]
    table, _, verb = action.rpartition(".")
    if table in _TABLES and verb in _VERBS:
        return f"{_VERBS[verb]}{_TABLES[table]}"
    return "其他操作"


def actions_matching(query: str) -> list[str]:
    """The action codes whose code or words contain ``query``: 登录失败, 工单 and login all find what they name."""
    q = query.strip().lower()
    codes = set(_ACTIONS) | {f"{table}.{verb}" for table in _TABLES for verb in _VERBS}
    return sorted(c for c in codes if q in c.lower() or q in describe(c))


_ENTITIES = {"knowledge_entry": "知识条目", "kpi_month": "月度考核", "qa_item_result": "质检项", "qa_result": "质检结果",
             "recording": "录音", "scorecard": "评分表", "user": "用户", "operation": "操作", "filter": "筛选条件"}


def describe_entity(entity: str) -> str:
    """What an audit entry is about, in Chinese (``qa_result`` → 质检结果, a table → its name)."""
    return _ENTITIES.get(entity) or _TABLES.get(entity) or ("" if not entity else "其他")
