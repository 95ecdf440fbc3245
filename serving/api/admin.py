"""User administration, the tenant's settings and the audit log (admin; supervisors may list users)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import accounts, audit, tenant_settings
from domain.accounts import ROLES, Principal
from domain.errors import AppError, not_found
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
    if action:  # a code (auth.login_failed) or words (登录失败, 工单)
        query = query.where(AuditLog.action.in_(audit.actions_matching(action)))
    if since:
        query = query.where(AuditLog.at >= since)
    rows = session.scalars(query.order_by(AuditLog.id.desc()).limit(limit))
    return [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor_name, "action": r.action,
             "action_label": audit.describe(r.action), "entity_label": audit.describe_entity(r.entity), "entity": r.entity,
             "entity_id": r.entity_id, "before": r.before, "after": r.after, "ip": r.ip} for r in rows]


# ------------------------------------------------------------------ tenant settings
GROUP_TITLES = {"lexicon": "识别热词", "places": "辖区与地名库", "kpi": "考核合同参数（业务考核办法）",
                "time": "时区、工作时间与办理时限", "knowledge": "知识库审核"}
_ERRORS_ZH = {
    "greater_than_equal": "不能小于 {ge}", "less_than_equal": "不能大于 {le}", "greater_than": "必须大于 {gt}",
    "less_than": "必须小于 {lt}", "int_parsing": "应为整数", "int_from_float": "应为整数", "float_parsing": "应为数字",
    "bool_parsing": "应为“是”或“否”", "time_parsing": "时间格式应为 时:分，如 08:30", "literal_error": "取值无效",
    "too_long": "条目过多", "missing": "必须填写", "extra_forbidden": "不是可设置的项目",
    "string_type": "应为文字", "list_type": "应为列表", "dict_type": "格式不正确",
}


def _message(group: type[BaseModel], exc: ValidationError) -> str:
    """The first error in Chinese, naming the field by its label."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "value_error":  # our validators write Chinese already
        return str(err["ctx"]["error"])
    name = str(err["loc"][0]) if err["loc"] else ""
    field = group.model_fields.get(name)
    label = field.description.split("；")[0] if field and field.description else name or "设置"
    text = _ERRORS_ZH.get(err["type"], "格式不正确").format(**err.get("ctx", {}))
    return f"「{label}」{text}"


@router.get("/settings")
def get_settings(principal: Principal = Depends(require_roles("admin")),
                 session: Session = Depends(get_session, scope="function")) -> dict:
    """The tenant's settings by group, with each group's fields (labels, types, limits) for the form."""
    values = tenant_settings.get(session, principal.tenant_id).model_dump(mode="json")
    return {"groups": [{"name": name, "title": GROUP_TITLES[name], "values": values[name],
                        "schema": model.model_json_schema()} for name, model in tenant_settings.GROUPS.items()]}


@router.put("/settings/{group}")
def put_settings(group: str, body: dict, principal: Principal = Depends(require_roles("admin")),
                 session: Session = Depends(get_session, scope="function")) -> dict:
    """Replace one group of the tenant's settings (validated; the change is in the audit log)."""
    model = tenant_settings.GROUPS.get(group)
    if model is None:
        raise not_found("设置分组")
    try:
        value = model.model_validate(body)
    except ValidationError as exc:
        raise AppError("invalid_settings", _message(model, exc), 422, {"group": group}) from exc
    updated = tenant_settings.update(session, principal.tenant_id, group, value)
    session.commit()  # durable before the response (get_session's commit runs after it is sent)
    return {"name": group, "title": GROUP_TITLES[group], "values": updated.model_dump(mode="json")[group]}
