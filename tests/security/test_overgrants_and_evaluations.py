"""Issue #26 items 5 and 12: evaluation arguments stay inside the operator's evaluation data folder and runs
belong to a tenant; evaluators get no transcripts, agents no unpublished knowledge, and a tenant's integration
view no other tenant's parked events.  Real HTTP with real logins, two tenants."""
from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from domain.db import session_scope
from demo import seed_demo
from domain.models import Agent, Call, Tenant, TranscriptSegment, utcnow
from tests.conftest import login


@pytest.fixture
def two_tenants(engine, settings, tmp_path):
    """The app with tenants laibin and hechi and an evaluation data folder holding one data set."""
    from serving.app import create_app

    root = tmp_path / "evaldata"
    (root / "mandarin").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    with session_scope(engine) as s:
        seed_demo(s, "laibin")
        seed_demo(s, "hechi")
    app = create_app(settings.model_copy(update={"eval_data_root": root}), engine)
    with TestClient(app) as client:
        yield client


def test_evaluation_paths_stay_in_the_data_folder_and_runs_stay_in_their_tenant(two_tenants):
    client = two_tenants
    ours, theirs = login(client, "evaluator"), login(client, "evaluator", tenant="hechi")
    benches = {b["name"]: b for b in client.get("/api/evaluations/benchmarks", headers=ours).json()}
    assert "db_url" not in {p["name"] for p in benches["sms-throughput"]["params"]}
    assert "workdir" not in {p["name"] for p in benches["live"]["params"]}

    def start(benchmark: str, **args):
        return client.post("/api/evaluations/runs", headers=ours, json={"benchmark": benchmark, "args": args})

    chosen_db = start("sms-throughput", messages=10, db_url="sqlite:////tmp/attacker-chosen.db")
    assert chosen_db.status_code == 422 and chosen_db.json()["error"]["code"] == "unknown_parameter"
    assert start("live", calls=1, workdir="/tmp/attacker").json()["error"]["code"] == "unknown_parameter"
    # a missing data set and paths outside the folder (existing or not) get the very same answer
    answers = [start("asr", data=path) for path in
               ["nosuch", "../outside", "../nosuch", "/etc", "/nonexistent", "mandarin/../../outside"]]
    assert {r.status_code for r in answers} == {422}
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["error"]["code"] == "bad_data_path"

    run = start("sms-throughput", messages=200000)
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    assert client.get("/api/evaluations/runs", headers=theirs).json() == []
    assert client.get(f"/api/evaluations/runs/{run_id}", headers=theirs).status_code == 404
    assert client.post(f"/api/evaluations/runs/{run_id}/cancel", headers=theirs).status_code == 404
    assert [r["id"] for r in client.get("/api/evaluations/runs", headers=ours).json()] == [run_id]
    assert client.get(f"/api/evaluations/runs/{run_id}", headers=ours).json()["state"] == "running"
    cancelled = client.post(f"/api/evaluations/runs/{run_id}/cancel", headers=ours)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "failed"

    inside = start("asr", data="mandarin", limit=1)  # a data set inside the folder is accepted
    assert inside.status_code == 201, inside.text
    assert client.post(f"/api/evaluations/runs/{inside.json()['id']}/cancel", headers=ours).status_code in (200, 409)


def _scored_call(engine) -> int:
    from qa.service import score_and_store

    with session_scope(engine) as s:
        tenant = s.scalar(select(Tenant).where(Tenant.code == "laibin"))
        agent = s.scalar(select(Agent).where(Agent.tenant_id == tenant.id, Agent.work_no == "8"))
        now = utcnow()
        call = Call(tenant_id=tenant.id, call_uuid="overgrant-1", caller_number="13907721234", agent_id=agent.id,
                    started_at=now - timedelta(minutes=2), ended_at=now, result="answered")
        s.add(call)
        s.flush()
        segments = [TranscriptSegment(tenant_id=tenant.id, call_id=call.id, leg=role, speaker_role=role,
                                      start_ms=start, end_ms=start + 4000, text=text)
                    for role, start, text in [("agent", 0, "您好，来宾12345热线，8号话务员为您服务。"),
                                              ("caller", 4500, "我叫刘芳，电话13907721234，住在兴宾区河西路8号。"),
                                              ("agent", 9000, "这个不归我们管，你自己去查。")]]
        s.add_all(segments)
        s.flush()
        return score_and_store(s, tenant.id, segments, {}, call_id=call.id, agent_id=agent.id).id


def test_evaluators_read_scores_without_what_was_said(two_tenants, engine):
    client = two_tenants
    result_id = _scored_call(engine)
    reviewer = client.get(f"/api/qa/results/{result_id}", headers=login(client, "qa")).json()
    assert any("刘芳" in t["text"] for t in reviewer["transcript"])
    evaluator = client.get(f"/api/qa/results/{result_id}", headers=login(client, "evaluator"))
    assert evaluator.status_code == 200
    body = evaluator.json()
    assert body["transcript"] == [] and body["score"] == reviewer["score"]
    assert "刘芳" not in evaluator.text and "不归我们管" not in evaluator.text
    bad = next(i for i in body["items"] if i["code"] == "forbidden_phrases")
    assert not bad["passed"] and bad["evidence"][0]["start_ms"] == 9000 and "text" not in bad["evidence"][0]


def test_agents_read_only_the_published_version_of_knowledge(two_tenants, engine):
    from knowledge.service import EntryIn, create_entry, transition, update_entry

    client = two_tenants
    with session_scope(engine) as s:
        tid = s.scalar(select(Tenant.id).where(Tenant.code == "laibin"))
        draft = create_entry(s, tid, EntryIn(title="内部草稿：拆迁补偿标准", body="尚未审核的补偿标准草稿"))
        live = create_entry(s, tid, EntryIn(title="社保卡遗失补办", body="工本费20元"))
        transition(s, tid, live.id, "submit")
        transition(s, tid, live.id, "publish")
        update_entry(s, tid, live.id, EntryIn(title="社保卡遗失补办", body="工本费30元（待审）"))
        draft_id, live_id = draft.id, live.id
    agent, km = login(client, "agent"), login(client, "km")
    assert client.get(f"/api/knowledge/entries/{draft_id}", headers=agent).status_code == 404
    assert client.get(f"/api/knowledge/entries/{draft_id}", headers=km).status_code == 200
    seen = client.get(f"/api/knowledge/entries/{live_id}", headers=agent)
    assert seen.status_code == 200 and seen.json()["body"] == "工本费20元" and seen.json()["version"] == 1
    assert client.get(f"/api/knowledge/entries/{live_id}?version=2", headers=agent).status_code == 404
    assert client.get(f"/api/knowledge/entries/{live_id}?version=2", headers=km).json()["body"] == "工本费30元（待审）"


def test_parked_integration_events_are_listed_for_their_tenant_only(two_tenants, engine, settings):
    from tickets.integrations import exchange, inbound

    client = two_tenants
    with session_scope(engine) as s:
        hechi = s.scalar(select(Tenant.id).where(Tenant.code == "hechi"))
        event = exchange.ExchangeEvent(event_id="police110-HC1-2", type="complete", order_id="HC1", seq=2)
        assert inbound.receive(s, hechi, exchange.POLICE110, event, settings)["status"] == "parked"
    theirs = client.get("/api/tickets/integrations", headers=login(client, "supervisor", tenant="hechi")).json()
    assert [p["event_id"] for p in theirs["parked"]] == ["police110-HC1-2"]
    ours = client.get("/api/tickets/integrations", headers=login(client, "supervisor")).json()
    assert ours["parked"] == []
