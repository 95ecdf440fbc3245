"""Kamailio edge fixtures for the SIP security tests: supervised bridge workers behind the real proxy, SIPp runs
from chosen loopback addresses (127.0.0.x), and the proxy's own log as evidence."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from domain.db import session_scope
from domain.models import Agent, Tenant
from telephony import sipauth
from telephony.supervisor import Supervisor
from tests.telephony.conftest import free_port, rtp_base

needs_sip_tools = pytest.mark.skipif(not (shutil.which("kamailio") and shutil.which("sipp")),
                                     reason="kamailio and sipp (apt kamailio, sip-tester) not installed")


def start_edge(lab, name: str, flow, workers: int = 2, trunks: str = "") -> Supervisor:
    sup = Supervisor(workers, db_url=lab.url, data_dir=lab.root / name, sip_port=free_port() + 100,
                     rtp_port=rtp_base(), control_port=free_port() + 200, flow=flow.model_dump_json(),
                     proxy_port=free_port(), prefix=name[:2], trunks=trunks)
    try:
        sup.start()
    except Exception:
        sup.stop()
        raise
    time.sleep(2.5)  # the first OPTIONS probes mark the workers active
    return sup


def add_agent(lab, sup: Supervisor, work_no: str, state: str = "signed_out") -> str:
    """An agent row reached through the proxy (sip:<work_no>@127.0.0.1:<proxy>); returns its SIP password."""
    with session_scope(lab.engine) as s:
        tenant_id = s.query(Tenant).filter_by(code="laibin").one().id
        row = s.query(Agent).filter_by(work_no=work_no).one_or_none()
        if row is None:
            row = Agent(tenant_id=tenant_id, work_no=work_no, name=f"坐席{work_no}", skills=["general"])
            s.add(row)
        row.sip_uri, row.state = f"sip:{work_no}@127.0.0.1:{sup.proxy_port}", state
    sup.sync_sip_credentials()  # what the supervisor's loop does every second
    return sipauth.agent_password(sup.data_dir, work_no)


def set_state(lab, work_no: str, state: str) -> None:
    with session_scope(lab.engine) as s:
        s.query(Agent).filter_by(work_no=work_no).one().state = state


def proxy_log(sup: Supervisor) -> str:
    return (sup.run_dir / "kamailio.log").read_text(errors="replace")


def sipp(scenario: Path, target: str, *, ip: str, args: list[str] = (), timeout: float = 60) -> subprocess.CompletedProcess:
    """One SIPp run bound to loopback address ``ip``; bounded by its own -timeout and by ``timeout``."""
    argv = ["sipp", "-sf", str(scenario), target, "-i", ip, "-p", str(free_port()), "-mp", str(free_port()),
            "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", *args]
    return subprocess.run(argv, cwd=scenario.parent, capture_output=True, text=True, timeout=timeout + 30)


def write_scenario(path: Path, xml: str) -> Path:
    path.write_text('<?xml version="1.0" encoding="ISO-8859-1" ?>\n' + xml.strip() + "\n")
    return path


def register_scenario(user: str, *, to_user: str | None = None, auth: tuple[str, str] | None = None,
                      final: int = 200) -> str:
    """REGISTER ``to_user`` (default ``user``) from ``user``; without ``auth`` the answer must be ``final``;
    with it, a 401 challenge, then the credentials, then ``final``."""
    to_user = to_user or user
    head = f"""
      From: <sip:{user}@127.0.0.1>;tag=[pid]SIPpTag0[call_number]
      To: <sip:{to_user}@127.0.0.1>
      Call-ID: [call_id]
      Contact: <sip:{to_user}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 300
      User-Agent: hotline-security-test"""
    first = f"""
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]{head}
      CSeq: 1 REGISTER
      Content-Length: 0
  ]]></send>"""
    if auth is None:
        return f'<scenario name="register">{first}\n  <recv response="{final}"/>\n</scenario>'
    return f"""<scenario name="register-auth">{first}
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]{head}
      CSeq: 2 REGISTER
      [authentication username={auth[0]} password={auth[1]}]
      Content-Length: 0
  ]]></send>
  <recv response="{final}"/>
</scenario>"""


SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000"""


def invite_block(to_user: str, caller: str, tag: str, contact: str) -> str:
    """INVITE ``to_user`` from ``caller`` with the SDP, and the provisional answers that may come."""
    return f"""  <send retrans="500"><![CDATA[
      INVITE sip:{to_user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]{tag}[call_number]
      To: <sip:{to_user}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{contact}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>"""


def ack_refusal(to_user: str) -> str:
    """The ACK of a final refusal (hop by hop, to the request URI)."""
    return f"""  <send><![CDATA[
      ACK sip:{to_user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>"""


def ack_hold_bye(hold_ms: int) -> str:
    """After a 200 to the INVITE: ACK it, hold the call ``hold_ms``, then send BYE."""
    return f"""  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500"><![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>"""


def invite_scenario(to_user: str, *, expect: int = 200, hold_ms: int = 2000) -> str:
    """INVITE ``to_user``; the final answer must be ``expect`` (a 2xx is held ``hold_ms`` then hung up)."""
    invite = "\n" + invite_block(to_user, "13500000000", "SIPpTag1", "13500000000")
    if expect >= 300:
        return f"""<scenario name="invite-refused">{invite}
  <recv response="{expect}"/>
{ack_refusal(to_user)}
</scenario>"""
    return f"""<scenario name="invite-answered">{invite}
  <recv response="200" rrs="true"/>
{ack_hold_bye(hold_ms)}
  <recv response="200"/>
</scenario>"""


def flood_scenario(hold_ms: int) -> str:
    """A flooding caller: INVITE the service number; an answered call is held ``hold_ms``; a refusal is ACKed."""
    return f"""<scenario name="flood">
{invite_block("12345", "1390000[call_number]", "SIPpTag2", "flood")}
  <recv response="486" optional="true" next="refused"/>
  <recv response="503" optional="true" next="refused"/>
  <recv response="200" rrs="true"/>
{ack_hold_bye(hold_ms)}
  <recv response="200" next="done"/>
  <label id="refused"/>
{ack_refusal("12345")}
  <label id="done"/>
</scenario>"""


def bye_to_proxy_scenario(expect: int) -> str:
    """An in-dialog BYE whose Request-URI is the proxy itself, with no Route (the loop of issue 26).
    Its Call-ID is SIPp's (``-cid_str`` picks it)."""
    return f"""<scenario name="bye-to-proxy">
  <send retrans="500"><![CDATA[
      BYE sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:attacker@[local_ip]:[local_port]>;tag=from-[pid]
      To: <sip:12345@[remote_ip]:[remote_port]>;tag=to-[pid]
      Call-ID: [call_id]
      CSeq: 7 BYE
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <recv response="{expect}"/>
</scenario>"""


def sipp_counts(stdout: str) -> dict[str, int]:
    """SIPp's final counters (``Successful call``, ``Failed call``, ``Outgoing calls created``): the cumulative
    column of its last statistics screen."""
    counts = {}
    for line in stdout.splitlines():
        for key in ("Successful call", "Failed call", "Outgoing calls created"):
            if line.strip().startswith(key):
                cells = [c.strip() for c in line.split("|")]
                counts[key] = int(cells[-1] or cells[-2])
    return counts
