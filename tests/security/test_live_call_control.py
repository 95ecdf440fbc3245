"""Issue #26, items 1 and 12 (worker control): live calls are controlled per tenant, and a bridge worker's
control port answers only callers holding the control secret.

A real supervised bridge worker, real SIP softphones on loopback and the real HTTP API; a second tenant
with its own supervisor is created as ``hotline users add --tenant`` does.
"""
from __future__ import annotations

import os
import stat
import time

import httpx
import pytest

from domain import accounts
from domain.db import session_scope
from domain.models import Agent
from telephony.control import control_token, worker_op, worker_status
from telephony.peer import Peer
from telephony.supervisor import Supervisor
from tests.conftest import login
from tests.telephony.conftest import TEST_FLOW, free_port, rtp_base, speechlike, write_wav

pytestmark = pytest.mark.slow
OTHER_PASSWORD = "Xq7!mR2#vK9$"
NOT_FOUND = {"code": "call_not_found", "message": "通话不存在或已结束"}


@pytest.fixture
def live_call(app, client, engine, settings, tmp_path):
    """Tenant laibin's agent 8 talking to caller 13300000001 through a supervised worker; a second tenant
    ``other`` with a supervisor of its own."""
    with session_scope(engine) as s:
        accounts.create_user(s, accounts.ensure_tenant(s, "other"), "boss", OTHER_PASSWORD, "supervisor")
    sup = Supervisor(1, db_url=str(engine.url), data_dir=settings.data_dir, sip_port=free_port(),
                     rtp_port=rtp_base(), control_port=free_port(), flow=TEST_FLOW.model_dump_json(), prefix="sec")
    procs: list[Peer] = []
    try:
        sup.start()
        wav = write_wav(tmp_path / "agent.wav", speechlike(7, 30))
        softphone = Peer(free_port(), rtp_base(), user="8", answer_wav=str(wav), log_path=tmp_path / "ua-8.log")
        procs.append(softphone)
        with session_scope(engine) as s:
            agent = s.query(Agent).filter_by(work_no="8").one()
            agent.sip_uri, agent.state = softphone.uri, "ready"
        caller = Peer(free_port(), rtp_base(), user="13300000001", log_path=tmp_path / "ua-caller.log")
        procs.append(caller)
        caller.call("c1", f"sip:12345@127.0.0.1:{sup.specs[0].sip_port}", dtmf="1", dtmf_after=0.3,
                    **{"from": "13300000001"})
        softphone.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 20)
        time.sleep(0.3)
        yield sup, caller
    finally:
        for p in procs:
            p.close()
        sup.stop()


def test_other_tenant_cannot_see_or_operate_a_live_call(live_call, client, tmp_path):
    sup, _caller = live_call
    mine = login(client, "supervisor")
    other = login(client, "boss", OTHER_PASSWORD, tenant="other")

    [call] = client.get("/api/telephony/calls", headers=mine).json()["calls"]
    uuid = call["call_uuid"]
    assert call["state"] == "talking" and call["caller"] == "133****0001"  # masked even for the own tenant
    r = client.get("/api/telephony/calls", headers=other)
    assert r.status_code == 200 and r.json() == {"calls": []}

    # Every live operation on the foreign call answers exactly as for a call that does not exist.
    missing = f"{uuid.split('-', 1)[0]}-0000000000000000"
    attempts = [("hold", None), ("retrieve", None), ("hangup", None), ("drop_party", None),
                ("transfer", {"target_kind": "external", "target": "13900000000"}),
                ("conference", {"target_kind": "external", "target": "13900000000"}),
                ("supervise", {"mode": "monitor", "sip_uri": "sip:9999@127.0.0.1:5999"})]
    for op, body in attempts:
        for target in (uuid, missing):
            r = client.post(f"/api/telephony/calls/{target}/{op}", json=body, headers=other)
            assert r.status_code == 404 and r.json()["error"] == NOT_FOUND, (op, target, r.text)

    # The worker itself refuses an operation named for another tenant, even with the control secret.
    token, port = control_token(sup.data_dir), sup.specs[0].control_port
    own_tenant = worker_status(port, token)["result"]["tenant_id"]
    refused = worker_op(port, token, "hangup", tenant_id=own_tenant + 1, call_uuid=uuid)
    assert refused == {"ok": False, "error": "call_not_found"}

    # Nothing happened to the call, and its own tenant's supervisor still controls it.
    [call] = client.get("/api/telephony/calls", headers=mine).json()["calls"]
    assert call["call_uuid"] == uuid and call["state"] == "talking" and not call["party"]
    r = client.post(f"/api/telephony/calls/{uuid}/hold", headers=mine)
    assert r.status_code == 200 and r.json()["state"] == "held"
    assert client.post(f"/api/telephony/calls/{uuid}/retrieve", headers=mine).json()["state"] == "talking"


def test_worker_control_port_requires_the_secret(live_call):
    sup, caller = live_call
    port = sup.specs[0].control_port
    token_file = sup.data_dir / "telephony" / "control.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = control_token(sup.data_dir)
    status = worker_status(port, token)["result"]
    [call], tenant_id = status["conversations"], status["tenant_id"]

    base = f"http://127.0.0.1:{port}"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token}x"},
                    {"Authorization": token}):
        assert httpx.get(f"{base}/status", headers=headers).status_code == 401
        r = httpx.post(f"{base}/op", json={"op": "hangup", "tenant_id": tenant_id, "call_uuid": call["call_uuid"]},
                       headers=headers)
        assert r.status_code == 401 and r.json() == {"ok": False, "error": "unauthorized"}
    with pytest.raises(httpx.HTTPStatusError):
        worker_status(port, "wrong")

    # The refused hang-ups did nothing; with the secret the same request is carried out.
    assert not caller.find(ev="ended", id="c1")
    [still] = worker_status(port, token)["result"]["conversations"]
    assert still["call_uuid"] == call["call_uuid"] and still["state"] == "talking"
    r = httpx.post(f"{base}/op", json={"op": "hangup", "tenant_id": tenant_id, "call_uuid": call["call_uuid"]},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["ok"]
    caller.ended("c1", timeout=10)
