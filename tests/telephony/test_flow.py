"""Call-flow states with real SIP peers: hang-ups in every state, ACD choices, block list, hours, queue timeout."""
from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from domain.db import session_scope
from domain.models import Agent, BlockedNumber, Tenant
from tests.telephony.conftest import TEST_FLOW, read_wav
from tests.telephony.test_bridge import agent_state, wait_cdr

pytestmark = pytest.mark.slow


def confirmed(ua, timeout=15):
    return ua.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", timeout)


def set_idle_since(lab, agent_id: int, seconds_ago: float) -> None:
    with session_scope(lab.engine) as s:
        s.get(Agent, agent_id).state_since = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)


def test_hangup_in_ivr_is_short_abandon(peers):
    caller = peers.peer("13900000001")
    caller.call("c1", peers.worker.uri, **{"from": "13900000001"})
    caller.state("c1", "CONFIRMED")
    time.sleep(0.5)
    caller.send(op="hangup", id="c1")
    [call] = wait_cdr(peers, "13900000001")
    assert (call.result, call.hangup_side, call.ivr_path, call.agent_id) == ("abandoned_short", "caller", "", None)


def test_hangup_in_queue_without_agents(peers):
    caller = peers.peer("13900000002")
    caller.call("c1", peers.worker.uri, dtmf="1", dtmf_after=0.3, **{"from": "13900000002"})
    caller.state("c1", "CONFIRMED")
    time.sleep(2.0)
    caller.send(op="hangup", id="c1")
    [call] = wait_cdr(peers, "13900000002")
    assert call.result == "abandoned_short" and call.skill_group == "general" and call.ivr_path == "1"
    assert call.queue_wait_ms >= 1000 and call.agent_id is None


def test_hangup_while_agent_rings_releases_agent(peers):
    agent_id, agent = peers.agent("3001", answer_delay=-1)
    caller = peers.peer("13900000003")
    caller.call("c1", peers.worker.uri, dtmf="1", dtmf_after=0.3, **{"from": "13900000003"})
    agent.incoming(1, timeout=10)
    assert agent_state(peers, agent_id) == "busy"
    caller.send(op="hangup", id="c1")
    agent.wait_for(lambda e: e.get("ev") == "ended", 10)
    [call] = wait_cdr(peers, "13900000003")
    assert call.result == "abandoned_short" and call.agent_id is None
    assert agent_state(peers, agent_id) == "ready"


def test_agent_hangs_up_while_talking(peers):
    agent_id, agent = peers.agent("3002")
    caller = peers.peer("13900000004")
    caller.call("c1", peers.worker.uri, wav=str(peers.caller_wav), dtmf="1", dtmf_after=0.3, **{"from": "13900000004"})
    inc = agent.incoming(1, timeout=10)
    confirmed(agent)
    time.sleep(1.0)
    agent.send(op="hangup", id=inc["id"])
    caller.ended("c1")
    [call] = wait_cdr(peers, "13900000004")
    assert (call.result, call.hangup_side, call.agent_id) == ("answered", "agent", agent_id)


def test_ring_no_answer_moves_to_next_longest_idle_agent(peers):
    slow_id, slow = peers.agent("3003", answer_delay=-1)
    fast_id, fast = peers.agent("3004")
    set_idle_since(peers, slow_id, 600)  # longest idle: offered first
    set_idle_since(peers, fast_id, 60)
    caller = peers.peer("13900000005")
    caller.call("c1", peers.worker.uri, dtmf="1", dtmf_after=0.3, **{"from": "13900000005"})
    slow.incoming(1, timeout=10)
    inc = fast.incoming(1, timeout=TEST_FLOW.agent_ring_timeout_s + 8)
    confirmed(fast)
    assert agent_state(peers, slow_id) == "not_ready"  # missed a call: no more offers until the agent is ready again
    caller.send(op="hangup", id="c1")
    [call] = wait_cdr(peers, "13900000005")
    assert call.agent_id == fast_id and call.result == "answered"
    assert inc["header"].startswith("w1-")


def test_repeat_caller_goes_to_previous_agent(peers):
    first_id, first = peers.agent("3005")
    other_id, other = peers.agent("3006")
    set_idle_since(peers, first_id, 10)
    set_idle_since(peers, other_id, 900)  # longer idle, but the caller talked to 3005 before
    # history: 3005 answered this caller last time
    caller = peers.peer("13900000006")
    with session_scope(peers.engine) as s:
        s.get(Agent, other_id).state = "not_ready"
    caller.call("c1", peers.worker.uri, dtmf="1", dtmf_after=0.3, **{"from": "13900000006"})
    first.incoming(1, timeout=10)
    confirmed(first)
    caller.send(op="hangup", id="c1")
    wait_cdr(peers, "13900000006")
    with session_scope(peers.engine) as s:
        s.get(Agent, other_id).state = "ready"
    set_idle_since(peers, other_id, 900)
    caller.call("c2", peers.worker.uri, dtmf="1", dtmf_after=0.3, **{"from": "13900000006"})
    first.incoming(2, timeout=10)
    first.wait_for(lambda e: len(first.find(ev="state", state="CONFIRMED")) >= 2, 10)
    caller.send(op="hangup", id="c2")
    calls = wait_cdr(peers, "13900000006", n=2)
    assert [c.agent_id for c in calls] == [first_id, first_id]
    assert not other.find(ev="incoming")


