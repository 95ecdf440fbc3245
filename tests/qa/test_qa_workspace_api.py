"""The QA workspace over every call (issue #28 item 6-7): one row per call with its result versions, the filters,
failed items first with the knowledge entry an answer contradicts, overturns applied in the agent's view, the
recording for the agent's own result; roles and tenants checked. Real HTTP, real scorer, both database backends."""
from __future__ import annotations

import wave
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from domain.db import session_scope
from demo import seed_demo
from domain.models import Agent, Call, Recording, Tenant, Ticket, TranscriptSegment, utcnow
from tests.conftest import login

WRONG_FEE = [  # the agent quotes a fee the published entry contradicts, and is rude
    ("agent", 0, 6000, "您好，来宾12345政务服务便民热线，8号话务员为您服务，请问有什么可以帮您？"),
    ("caller", 6500, 9000, "社保卡丢了补办要多少钱？"),
    ("agent", 9500, 14000, "补卡收取工本费30元，带身份证去窗口。这个不归我们管，你自己去查。"),
    ("agent", 14500, 17000, "感谢您的来电，再见。"),
]
POLITE = [
    ("agent", 0, 6000, "您好，来宾12345政务服务便民热线，8号话务员为您服务，请问有什么可以帮您？"),
    ("caller", 6500, 9000, "我家门口的路灯坏了好几天了。"),
    ("agent", 9500, 14000, "您反映的是路灯不亮的问题，我们会转交市政部门处理。"),
]


def _call(s, tenant_id: int, agent_id: int | None, uuid: str, lines, started, wav_path=None) -> int:
    call = Call(tenant_id=tenant_id, call_uuid=uuid, caller_number="13900000000", agent_id=agent_id,
                started_at=started, answered_at=started, ended_at=started + timedelta(seconds=20), result="answered")
    s.add(call)
    s.flush()
    for role, start, end, text in lines:
        s.add(TranscriptSegment(tenant_id=tenant_id, call_id=call.id, leg=role, speaker_role=role, start_ms=start,
                                end_ms=end, text=text, confidence=0.95, engine="reference"))
    if wav_path:
        s.add(Recording(tenant_id=tenant_id, call_id=call.id, path=str(wav_path), sample_rate=8000, channels=1,
                        duration_ms=1000))
    return call.id


@pytest.fixture
def world(engine, settings, tmp_path):
    from knowledge.service import EntryIn, create_entry, transition
    from qa.service import score_stored_call
    from serving.app import create_app

    wav_path = tmp_path / "call.wav"
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0\0" * 8000)
    now = utcnow()
    with session_scope(engine) as s:
        seed_demo(s, "laibin")
        seed_demo(s, "hechi")
        tid, other = (s.scalar(select(Tenant.id).where(Tenant.code == c)) for c in ("laibin", "hechi"))
        entry = create_entry(s, tid, EntryIn(title="社保卡遗失了怎么补办？", external_id="kb-card",
                                             body="本人携带身份证到社保卡窗口补办，补卡收取工本费20元。"))
        transition(s, tid, entry.id, "submit")
        transition(s, tid, entry.id, "publish")
        agent8 = s.scalar(select(Agent.id).where(Agent.tenant_id == tid, Agent.work_no == "8"))
        agent15 = s.scalar(select(Agent.id).where(Agent.tenant_id == tid, Agent.work_no == "15"))
        wrong = _call(s, tid, agent8, "ws-wrong", WRONG_FEE, now - timedelta(hours=2), wav_path)
        polite = _call(s, tid, agent15, "ws-polite", POLITE, now - timedelta(days=3))
        unscored = _call(s, tid, agent8, "ws-unscored", POLITE, now - timedelta(hours=1))
        theirs = _call(s, other, None, "ws-hechi", WRONG_FEE, now - timedelta(hours=1))
        s.add(Ticket(tenant_id=tid, number="LB-WS-1", call_id=wrong, category="社会保障/社保卡",
                     summary="补办社保卡"))
        s.get(Call, wrong).category = "城乡建设/市政设施"  # the copilot's guess: the ticket's category wins
        s.get(Call, polite).category = "公安政法/治安管理/紧急警情转接"  # no ticket: the copilot's category
        for call_id, tenant in ((wrong, tid), (wrong, tid), (polite, tid), (theirs, other)):  # `wrong` scored twice
            score_stored_call(s, tenant, call_id, sampling=None)
        ids = {"wrong": wrong, "polite": polite, "unscored": unscored, "theirs": theirs, "entry": entry.id}
    app = create_app(settings, engine)
    with TestClient(app) as client:
        yield client, ids


