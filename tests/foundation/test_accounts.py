from datetime import timedelta

from sqlalchemy import func, select

from domain.db import session_scope
from domain.models import AuditLog, utcnow
from tests.conftest import login


def test_cookie_login_requires_csrf_on_writes(client):
    r = client.post("/api/auth/login", json={"username": "admin", "password": "Hotline#2026"})
    assert r.status_code == 200
    csrf = r.json()["csrf_token"]
    assert client.get("/api/auth/me").json()["role"] == "admin"
    body = {"username": "newagent", "password": "Str0ng#Passw0rd", "role": "agent"}
    denied = client.post("/api/admin/users", json=body)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "csrf_failed"
    ok = client.post("/api/admin/users", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/auth/me").status_code == 401


def test_bearer_logout_revokes_token(client):
    headers = login(client, "agent")
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.post("/api/auth/logout", headers=headers).status_code == 200
    assert client.get("/api/auth/me", headers=headers).json()["error"]["code"] == "unauthenticated"


def test_lockout_after_five_failures(client, engine):
    for _ in range(5):
        r = client.post("/api/auth/login", json={"username": "agent", "password": "wrong"})
        assert r.status_code == 401
    r = client.post("/api/auth/login", json={"username": "agent", "password": "Hotline#2026"})
    assert r.status_code == 423 and r.json()["error"]["code"] == "account_locked"
    assert "锁定" in r.json()["error"]["message"]
    with session_scope(engine) as s:  # 15 minutes later the failures have left the throttle's window
        for row in s.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed")):
            row.at = utcnow() - timedelta(minutes=16)
    assert client.post("/api/auth/login", json={"username": "agent", "password": "Hotline#2026"}).status_code == 200


def test_unknown_user_and_failed_logins_are_audited(client, engine):
    assert client.post("/api/auth/login", json={"username": "nobody", "password": "x"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "agent", "password": "x"}).status_code == 401
    with session_scope(engine) as s:
        failed = s.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed")).all()
    assert {row.actor_name for row in failed} == {"nobody", "agent"}


def test_password_policy_and_change(client):
    headers = login(client, "qa")
    weak = client.post("/api/auth/password", headers=headers, json={"old_password": "Hotline#2026", "new_password": "abc"})
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    ok = client.post("/api/auth/password", headers=headers,
                     json={"old_password": "Hotline#2026", "new_password": "N3w#Password!"})
    assert ok.status_code == 200
    assert client.get("/api/auth/me", headers=headers).status_code == 401  # sessions revoked on change
    login(client, "qa", "N3w#Password!")


def test_admin_deactivates_user(client, engine):
    admin = login(client, "admin")
    users = client.get("/api/admin/users", headers=admin).json()
    agent_id = next(u["id"] for u in users if u["username"] == "agent2")
    agent_headers = login(client, "agent2")
    assert client.post(f"/api/admin/users/{agent_id}/deactivate", headers=admin).json()["active"] is False
    assert client.get("/api/auth/me", headers=agent_headers).status_code == 401
    r = client.post("/api/auth/login", json={"username": "agent2", "password": "Hotline#2026"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "account_inactive"
    with session_scope(engine) as s:
        row = s.scalar(select(AuditLog).where(AuditLog.action == "users.update", AuditLog.entity_id == str(agent_id))
                       .order_by(AuditLog.id.desc()))
    assert row.before == {"active": True} and row.after == {"active": False}


def test_every_change_has_an_audit_row_with_actor(client, engine):
    admin = login(client, "admin")
    with session_scope(engine) as s:
        before = s.scalar(select(func.count(AuditLog.id)))
    r = client.post("/api/admin/users", headers=admin,
                    json={"username": "auditme", "password": "Str0ng#Passw0rd", "role": "agent",
                          "display_name": "电话13978261453"})
    assert r.status_code == 201
    with session_scope(engine) as s:
        row = s.scalar(select(AuditLog).where(AuditLog.action == "users.create").order_by(AuditLog.id.desc()))
        assert s.scalar(select(func.count(AuditLog.id))) > before
    assert row.actor_name == "admin" and row.after["username"] == "auditme"
    assert "password_hash" not in row.after
    assert row.after["display_name"] == "电话139****1453"  # PII masked in the audit log
    log = client.get("/api/admin/audit", headers=admin, params={"action": "users.create"}).json()
    assert log[0]["after"]["username"] == "auditme"
    # searched in words, as the admin page shows the actions
    worded = client.get("/api/admin/audit", headers=admin, params={"action": "新建用户"}).json()
    assert worded[0]["after"]["username"] == "auditme" and {r["action"] for r in worded} == {"users.create"}
    assert {r["action"] for r in client.get("/api/admin/audit", headers=admin, params={"action": "用户"}).json()} \
        >= {"users.create"}
    assert client.get("/api/admin/audit", headers=admin, params={"action": "没有这种操作"}).json() == []


def test_tenant_isolation(client, engine):
    from demo import seed_demo

    with session_scope(engine) as s:
        seed_demo(s, "hechi")
    ours = login(client, "admin")
    theirs = login(client, "admin", tenant="hechi")
    their_users = client.get("/api/admin/users", headers=theirs).json()
    our_users = client.get("/api/admin/users", headers=ours).json()
    assert not {u["id"] for u in their_users} & {u["id"] for u in our_users}
    victim = their_users[0]["id"]
    r = client.post(f"/api/admin/users/{victim}/deactivate", headers=ours)
    assert r.status_code == 404
    assert all(u["active"] for u in client.get("/api/admin/users", headers=theirs).json())
    audit = client.get("/api/admin/audit", headers=ours).json()
    assert all(row["entity_id"] not in {str(u["id"]) for u in their_users} or row["entity"] != "users" for row in audit)


def test_writes_are_durable_before_the_response(client, engine):
    """The 201 is sent only after the commit: a second connection sees the row at once."""
    admin = login(client, "admin")
    r = client.post("/api/admin/users", headers=admin,
                    json={"username": "durable", "password": "Str0ng#Passw0rd", "role": "agent"})
    assert r.status_code == 201
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM users WHERE username = 'durable'")).scalar() == 1


def test_the_pipelines_transcript_sentences_are_not_audited_one_by_one_but_the_call_is(client, engine):
    from domain.models import Call, Tenant, TranscriptSegment

    with session_scope(engine) as s:
        tenant = s.scalar(select(Tenant.id).limit(1))
        call = Call(tenant_id=tenant, call_uuid="audit-noise-1", caller_number="13977201234")
        s.add(call)
        s.flush()
        s.add_all([TranscriptSegment(tenant_id=tenant, call_id=call.id, leg="caller", speaker_role="caller",
                                     start_ms=i * 1000, end_ms=i * 1000 + 900, text=f"第{i}句") for i in range(3)])
    with session_scope(engine) as s:
        actions = s.scalars(select(AuditLog.action).where(AuditLog.action.in_(
            ["calls.create", "transcript_segments.create"]))).all()
        assert actions.count("calls.create") >= 1 and "transcript_segments.create" not in actions
        segment = s.scalar(select(TranscriptSegment).where(TranscriptSegment.text == "第1句"))
        segment.text = "第一句"  # a person's correction is audited
    with session_scope(engine) as s:
        assert s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "transcript_segments.update")) == 1
