"""Issue 26 item 4: agent extensions need SIP digest credentials at the Kamailio edge.

Real Kamailio (deploy/kamailio/kamailio.cfg, started by the supervisor as `hotline telephony up --kamailio` does),
real bridge workers, SIPp and pjsua2 user agents over loopback.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from telephony import sipauth
from tests.security.sipedge import (add_agent, needs_sip_tools, proxy_log, register_scenario, set_state, sipp,
                                    invite_scenario, start_edge, write_scenario)
from tests.telephony.conftest import TEST_FLOW, free_port, lab, peers  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, needs_sip_tools]
DEMO_LOGIN_PASSWORD = "Hotline#2026"  # README: the published demo password


@pytest.fixture(scope="module")
def edge(lab):  # noqa: F811
    sup = start_edge(lab, "auth", TEST_FLOW.model_copy(update={"agent_ring_timeout_s": 4.0, "max_queue_wait_s": 20.0}))
    yield sup
    sup.stop()


def test_agent_sip_passwords_are_generated_per_agent_and_stored_as_ha1_only(edge, lab):  # noqa: F811
    pw15, pw16 = add_agent(lab, edge, "15"), add_agent(lab, edge, "16")
    assert pw15 != pw16 and len(pw15) >= 20 and DEMO_LOGIN_PASSWORD not in (pw15, pw16)
    assert sipauth.agent_password(edge.data_dir, "15") == pw15  # stable: the softphone keeps working
    secret = sipauth.secret_path(edge.data_dir)
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    table = (sipauth.db_dir(edge.data_dir) / "subscriber").read_text()
    assert sipauth.ha1("15", "127.0.0.1", pw15) in table
    assert pw15 not in table and pw16 not in table
    assert stat.S_IMODE(os.stat(sipauth.db_dir(edge.data_dir) / "subscriber").st_mode) == 0o600


def test_the_agent_reads_its_sip_password_from_the_cli(edge, lab):  # noqa: F811
    pw15 = add_agent(lab, edge, "15")
    env = {**os.environ, "HOTLINE_DATA_DIR": str(edge.data_dir), "HOTLINE_DATABASE_URL": lab.url}
    cli = [str(Path(sys.executable).parent / "hotline"), "telephony", "sip-password"]
    out = subprocess.run([*cli, "15"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"username": "15", "password": pw15, "realm": "127.0.0.1",
                                      "registrar": "sip:127.0.0.1:5060", "uri": "sip:15@127.0.0.1"}
    unknown = subprocess.run([*cli, "99999"], env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0 and "99999" in unknown.stderr + unknown.stdout and pw15 not in unknown.stdout


def test_register_needs_the_extensions_own_valid_credentials(edge, lab, tmp_path):  # noqa: F811
    pw25 = add_agent(lab, edge, "25")
    add_agent(lab, edge, "26")
    proxy = f"127.0.0.1:{edge.proxy_port}"

    def register(name: str, **kw) -> int:
        run = sipp(write_scenario(tmp_path / f"{name}.xml", register_scenario("25", **kw)), proxy, ip="127.0.0.6",
                   args=["-m", "1"], timeout=15)
        return run.returncode

    # no credentials: challenged, not registered (before: 200 OK for anyone)
    assert register("none", final=401) == 0
    # a wrong password: challenged again, never 200
    assert register("wrong", auth=("25", "not-the-password-25"), final=401) == 0
    # agent 25's valid credentials used to register extension 26: forbidden
    assert register("other", to_user="26", auth=("25", pw25), final=403) == 0
    # its own extension with its own credentials: 200
    assert register("right", auth=("25", pw25), final=200) == 0
    # an INVITE to an agent extension from anything but a bridge worker must authenticate (407)
    run = sipp(write_scenario(tmp_path / "invite.xml", invite_scenario("25", expect=407)), proxy, ip="127.0.0.6",
               args=["-m", "1"], timeout=15)
    assert run.returncode == 0, run.stdout[-1500:]


@pytest.mark.skipif(not shutil.which("baresip"), reason="baresip not installed")
def test_a_baresip_softphone_registers_only_with_its_own_generated_credentials(edge, lab, tmp_path):  # noqa: F811
    pw35 = add_agent(lab, edge, "35")
    add_agent(lab, edge, "36")

    def baresip(account: str) -> str:
        conf = tmp_path / f"baresip-{len(list(tmp_path.iterdir()))}"
        conf.mkdir()
        (conf / "config").write_text(
            f"sip_listen 127.0.0.7:{free_port()}\nsip_transports udp\naudio_player aufile,/dev/null\n"
            "audio_source ausine,440\nmodule_path /usr/lib/baresip/modules\n"
            + "".join(f"module {m}.so\n" for m in ("g711", "ausine", "aufile", "account", "menu")))
        (conf / "accounts").write_text(f'{account};outbound="sip:127.0.0.1:{edge.proxy_port}";regint=300\n')
        run = subprocess.run(["baresip", "-f", str(conf), "-t", "3"], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=30)
        return run.stdout + run.stderr

    assert "401 Unauthorized" in baresip("<sip:35@127.0.0.1>;auth_pass=guessed-password")
    assert "403 Forbidden" in baresip(f"<sip:36@127.0.0.1>;auth_user=35;auth_pass={pw35}")
    out = baresip(f"<sip:35@127.0.0.1>;auth_pass={pw35}")
    assert "35@127.0.0.1: {0/UDP/v4} 200 OK" in out, out


def test_unregistered_attacker_never_receives_a_call_for_extension_15(edge, peers):  # noqa: F811
    lab, proxy = peers, f"127.0.0.1:{edge.proxy_port}"
    pw15 = add_agent(lab, edge, "15", state="ready")
    attacker = lab.peer("15", register=proxy, answer_wav=str(lab.agent_wav))  # no credentials
    assert attacker.wait_for(lambda e: e.get("ev") == "registered", 10)["code"] in (401, 403)

    caller = lab.peer("13700000015")
    caller.call("c1", f"sip:12345@{proxy}", dtmf="1", dtmf_after=0.3, **{"from": "13700000015"})
    caller.state("c1", "CONFIRMED", timeout=15)
    time.sleep(8)  # the queue offers the call to agent 15 (ring timeout 4 s) at least once
    assert attacker.find(ev="incoming") == []
    # the bridge worker did offer the call to sip:15@proxy, and the proxy had no registration to deliver it to
    worker_ports = {str(w.sip_port) for w in edge.specs}
    refused = [line for line in proxy_log(edge).splitlines() if "extension 15 is not registered: INVITE" in line]
    assert refused and all(line.rsplit(":", 1)[1].split()[0] in worker_ports for line in refused), refused
    caller.send(op="hangup", id="c1")
    caller.ended("c1")

    # the real agent's softphone, with its credentials, registers and gets the next call
    agent = lab.peer("15", register=proxy, answer_wav=str(lab.agent_wav), sip_passwords={"15": pw15})
    assert agent.wait_for(lambda e: e.get("ev") == "registered" and e.get("code") == 200, 10)
    set_state(lab, "15", "ready")
    caller.call("c2", f"sip:12345@{proxy}", dtmf="1", dtmf_after=0.3, **{"from": "13700000015"})
    agent.incoming(1, timeout=20)
    agent.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 10)
    assert attacker.find(ev="incoming") == []
    caller.send(op="hangup", id="c2")
    caller.ended("c2")