def test_queue_timeout_is_lost_with_reason(peers):
    caller = peers.peer("13900000007")
    caller.call("c1", peers.worker.uri, dtmf="1", dtmf_after=0.3, **{"from": "13900000007"})
    end = caller.ended("c1", timeout=TEST_FLOW.max_queue_wait_s + 10)
    assert end["code"] == 200  # the system hung up after the busy prompt
    [call] = wait_cdr(peers, "13900000007")
    assert (call.result, call.lost_reason, call.hangup_side) == ("lost", "queue_timeout", "system")


def test_blocked_number_hears_prompt_and_is_rejected(peers):
    with session_scope(peers.engine) as s:
        tenant = s.query(Tenant).filter_by(code="laibin").one()
        s.add(BlockedNumber(tenant_id=tenant.id, number="13900000666", reason="恶意骚扰"))
    caller = peers.peer("13900000666", record_dir=peers.root / "rx-blocked")
    caller.call("c1", peers.worker.uri, **{"from": "13900000666"})
    end = caller.ended("c1", timeout=10)
    [call] = wait_cdr(peers, "13900000666")
    assert (call.result, call.hangup_side) == ("blocked", "system")
    heard = read_wav(end["record"])
    assert np.abs(heard).max() > 1000  # the block prompt was played before the hang-up


def test_out_of_hours_plays_closed_message(peers):
    """Working hours are the tenant's (domain.tenant_settings): none at all here, read by a worker started after."""
    from domain import tenant_settings

    with session_scope(peers.engine) as s:
        tenant = s.query(Tenant).filter_by(code="laibin").one()
        before = tenant_settings.get(s, tenant.id)
        tenant_settings.save(s, tenant.id, before.model_copy(
            update={"time": before.time.model_copy(update={"working_hours": []})}))
    try:
        worker = peers.start_worker("w9", TEST_FLOW)
        caller = peers.peer("13900000009")
        caller.call("c1", worker.uri, **{"from": "13900000009"})
        caller.ended("c1", timeout=10)
        [call] = wait_cdr(peers, "13900000009")
        assert (call.result, call.hangup_side) == ("out_of_hours", "system")
    finally:
        with session_scope(peers.engine) as s:
            tenant_settings.save(s, s.query(Tenant).filter_by(code="laibin").one().id, before)


def test_worker_survives_malformed_sip(peers):
    garbage = [
        b"\x00\xff" * 300,
        b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n",
        b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\nContent-Length: 999999\r\n\r\nv=0",
        b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
        ("OPTIONS sip:12345@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1\r\n"
         "From: <sip:a@b>;tag=1\r\nTo: <sip:12345@127.0.0.1>\r\nCall-ID: " + "x" * 4000 + "\r\nCSeq: 1 OPTIONS\r\n\r\n").encode(),
        bytes(range(256)) * 20,
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(20):
            for g in garbage:
                s.sendto(g, ("127.0.0.1", peers.worker.sip_port))
    time.sleep(0.5)
    assert peers.worker.proc.poll() is None
    caller = peers.peer("13900000010")
    caller.call("c1", peers.worker.uri, **{"from": "13900000010"})
    caller.state("c1", "CONFIRMED")
    time.sleep(0.5)
    caller.send(op="hangup", id="c1")
    [call] = wait_cdr(peers, "13900000010")
    assert call.result == "abandoned_short"


def test_call_flow_error_releases_the_call_not_the_worker(peers, tmp_path):
    """A broken prompt file makes the IVR fail: that call is released as lost, the worker keeps serving."""
    import shutil as sh

    from telephony.peer import WorkerProc
    from tests.telephony.conftest import free_port, rtp_base

    data = tmp_path / "broken"
    sh.copytree(peers.root / "prompts", data / "prompts")
    (data / "prompts" / "welcome.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a wav file")
    worker = WorkerProc("wbad", free_port(), rtp_base(), db_url=peers.url, data_dir=data,
                        flow=TEST_FLOW.model_dump_json(), log_path=tmp_path / "wbad.log")
    peers.procs.append(worker)
    caller = peers.peer("13900000011")
    caller.call("c1", worker.uri, **{"from": "13900000011"})
    caller.ended("c1", timeout=10)
    [call] = wait_cdr(peers, "13900000011", recording=False)  # released before any audio: maybe no recording
    assert (call.result, call.lost_reason, call.hangup_side) == ("lost", "internal_error", "system")
    assert worker.proc.poll() is None and "call flow error" in (tmp_path / "wbad.log").read_text()
    caller.call("c2", worker.uri, **{"from": "13900000011"})  # the next call gets the same treatment, no crash
    caller.ended("c2", timeout=10)
    assert worker.proc.poll() is None
