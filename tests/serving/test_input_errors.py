"""Messages for people (issue #28 item 8): every input field the API validates has a Chinese name, and a refused
input is answered with that name and what is wrong with it, never pydantic's English."""
from __future__ import annotations

import typing

from fastapi.routing import APIRoute
from pydantic import BaseModel

from serving.input_errors import FIELD_LABELS
from tests.conftest import login


def _fields(model: type[BaseModel], seen: set) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                names |= _fields(t, seen)
            stack += list(typing.get_args(t))
    return names


def test_every_validated_field_has_a_chinese_name(app):
    names: set[str] = set()
    routes = list(app.routes)
    while routes:
        route = routes.pop()
        if hasattr(route, "original_router"):  # an included router (FastAPI keeps them as a branch)
            routes += route.original_router.routes
            continue
        if not isinstance(route, APIRoute):
            continue
        stack = [route.dependant]
        while stack:
            dep = stack.pop()
            stack += dep.dependencies
            for param in dep.query_params + dep.path_params + dep.body_params:
                names.add(param.name)
                annotation = param.field_info.annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    names |= _fields(annotation, set())
    assert {"phone", "summary", "definition", "verdict", "date_from", "query"} <= names  # the walk reaches the models
    unnamed = sorted(n for n in names if n not in FIELD_LABELS)
    assert not unnamed, f"fields without a Chinese name in serving/input_errors.FIELD_LABELS: {unnamed}"


def test_the_ticket_forms_phone_and_length_errors_read_in_chinese(client):
    agent = login(client, "agent")
    r = client.post("/api/tickets", headers=agent, json={"draft": {"phone": "电话0771abc", "summary": "x" * 4001}})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["message"] == "联系电话：只能包含数字、开头的“+”和“-”，最多 20 位；诉求摘要：不能超过 4000 个字符"
    assert [(f["label"], f["field"]) for f in error["detail"]["fields"]] == [
        ("联系电话", "body.draft.phone"), ("诉求摘要", "body.draft.summary")]
    r = client.post("/api/tickets", headers=agent, json={"draft": {"request_type": "催办"}})
    assert r.json()["error"]["message"] == "诉求类型：不是可选的值，请从列表中选择"
    r = client.get("/api/qa/results", headers=login(client, "qa"), params={"limit": "很多"})
    assert r.json()["error"]["message"] == "条数：请填写整数"
    assert all(ord(c) < 128 or "\u3000" <= c <= "\u9fff" or c in "“”：；（），" for c in r.json()["error"]["message"])
