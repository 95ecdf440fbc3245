"""Every endpoint, every role: allowed roles get through, the others get 403; hostile input gets a 4xx."""
from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from domain.accounts import ROLES
from domain.db import session_scope
from demo import DEMO_USERS
from domain.models import AuditLog
from tests.conftest import login

PUBLIC = {"/healthz", "/readyz", "/metrics", "/api/auth/login"}
SIGNED_PREFIXES = ("/api/hooks/",)  # partner webhooks: HMAC-signed requests instead of user roles
ROLE_USER = {role: username for username, role, _ in DEMO_USERS if username not in {"agent2"}}
HOSTILE = [  # text like any other: stored as given, inert where it is shown (escaped) or queried (parameterised)
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "' OR '1'='1",
    "1'; DROP TABLE users; --",
    "x' UNION SELECT password_hash FROM users --",
]
CONTROL = ["a\x00b", "a\x1b[31mb", "a\x7fb"]  # characters no text field may hold


def _allowed_roles(route: APIRoute) -> set[str] | None:
    """Roles of the route's require_roles dependency; None when any logged-in user may call it."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return set(roles)
        stack.extend(dep.dependencies)
    return None


def _api_routes(routes):
    """APIRoutes, including those of included routers (FastAPI may wrap them lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _routes(app):
    for route in _api_routes(app.routes):
        if route.path not in PUBLIC:
            for method in sorted(route.methods - {"HEAD"}):
                yield route, method


def _path(route: APIRoute) -> str:
    return re.sub(r"\{[^}]+\}", "999999", route.path)


def test_unauthenticated_requests_are_rejected(app, client):
    for route, method in _routes(app):
        r = client.request(method, _path(route))
        assert r.status_code == 401, (method, route.path, r.status_code)
        signed = route.path.startswith(SIGNED_PREFIXES)
        assert r.json()["error"]["code"] == ("bad_signature" if signed else "unauthenticated")


def test_signed_webhooks_reject_bad_signatures_whatever_the_role(app, client):
    headers = {role: login(client, username) for role, username in ROLE_USER.items()}
    forged = {"X-Hotline-Key": "k1", "X-Hotline-Timestamp": "1", "X-Hotline-Signature": "00"}
    for route, method in _routes(app):
        if not route.path.startswith(SIGNED_PREFIXES):
            continue
        for role in ROLES:
            r = client.request(method, _path(route), headers={**headers[role], **forged}, json={})
            assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature", (role, route.path)


def test_role_by_endpoint_matrix(app, client):
    headers = {role: login(client, username) for role, username in ROLE_USER.items()}
    assert set(headers) == set(ROLES)
    checked = 0
    for route, method in _routes(app):
        if route.path.startswith(SIGNED_PREFIXES):
            continue  # covered by test_signed_webhooks_reject_bad_signatures_whatever_the_role
        allowed = _allowed_roles(route)
        for role in ROLES:
            if route.path == "/api/auth/logout":
                continue
            r = client.request(method, _path(route), headers=headers[role], json={})
            if allowed is None or role in allowed:
                assert r.status_code not in (401, 403), (role, method, route.path, r.text)
            else:
                assert r.status_code == 403, (role, method, route.path, r.status_code)
                assert r.json()["error"]["code"] == "forbidden"
            checked += 1
    assert checked >= 6 * 5


def _example(schema: dict, components: dict):
    if "$ref" in schema:
        return _example(components[schema["$ref"].split("/")[-1]], components)
    if "anyOf" in schema:
        return _example(next(s for s in schema["anyOf"] if s.get("type") != "null"), components)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: _example(v, components) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {"type": "string"}), components)]
    return {"integer": 1, "number": 1.0, "boolean": True}.get(kind, "正常文本")


def _json_body_routes(app):
    spec = app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    for route in _api_routes(app.routes):
        for method in sorted(route.methods - {"HEAD"}):
            op = spec["paths"].get(route.path, {}).get(method.lower(), {})
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = components[schema["$ref"].split("/")[-1]]
            text_fields = [k for k, v in schema.get("properties", {}).items()
                           if v.get("type") == "string" or any(s.get("type") == "string" for s in v.get("anyOf", []))]
            yield route, method, _example(schema, components), text_fields


def _audit_count(engine) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count(AuditLog.id)))


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_strings_in_every_text_field_are_taken_as_text(app, client, payload):
    headers = {role: login(client, username) for role, username in ROLE_USER.items()}
    covered = 0
    for route, method, example, text_fields in _json_body_routes(app):
        allowed = _allowed_roles(route)
        role = sorted(allowed)[0] if allowed else "admin"
        for field in text_fields:
            r = client.request(method, _path(route), headers=headers[role], json={**example, field: payload})
            assert r.status_code < 500, (route.path, field, r.status_code, r.text)
            if r.status_code >= 400:
                assert set(r.json()["error"]) >= {"code", "message"}
            covered += 1
    assert covered >= 5


@pytest.mark.parametrize("payload", CONTROL)
def test_control_characters_in_every_text_field_are_rejected(app, client, engine, payload):
    headers = {role: login(client, username) for role, username in ROLE_USER.items()}
    covered = 0
    for route, method, example, text_fields in _json_body_routes(app):
        allowed = _allowed_roles(route)
        role = sorted(allowed)[0] if allowed else "admin"
        for field in text_fields:
            if field.endswith("password"):
                continue  # passwords are hashed, never stored or shown as text
            before = _audit_count(engine)
            r = client.request(method, _path(route), headers=headers[role], json={**example, field: payload})
            assert 400 <= r.status_code < 500, (route.path, field, r.status_code, r.text)
            assert set(r.json()["error"]) >= {"code", "message"}
            assert _audit_count(engine) == before, (route.path, field)
            covered += 1
    assert covered >= 5


def test_malformed_json_and_oversized_bodies(app, client, engine, settings):
    headers = login(client, "admin")
    before = _audit_count(engine)
    r = client.post("/api/admin/users", headers={**headers, "Content-Type": "application/json"},
                    content=b'{"username": "x", ')
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    big = b'{"username": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    r = client.post("/api/admin/users", headers={**headers, "Content-Type": "application/json"}, content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert _audit_count(engine) == before


def test_security_headers_and_ops_endpoints(client):
    r = client.get("/healthz")
    assert r.json() == {"status": "ok"}
    assert r.headers["X-Frame-Options"] == "DENY" and "default-src 'self'" in r.headers["Content-Security-Policy"]
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["database"] == {"ok": True}
    assert "hotline_http_requests_total" in client.get("/metrics").text
    assert client.get("/openapi.json").json()["info"]["title"]
    missing = client.get("/api/nope")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "资源不存在"