def _calls(client, headers, **params):
    r = client.get("/api/qa/calls", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return [row["call_id"] for row in r.json()["items"]], r.json()


def test_every_call_one_row_with_versions_and_filters(world):
    client, ids = world
    qa = login(client, "qa")
    listed, page = _calls(client, qa)
    assert listed == [ids["unscored"], ids["wrong"], ids["polite"]]  # newest first, the other tenant's call absent
    assert page["total"] == 3
    wrong = next(r for r in page["items"] if r["call_id"] == ids["wrong"])
    assert [(v["version"], v["current"]) for v in wrong["versions"]] == [(1, False), (2, True)]
    assert wrong["category"] == "社会保障/社保卡" and wrong["recording_id"]
    assert {"answer_accuracy", "forbidden_phrases"} <= set(wrong["result"]["failed_codes"])
    assert next(r for r in page["items"] if r["call_id"] == ids["unscored"])["result"] is None

    assert _calls(client, qa, q="工本费30元")[0] == [ids["wrong"]]
    assert _calls(client, qa, q="ws-polite")[0] == [ids["polite"]]
    assert _calls(client, qa, scored="unscored")[0] == [ids["unscored"]]
    assert _calls(client, qa, category="社会保障")[0] == [ids["wrong"]]
    assert _calls(client, qa, category="城乡建设")[0] == []
    assert _calls(client, qa, category="公安政法")[0] == [ids["polite"]]
    assert next(r for r in page["items"] if r["call_id"] == ids["polite"])["category"] == "公安政法/治安管理/紧急警情转接"
    assert _calls(client, qa, item="answer_accuracy")[0] == [ids["wrong"]]
    agent15 = client.get("/api/directory/agents", headers=qa).json()
    agent15 = next(a["id"] for a in agent15 if a["work_no"] == "15")
    assert _calls(client, qa, agent_id=agent15)[0] == [ids["polite"]]
    assert _calls(client, qa, score_max=wrong["result"]["score"])[0][0] == ids["wrong"]
    today = utcnow().date()
    assert ids["polite"] not in _calls(client, qa, date_from=str(today - timedelta(days=1)))[0]
    assert _calls(client, qa, date_to=str(today - timedelta(days=2)))[0] == [ids["polite"]]
    assert _calls(client, qa, limit=1, offset=1)[0] == [ids["wrong"]]

    bad = client.get("/api/qa/calls", headers=qa, params={"date_from": str(today), "date_to": str(today - timedelta(days=1))})
    assert bad.status_code == 422 and bad.json()["error"]["message"] == "开始日期不能晚于结束日期"
    bad = client.get("/api/qa/calls", headers=qa, params={"date_from": "昨天", "score_min": "-1"})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"] == "开始日期：日期格式不正确（例如 2026-01-31）；最低分：不能小于 0"

    for role in ("agent", "evaluator", "km"):
        assert client.get("/api/qa/calls", headers=login(client, role)).status_code == 403
    assert _calls(client, login(client, "qa", tenant="hechi"))[0] == [ids["theirs"]]


def test_failed_items_first_with_the_entry_and_overturns_applied_for_the_agent(world):
    client, ids = world
    qa, agent, agent2 = login(client, "qa"), login(client, "agent"), login(client, "agent2")
    _, page = _calls(client, qa, q="ws-wrong")
    result_id = page["items"][0]["result"]["id"]
    detail = client.get(f"/api/qa/results/{result_id}", headers=qa).json()
    passed = [i["effective_passed"] for i in detail["items"]]
    assert passed == sorted(passed) and not passed[0]  # failed items first
    accuracy = next(i for i in detail["items"] if i["code"] == "answer_accuracy")
    cited = [e for e in accuracy["evidence"] if e.get("kb_entry_id")]
    assert cited and detail["kb_entries"][cited[0]["kb_entry_id"]]["id"] == ids["entry"]
    assert "20元" in detail["kb_entries"][cited[0]["kb_entry_id"]]["body"]
    for item in detail["items"]:  # each piece of evidence once
        keys = [(e.get("start_ms"), e.get("text") or e.get("note"), e.get("kb_entry_id")) for e in item["evidence"]]
        assert len(keys) == len(set(keys))

    rude = next(i for i in detail["items"] if i["code"] == "forbidden_phrases" and not i["passed"])
    r = client.post(f"/api/qa/items/{rude['id']}/review", headers=qa, json={"verdict": "overturn", "comment": "语气正常"})
    assert r.status_code == 200, r.text
    mine = client.get("/api/qa/results", headers=agent).json()
    assert [m["id"] for m in mine] == [result_id]
    assert rude["name"] not in mine[0]["failed_items"] and accuracy["name"] in mine[0]["failed_items"]
    assert ids["wrong"] not in _calls(client, qa, item="forbidden_phrases")[0]

    # the agent hears their own call to appeal; nobody else's, and no other tenant's
    audio = client.get(f"/api/qa/results/{result_id}/audio", headers=agent)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    assert client.get(f"/api/qa/results/{result_id}/audio", headers=agent2).status_code == 404
    assert client.get(f"/api/qa/results/{result_id}/audio", headers=login(client, "qa", tenant="hechi")).status_code == 404
    assert client.get(f"/api/qa/results/{result_id}/audio", headers=login(client, "evaluator")).status_code == 403
    plays = client.get("/api/admin/audit", headers=login(client, "admin"), params={"action": "recording.play"}).json()
    assert [p["actor"] for p in plays] == ["agent"]
