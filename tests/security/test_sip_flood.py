"""Issue 26 item 6: a SIP flood from one source must not take the hotline down, and the proxy must not relay a
request addressed to itself round a loop.

Real Kamailio in front of two supervised bridge workers (4 conversation slots), SIPp from loopback addresses:
127.0.0.3 floods, 127.0.0.2 is a legitimate caller, 127.0.0.4 sends the looping BYE.
"""
from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from domain.db import session_scope
from domain.models import Call
from tests.security.sipedge import (bye_to_proxy_scenario, flood_scenario, invite_scenario, needs_sip_tools,
                                    proxy_log, sipp, sipp_counts, start_edge, write_scenario)
from tests.telephony.conftest import TEST_FLOW, free_port, lab  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, needs_sip_tools]
FLOOD_CALLS, FLOOD_RATE, HOLD_MS = 200, 20, 20_000  # 200 INVITEs in 10 s, each answered call held 20 s


@pytest.fixture(scope="module")
def edge(lab):  # noqa: F811
    # the IVR waits 30 s for a digit, so every answered flood call keeps its bridge slot
    sup = start_edge(lab, "flood", TEST_FLOW.model_copy(update={"ivr_timeout_s": 30.0}), workers=2)
    yield sup
    sup.stop()


def test_a_flood_from_one_source_leaves_the_service_to_other_callers(edge, lab, tmp_path):  # noqa: F811
    proxy = f"127.0.0.1:{edge.proxy_port}"
    flood_xml = write_scenario(tmp_path / "flood.xml", flood_scenario(HOLD_MS))
    flood = subprocess.Popen(
        ["sipp", "-sf", str(flood_xml), proxy, "-i", "127.0.0.3", "-p", str(free_port()), "-mp", str(free_port()),
         "-r", str(FLOOD_RATE), "-m", str(FLOOD_CALLS), "-l", str(FLOOD_CALLS), "-recv_timeout", "8000",
         "-timeout", "45s", "-nostdin", "-nd"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # 80 INVITEs sent; before the fix every bridge slot was taken by now
        t0 = time.monotonic()
        legit = sipp(write_scenario(tmp_path / "legit.xml", invite_scenario("12345", expect=200, hold_ms=1000)),
                     proxy, ip="127.0.0.2", args=["-m", "1"], timeout=20)
        legit_s = time.monotonic() - t0 - 1.0
        out, err = flood.communicate(timeout=90)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    counts = sipp_counts(out)
    log = proxy_log(edge)
    with session_scope(lab.engine) as s:  # calls the bridge workers took (a CDR row each)
        flood_answered = s.query(Call).filter(Call.caller_number.like("1390000%")).count()
    print(f"legit call answered in {legit_s:.2f} s; flood: {counts}, {flood_answered} reached a bridge worker")
    assert legit.returncode == 0, legit.stdout[-2000:] + log[-3000:]
    assert legit_s < 5.0
    # the flooding source held at most its per-source share of calls, then was ignored
    assert counts.get("Outgoing calls created", 0) >= 100, out[-2000:]
    assert flood_answered <= 2
    assert "SIP flood from 127.0.0.3" in log
    assert "127.0.0.2" not in "".join(line for line in log.splitlines() if "SIP flood from" in line)


def test_a_bye_addressed_to_the_proxy_is_answered_once_not_relayed(edge, tmp_path):
    tag = f"byeloop-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    run = sipp(write_scenario(tmp_path / "bye.xml", bye_to_proxy_scenario(404)), f"127.0.0.1:{edge.proxy_port}",
               ip="127.0.0.4", args=["-m", "1", "-cid_str", f"{tag}-%u-%p@%s"], timeout=15)
    elapsed = time.monotonic() - t0
    # before: relayed to itself until Max-Forwards ran out, then 483 Too Many Hops
    assert run.returncode == 0, run.stdout[-2000:]
    time.sleep(0.5)
    seen = [line for line in proxy_log(edge).splitlines() if tag in line]
    assert len(seen) == 1 and "404" in seen[0], seen
    print(f"BYE to the proxy answered 404 in {elapsed:.2f} s (SIPp run), proxy handled it {len(seen)} time(s)")
