"""Four-eyes approval of knowledge (issue #28 item 9), per tenant: where ``kb_four_eyes`` is on, the author of a
version cannot publish it and another knowledge manager can; where it is off (the default) the author may. Real HTTP,
real logins, two tenants, both database backends."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from domain import accounts, tenant_settings
from domain.db import session_scope
from demo import seed_demo
from domain.models import Tenant
from tests.conftest import login

ENTRY = {"title": "居住证办理需要什么材料？", "kind": "faq", "body": "本人身份证、居住登记凭证和一寸照片两张。"}


@pytest.fixture
def client(engine, settings):
    from serving.app import create_app

    with session_scope(engine) as s:
        seed_demo(s, "laibin")
        seed_demo(s, "hechi")
        laibin = s.scalar(select(Tenant).where(Tenant.code == "laibin"))
        accounts.create_user(s, laibin, "km2", "Zhao-Min#Kb4Eyes", "knowledge_manager", "知识库管理员 赵敏")
        current = tenant_settings.get(s, laibin.id)
        tenant_settings.save(s, laibin.id, current.model_copy(update={
            "knowledge": current.knowledge.model_copy(update={"kb_four_eyes": True})}))
    with TestClient(create_app(settings, engine)) as c:
        yield c


def _submitted(client, headers) -> int:
    entry = client.post("/api/knowledge/entries", headers=headers, json=ENTRY)
    assert entry.status_code == 201, entry.text
    assert client.post(f"/api/knowledge/entries/{entry.json()['id']}/action", headers=headers,
                       json={"action": "submit"}).status_code == 200
    return entry.json()["id"]


def test_the_author_cannot_approve_their_own_change_where_the_tenant_asks_for_four_eyes(client):
    km, km2 = login(client, "km"), login(client, "km2", "Zhao-Min#Kb4Eyes")
    entry_id = _submitted(client, km)
    assert client.get(f"/api/knowledge/entries/{entry_id}", headers=km).json()["may_publish"] is False
    own = client.post(f"/api/knowledge/entries/{entry_id}/action", headers=km, json={"action": "publish"})
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes"
    assert "另一名知识库管理员" in own.json()["error"]["message"]
    assert client.get(f"/api/knowledge/entries/{entry_id}", headers=km2).json()["may_publish"] is True
    other = client.post(f"/api/knowledge/entries/{entry_id}/action", headers=km2, json={"action": "publish"})
    assert other.status_code == 200 and other.json()["status"] == "published"

    # a second manager's edit of the published entry: now the first manager approves it
    changed = client.put(f"/api/knowledge/entries/{entry_id}", headers=km2, json={**ENTRY, "body": ENTRY["body"] + "免费办理。"})
    assert changed.status_code == 200, changed.text
    assert client.post(f"/api/knowledge/entries/{entry_id}/action", headers=km2, json={"action": "submit"}).status_code == 200
    assert client.post(f"/api/knowledge/entries/{entry_id}/action", headers=km2,
                       json={"action": "publish"}).status_code == 403
    assert client.post(f"/api/knowledge/entries/{entry_id}/action", headers=km,
                       json={"action": "publish"}).status_code == 200


def test_without_four_eyes_the_author_publishes_and_other_tenants_see_nothing(client):
    km = login(client, "km", tenant="hechi")
    entry_id = _submitted(client, km)
    assert client.get(f"/api/knowledge/entries/{entry_id}", headers=km).json()["may_publish"] is True
    assert client.post(f"/api/knowledge/entries/{entry_id}/action", headers=km,
                       json={"action": "publish"}).status_code == 200
    laibin_km = login(client, "km2", "Zhao-Min#Kb4Eyes")
    assert client.get(f"/api/knowledge/entries/{entry_id}", headers=laibin_km).status_code == 404
    assert client.post(f"/api/knowledge/entries/{entry_id}/action", headers=laibin_km,
                       json={"action": "archive"}).status_code == 404
    for role in ("agent", "qa", "evaluator"):
        assert client.post(f"/api/knowledge/entries/{entry_id}/action", headers=login(client, role, tenant="hechi"),
                           json={"action": "archive"}).status_code == 403
