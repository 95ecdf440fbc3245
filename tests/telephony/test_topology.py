"""Kamailio dispatcher in front of supervised bridge workers: registration, routing, failover."""
from __future__ import annotations

import shutil
import time

import pytest

from domain.db import session_scope
from domain.models import Agent, Call, Tenant
from telephony import sipauth
from telephony.supervisor import Supervisor, read_registry
from tests.telephony.conftest import TEST_FLOW, free_port, rtp_base
from tests.telephony.test_bridge import wait_cdr

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("kamailio"), reason="kamailio not installed")]


@pytest.fixture
def cluster(peers):
    proxy = free_port()
    sup = Supervisor(2, db_url=peers.url, data_dir=peers.root / "cluster", sip_port=free_port() + 100,
                     rtp_port=rtp_base(), control_port=free_port() + 200, flow=TEST_FLOW.model_dump_json(),
                     proxy_port=proxy, prefix="k", trunks="127.0.0.1")  # the caller UA plays the carrier trunk
    try:
        sup.start()
        time.sleep(2.5)  # first OPTIONS probes mark both workers active
        yield sup
    finally:
        sup.stop()


def registered_agent(lab, cluster, work_no: str):
    """An agent whose softphone registers at Kamailio with its SIP digest credentials."""
    proxy = cluster.proxy_port
    with session_scope(lab.engine) as s:  # the agent exists before its softphone registers
        if s.query(Agent).filter_by(work_no=work_no).one_or_none() is None:
            s.add(Agent(tenant_id=s.query(Tenant).filter_by(code="laibin").one().id, work_no=work_no,
                        name=f"坐席{work_no}"))
    cluster.sync_sip_credentials()
    agent_id, ua = lab.agent(work_no, register=f"127.0.0.1:{proxy}",
                             sip_passwords={work_no: sipauth.agent_password(cluster.data_dir, work_no)})
    ua.wait_for(lambda e: e.get("ev") == "registered" and e.get("code") == 200, 10)
    with session_scope(lab.engine) as s:
        s.get(Agent, agent_id).sip_uri = f"sip:{work_no}@127.0.0.1:{proxy}"
    return agent_id, ua


def log_tails(cluster, caller, lines: int = 25) -> str:
    """What Kamailio, the workers and the caller said: the evidence a failed routing test needs."""
    parts = [f"caller events: {caller.events[-8:]}"]
    for path in sorted(cluster.run_dir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def wait_confirmed(agents, cluster, caller, timeout: float = 30.0):
    """The agent UA (of ``agents``) that got a call and answered it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ua in agents:
            if ua.find(ev="state", state="CONFIRMED"):
                return ua
        time.sleep(0.1)
    raise TimeoutError("no agent answered\n" + log_tails(cluster, caller))


def live_worker(lab, number: str) -> str:
    with session_scope(lab.engine) as s:
        return s.query(Call).filter_by(caller_number=number).order_by(Call.id.desc()).first().call_uuid.split("-")[0]


def test_calls_through_kamailio_survive_a_dead_worker(peers, cluster):
    lab, proxy = peers, cluster.proxy_port
    assert [w.name for w in read_registry(cluster.data_dir)] == ["k1", "k2"]
    a1, ua1 = registered_agent(lab, cluster, "5001")
    a2, ua2 = registered_agent(lab, cluster, "5002")
    a3, ua3 = registered_agent(lab, cluster, "5003")
    caller = lab.peer("13700000001")

    caller.call("c1", f"sip:12345@127.0.0.1:{proxy}", wav=str(lab.caller_wav), dtmf="1", dtmf_after=0.3,
                **{"from": "13700000001"})
    busy = wait_confirmed([ua1, ua2, ua3], cluster, caller)
    first = live_worker(lab, "13700000001")
    other = "k2" if first == "k1" else "k1"
    # a second conversation goes round-robin to the other worker
    caller.call("c2", f"sip:12345@127.0.0.1:{proxy}", dtmf="1", dtmf_after=0.3, **{"from": "13700000002"})
    wait_confirmed([ua for ua in (ua1, ua2, ua3) if ua is not busy], cluster, caller)
    assert live_worker(lab, "13700000002") == other

    cluster.kill(other)  # the worker carrying c2 dies
    time.sleep(3)
    # c1 on the surviving worker is still up and exchanging audio
    assert not caller.find(ev="ended", id="c1")
    # a new call avoids the dead worker
    caller.call("c3", f"sip:12345@127.0.0.1:{proxy}", **{"from": "13700000003"})
    caller.state("c3", "CONFIRMED", timeout=15)
    assert live_worker(lab, "13700000003") == first
    caller.send(op="hangup", id="c3")

    # the supervisor restarts the dead worker and closes its orphaned call in the CDR
    assert cluster.check() == [other]
    with session_scope(lab.engine) as s:
        c2 = s.query(Call).filter_by(caller_number="13700000002").one()
        assert c2.ended_at is not None and c2.hangup_side == "system" and c2.result == "answered"
    caller.send(op="hangup", id="c1")
    [c1] = wait_cdr(lab, "13700000001")
    assert c1.result == "answered" and c1.hangup_side == "caller"
