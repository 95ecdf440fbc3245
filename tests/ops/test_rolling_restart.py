"""Upgrades without dropped calls: a rolling restart of the supervised bridge workers behind Kamailio, asked for
through the supervisor's request files (what `hotline telephony restart` does), while real SIP calls run."""
from __future__ import annotations

import shutil
import threading
import time

import pytest

from domain.db import session_scope
from domain.settings import Settings
from domain.models import Call, Recording
from serving.health import readiness
from telephony.supervisor import Supervisor, read_registry, request
from tests.telephony.conftest import TEST_FLOW, free_port, lab, peers, rtp_base  # noqa: F401 - fixtures
from tests.telephony.test_topology import live_worker, registered_agent

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("kamailio"), reason="kamailio not installed")]

CALL_S = 6.0  # each call lasts this long after it is answered, then the caller hangs up


@pytest.fixture
def cluster(peers):  # noqa: F811
    sup = Supervisor(3, db_url=peers.url, data_dir=peers.root / "rolling", sip_port=free_port() + 100,
                     rtp_port=rtp_base(), control_port=free_port() + 200, flow=TEST_FLOW.model_dump_json(),
                     proxy_port=free_port(), prefix="r", trunks="127.0.0.1")
    runner = None
    try:
        sup.start()
        runner = threading.Thread(target=sup.run_forever, kwargs={"interval": 0.5}, daemon=True)
        runner.start()
        time.sleep(2.5)  # first OPTIONS probes mark the workers active
        yield sup
    finally:
        sup.stop()
        if runner is not None:
            runner.join(60)


def place(lab, caller, cluster, key: str, number: str, hangups: list):  # noqa: F811
    """A call to the service number that picks the general queue; the caller hangs up CALL_S after answer."""
    caller.call(key, f"sip:12345@127.0.0.1:{cluster.proxy_port}", wav=str(lab.caller_wav), dtmf="1", dtmf_after=0.3,
                **{"from": number})
    caller.state(key, "CONFIRMED", timeout=15)
    timer = threading.Timer(CALL_S + 2.0, lambda: caller.send(op="hangup", id=key))
    timer.start()
    hangups.append(timer)


def test_rolling_restart_during_live_calls_drops_none(peers, cluster):  # noqa: F811
    lab = peers
    agents = [registered_agent(lab, cluster, f"61{i}")[1] for i in range(4)]
    caller = lab.peer("13600000000")
    before = {w.name: w.pid for w in read_registry(cluster.data_dir)}
    hangups: list[threading.Timer] = []
    run = f"136{int(time.time()) % 100000:05d}"  # distinct numbers on a rerun (the lab database is per module)
    numbers = [f"{run}00{i}" for i in range(1, 4)]
    for i, number in enumerate(numbers):
        place(lab, caller, cluster, f"c{i}", number, hangups)
    assert len({live_worker(lab, n) for n in numbers}) >= 2  # spread over the workers

    answer: dict = {}
    restart = threading.Thread(target=lambda: answer.update(request(cluster.data_dir, "restart", 300)))
    restart.start()
    time.sleep(1.5)  # the first worker is draining: a new call goes to another one and is answered
    place(lab, caller, cluster, "c9", f"{run}009", hangups)
    numbers.append(f"{run}009")
    restart.join(300)
    for t in hangups:
        t.join()

    assert answer.get("ok"), answer
    after = read_registry(cluster.data_dir)
    assert [w.state for w in after] == ["active"] * 3
    assert all(w.pid != before[w.name] for w in after)  # every worker was replaced
    assert sum(w["calls_finished"] for w in answer["workers"]) >= 1  # it waited for calls, not for an idle pool
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with session_scope(lab.engine) as s:
            calls = s.query(Call).filter(Call.caller_number.in_(numbers)).all()
            recordings = {r.call_id: r for r in s.query(Recording)}
            if len(calls) == 4 and all(c.ended_at and c.id in recordings for c in calls):
                break
        time.sleep(0.5)
    # no call was dropped: each ended by the caller's hang-up after its full length, recorded to the end
    assert sorted((c.caller_number, c.result, c.hangup_side) for c in calls) == \
        [(n, "answered", "caller") for n in sorted(numbers)], [(c.caller_number, c.lost_reason) for c in calls]
    for c in calls:
        assert recordings[c.id].duration_ms >= CALL_S * 1000
    for ua in agents:
        assert len([e for e in ua.events if e.get("ev") == "ended"]) <= 1

    # the restarted workers take calls, and readiness sees Kamailio and every worker up
    place(lab, caller, cluster, "c10", f"{run}010", hangups)
    checks = readiness(Settings(data_dir=cluster.data_dir), lab.engine)
    assert checks["kamailio"] == {"ok": True} and checks["bridge_workers"] == {"ok": True, "down": []}
    hangups[-1].join()


def test_drain_stops_new_calls_to_a_worker_and_resume_brings_it_back(peers, cluster):  # noqa: F811
    lab = peers
    registered_agent(lab, cluster, "6201")
    registered_agent(lab, cluster, "6202")
    caller = lab.peer("13500000000")
    run = f"135{int(time.time()) % 100000:05d}"
    hangups: list[threading.Timer] = []
    assert request(cluster.data_dir, "drain", 60, worker="r2", timeout=30)["ok"]
    assert [w.state for w in read_registry(cluster.data_dir)] == ["active", "drained", "active"]
    checks = readiness(Settings(data_dir=cluster.data_dir), lab.engine)
    assert checks["bridge_workers"]["ok"] and checks["bridge_workers"]["down"] == []  # drained is not down
    time.sleep(3)  # the supervisor does not bring a drained worker back
    assert cluster.procs["r2"].proc.poll() is not None
    for i in range(3):  # round robin over the two others only
        place(lab, caller, cluster, f"d{i}", f"{run}00{i}", hangups)
        assert live_worker(lab, f"{run}00{i}") in ("r1", "r3")
        hangups[-1].join()
    assert request(cluster.data_dir, "resume", 120, worker="r2")["ok"]
    assert [w.state for w in read_registry(cluster.data_dir)] == ["active"] * 3
    bad = request(cluster.data_dir, "drain", 30, worker="r9")
    assert bad == {"ok": False, "error": "工作进程 r9 不存在"}
