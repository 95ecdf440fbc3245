"""The agent/supervisor telephony API against a real supervised bridge worker and SIP softphones."""
from __future__ import annotations

import time

import pytest

from domain.db import session_scope
from domain.models import Agent, Call
from telephony.supervisor import Supervisor
from tests.conftest import login
from tests.telephony.conftest import TEST_FLOW, free_port, rtp_base, write_wav, speechlike

pytestmark = pytest.mark.slow


@pytest.fixture
def desk(app, client, engine, settings, tmp_path):
    from serving.api.telephony import router

    if not any(getattr(r, "path", "").startswith("/api/telephony") for r in app.routes):
        app.include_router(router)
    sup = Supervisor(1, db_url=str(engine.url), data_dir=settings.data_dir, sip_port=free_port(), rtp_port=rtp_base(),
                     control_port=free_port(), flow=TEST_FLOW.model_dump_json(), prefix="api")
    procs = []
    try:
        sup.start()
        yield sup, procs
    finally:
        for p in procs:
            p.close()
        sup.stop()


def peer(procs, user, tmp_path, **kw):
    from telephony.peer import Peer

    p = Peer(free_port(), rtp_base(), user=user, log_path=tmp_path / f"ua-{user}.log", **kw)
    procs.append(p)
    return p


def test_agent_states_call_operations_supervision_and_messages(desk, client, engine, tmp_path):
    sup, procs = desk
    agent_h, agent2_h, super_h = login(client, "agent"), login(client, "agent2"), login(client, "supervisor")
    wav = write_wav(tmp_path / "a.wav", speechlike(5, 20))
    softphone = peer(procs, "8", tmp_path, answer_wav=str(wav))
    with session_scope(engine) as s:
        s.query(Agent).filter_by(work_no="8").one().sip_uri = softphone.uri

    assert client.post("/api/telephony/me/state", json={"action": "sign_in"}, headers=agent_h).json()["state"] == "not_ready"
    r = client.post("/api/telephony/me/state", json={"action": "sign_in"}, headers=agent_h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "bad_transition"
    assert client.post("/api/telephony/me/state", json={"action": "ready"}, headers=agent_h).json()["state"] == "ready"
    assert client.post("/api/telephony/me/state", json={"action": "nap"}, headers=agent_h).status_code == 422

    caller = peer(procs, "13300000001", tmp_path)
    caller.call("c1", f"sip:12345@127.0.0.1:{sup.specs[0].sip_port}", dtmf="1", dtmf_after=0.3,
                **{"from": "13300000001"})
    softphone.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 15)
    time.sleep(0.3)
    [live] = client.get("/api/telephony/calls", headers=super_h).json()["calls"]
    uuid = live["call_uuid"]
    assert live["state"] == "talking" and live["caller"] == "133****0001"
    assert client.get("/api/telephony/calls", headers=agent_h).status_code == 403

    assert client.post(f"/api/telephony/calls/{uuid}/hold", headers=agent_h).json()["state"] == "held"
    assert client.post(f"/api/telephony/calls/{uuid}/hold", headers=agent_h).json()["error"]["code"] == "not_talking"
    assert client.post(f"/api/telephony/calls/{uuid}/retrieve", headers=agent2_h).status_code in (403, 404)
    assert client.post(f"/api/telephony/calls/{uuid}/retrieve", headers=agent_h).json()["state"] == "talking"
    bad = client.post(f"/api/telephony/calls/{uuid}/transfer", json={"target_kind": "agent", "target": "8; DROP"},
                      headers=agent_h)
    assert bad.status_code == 422
    busy = client.post(f"/api/telephony/calls/{uuid}/transfer", json={"target_kind": "agent", "target": "15"},
                       headers=agent_h)
    assert busy.status_code == 409 and busy.json()["error"]["message"] == "目标坐席未签入或正忙"

    monitor = peer(procs, "9100", tmp_path)
    r = client.post(f"/api/telephony/calls/{uuid}/supervise", json={"mode": "monitor", "sip_uri": monitor.uri},
                    headers=super_h)
    assert r.status_code == 200, r.text
    monitor.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 10)
    time.sleep(0.3)
    assert client.post(f"/api/telephony/calls/{uuid}/supervise", json={"mode": "barge"}, headers=super_h).status_code == 200
    assert client.post(f"/api/telephony/calls/{uuid}/hangup", headers=agent_h).status_code == 200
    caller.ended("c1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_scope(engine) as s:
            call = s.query(Call).filter_by(call_uuid=uuid).one()
            if call.ended_at:
                break
        time.sleep(0.2)
    assert call.result == "answered" and call.hangup_side == "agent" and call.hold_ms > 0

    assert client.post("/api/telephony/messages", json={"to_work_no": "15", "text": "请协助查询社保政策"},
                       headers=agent_h).status_code == 200
    msgs = client.get("/api/telephony/messages", headers=agent2_h).json()["messages"]
    assert msgs[-1]["text"] == "请协助查询社保政策" and msgs[-1]["from_work_no"] == "8"
    assert client.post("/api/telephony/me/state", json={"action": "sign_out"}, headers=agent_h).json()["state"] == "signed_out"
