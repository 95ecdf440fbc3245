"""Validation errors of API input in Chinese, for people: each pydantic error becomes the field's Chinese name and
what is wrong with it (``联系电话：只能包含数字、开头的“+”和“-”，最多 20 位``). The field's technical path stays in
``field`` for programs; pages show ``label`` and ``message``."""
from __future__ import annotations

from typing import Any

FIELD_LABELS: dict[str, str] = {
    # tickets and the desk's draft
    "phone": "联系电话", "caller_name": "来电人姓名", "address": "联系地址", "incident_address": "事发地址",
    "summary": "诉求摘要", "category": "诉求分类", "request_type": "诉求类型", "respondent": "被反映对象",
    "district": "所属区县", "kb_entry_ids": "引用的知识条目", "draft": "工单草稿", "confirmed": "话务员确认",
    "call_id": "通话", "ticket_id": "工单", "note": "备注", "reason": "原因", "result": "办理结果",
    "satisfaction": "满意度", "department": "部门", "action": "操作", "status": "状态", "state": "状态",
    "number": "号码", "due_at": "办结时限",
    # knowledge
    "title": "标题", "body": "答复内容", "kind": "类型", "keywords": "关键词", "region": "适用地区",
    "effective_from": "生效日期", "effective_to": "失效日期", "source": "依据/来源", "attachments": "附件",
    "external_id": "外部编号", "query": "检索内容", "q": "关键词", "k": "返回条数", "fmt": "文件格式",
    "publish": "同时发布", "version": "版本", "entry_id": "知识条目",
    # QA
    "definition": "评分表定义", "verdict": "复核结论", "comment": "意见", "upheld": "申诉结论",
    "score_min": "最低分", "score_max": "最高分", "item": "质检项", "agent_id": "坐席",
    # accounts, telephony, admin, reports, evaluations
    "username": "用户名", "password": "密码", "new_password": "新密码", "old_password": "原密码",
    "current_password": "当前密码", "display_name": "姓名", "role": "角色", "mode": "登录方式", "name": "名称",
    "work_no": "工号", "extension": "分机号", "skill_group": "技能组", "skills": "技能组", "target": "转接目标",
    "sip_uri": "SIP 地址", "to_work_no": "目标工号", "enabled": "启用", "code": "编码", "value": "数值",
    "date": "日期", "day": "日期", "date_from": "开始日期", "date_to": "结束日期", "since": "开始时间",
    "until": "结束时间", "start": "开始时间", "end": "结束时间", "month": "月份", "period": "统计周期",
    "dataset": "数据集", "limit": "条数", "offset": "起始位置", "file": "文件",
    "text": "文本", "file_id": "文件", "caller_number": "来电号码", "call_uuid": "通话编号", "after_id": "起始编号",
    "args": "评测参数", "benchmark": "评测基准", "run_id": "评测记录", "data": "数据", "field": "字段",
    "fields": "字段", "granularity": "统计粒度", "group": "设置分组", "months": "月数", "op": "操作",
    "message_id": "消息", "item_id": "质检项", "recording_id": "录音", "result_id": "质检结果",
    "review_state": "复核状态", "scorecard_id": "评分表", "scored": "质检状态", "suggested_category": "推荐分类",
    "supervised": "监督方式", "target_kind": "转接类型", "tenant": "单位", "user_id": "用户",
}

# what a pattern means, for the fields whose pattern a person may get wrong
PATTERN_MESSAGES: dict[str, str] = {
    "phone": "只能包含数字、开头的“+”和“-”，最多 20 位",
    "number": "只能包含数字（可带开头的“+”）",
    "target": "只能包含数字、字母和 * # + - _",
    "to_work_no": "只能包含数字、字母、“_”和“-”",
    "sip_uri": "应以 sip: 开头，且不含空格",
}


def _field_name(loc: tuple | list) -> str:
    """The innermost named part of an error location (list indexes skipped)."""
    names = [str(p) for p in loc if isinstance(p, str) and p not in ("body", "query", "path", "header", "cookie")]
    return names[-1] if names else ""


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _message(err: dict[str, Any], name: str) -> str:
    kind = err.get("type", "")
    ctx = {k: _num(v) for k, v in (err.get("ctx") or {}).items()}
    if kind == "missing":
        return "不能为空"
    if kind == "string_too_short":
        return "不能为空" if ctx.get("min_length") == 1 else f"至少 {ctx.get('min_length')} 个字符"
    if kind == "string_too_long":
        return f"不能超过 {ctx.get('max_length')} 个字符"
    if kind == "too_short":
        return f"至少 {ctx.get('min_length')} 项"
    if kind == "too_long":
        return f"最多 {ctx.get('max_length')} 项"
    if kind == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(name, "格式不正确")
    if kind == "greater_than_equal":
        return f"不能小于 {ctx.get('ge')}"
    if kind == "greater_than":
        return f"必须大于 {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"不能大于 {ctx.get('le')}"
    if kind == "less_than":
        return f"必须小于 {ctx.get('lt')}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "请填写整数"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return "请填写数字"
    if kind in ("bool_parsing", "bool_type"):
        return "请选择“是”或“否”"
    if kind in ("literal_error", "enum"):
        return "不是可选的值，请从列表中选择"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_type", "date_from_datetime_inexact"):
        return "日期格式不正确（例如 2026-01-31）"
    if kind.startswith("datetime") or kind.startswith("time"):
        return "时间格式不正确（例如 2026-01-31T08:30:00+08:00）"
    if kind in ("string_type", "string_unicode"):
        return "应为文字"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "应为列表"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "内容格式不正确"
    if kind == "extra_forbidden":
        return "不是可填写的项目"
    if kind in ("value_error", "assertion_error"):
        # our own validators (domain.validation) already speak Chinese
        return str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ") or "内容不正确"
    return "内容不正确"


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``[{field, label, message}]`` for pydantic's ``errors()``, one per error."""
    out = []
    for err in errors:
        loc = err.get("loc", ())
        name = _field_name(loc)
        out.append({"field": ".".join(str(p) for p in loc), "label": FIELD_LABELS.get(name, "输入内容"),
                    "message": _message(err, name)})
    return out


def summary(fields: list[dict[str, str]]) -> str:
    """One sentence for a toast: each field once, in order."""
    seen: dict[str, str] = {}
    for f in fields:
        seen.setdefault(f["label"], f["message"])
    return "；".join(f"{label}：{message}" for label, message in seen.items()) or "输入内容不符合要求"
