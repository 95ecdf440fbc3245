"""Knowledge and copilot-feedback API over HTTP with real auth, real DB and the real retrieval model."""
from __future__ import annotations

import json

import pytest

from tests.conftest import login


@pytest.fixture
def kb_client(app):
    from fastapi.testclient import TestClient

    import importlib

    from serving.app import ROUTER_MODULES

    for name in ("serving.api.knowledge", "serving.api.copilot"):
        if name not in ROUTER_MODULES:  # until the app lists them
            app.include_router(importlib.import_module(name).router)
    with TestClient(app) as c:
        yield c


def _rows() -> bytes:
    rows = [
        {"id": "a1", "question": "社保卡丢了怎么补办？", "answer": "带身份证到社保服务中心补办，工本费20元，10个工作日。",
         "category": "劳动和社会保障/社会保险/社保卡"},
        {"id": "a2", "question": "路灯不亮找谁修？", "answer": "拨打12345报修，2个工作日内修复。", "category": "城乡建设/市政设施/路灯"},
    ]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def test_knowledge_manager_workflow_search_feedback_and_stats(kb_client):
    km, agent = login(kb_client, "km"), login(kb_client, "agent")
    # import with a bad row: rejected with a report, nothing written
    bad = _rows() + b'{"id": "a3", "question": "", "answer": "x"}\n'
    r = kb_client.post("/api/knowledge/import", headers=km, files={"file": ("kb.jsonl", bad)})
    assert r.status_code == 422 and r.json()["error"]["detail"]["errors"][0]["row"] == 3
    assert kb_client.get("/api/knowledge/entries", headers=km).json()["total"] == 0
    r = kb_client.post("/api/knowledge/import", headers=km, files={"file": ("kb.jsonl", _rows())},
                       data={"publish": "true"})
    assert r.status_code == 200 and r.json()["published"] == 2
    # agents search; managers manage
    r = kb_client.post("/api/knowledge/search", headers=agent, json={"query": "我的社保卡不见了咋办"})
    hit = r.json()["hits"][0]
    assert r.status_code == 200 and hit["title"].startswith("社保卡") and not r.json()["no_good_match"]
    assert any(f.startswith("费用") for f in hit["key_facts"])
    assert kb_client.get("/api/knowledge/entries", headers=agent).status_code == 403
    # a new entry goes draft → review → published and becomes searchable without a rebuild
    r = kb_client.post("/api/knowledge/entries", headers=km, json={
        "kind": "announcement", "title": "春节期间政务服务中心办公时间", "body": "2月10日至17日休息，18日起正常办公。",
        "category": "政务服务/政务服务效能/窗口服务"})
    assert r.status_code == 201
    eid = r.json()["id"]
    assert kb_client.post(f"/api/knowledge/entries/{eid}/action", headers=km, json={"action": "publish"}).status_code == 409
    for action in ("submit", "publish"):
        assert kb_client.post(f"/api/knowledge/entries/{eid}/action", headers=km, json={"action": action}).status_code == 200
    r = kb_client.post("/api/knowledge/search", headers=agent, json={"query": "春节政务中心上不上班"})
    assert r.json()["hits"][0]["entry_id"] == eid
    bad_cat = {"title": "x", "body": "y", "category": "不存在"}
    assert kb_client.put(f"/api/knowledge/entries/{eid}", headers=km, json=bad_cat).status_code == 422
    # agent feedback lands in the usage stats
    hit_id = hit["entry_id"]
    for kind in ("used", "unhelpful"):
        r = kb_client.post("/api/copilot/feedback", headers=agent, json={"kind": kind, "entry_id": hit_id})
        assert r.status_code == 201
    r = kb_client.post("/api/copilot/feedback", headers=agent,
                       json={"kind": "category_corrected", "category": "民政/社会救助/临时救助"})
    assert r.status_code == 201
    assert kb_client.post("/api/copilot/feedback", headers=agent,
                          json={"kind": "category_corrected", "category": "乱写"}).status_code == 422
    assert kb_client.post("/api/copilot/feedback", headers=agent, json={"kind": "used"}).status_code == 422
    stats = kb_client.get("/api/knowledge/stats", headers=km).json()
    row = next(e for e in stats["entries"] if e["id"] == hit_id)
    assert (row["used"], row["unhelpful"]) == (1, 1)
    assert stats["category_corrections"][0]["detail"] == "民政/社会救助/临时救助"
    # export in every format
    for fmt in ("jsonl", "csv", "xlsx"):
        r = kb_client.get(f"/api/knowledge/export?fmt={fmt}", headers=km)
        assert r.status_code == 200 and len(r.content) > 50
    assert "社保卡" in kb_client.get("/api/knowledge/export?fmt=jsonl", headers=km).text
