"""Agent and supervisor operations on live calls, through the worker's control port (conference bridge, real SIP)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from domain.db import session_scope
from domain.models import Call
from telephony.control import control_token, worker_op, worker_status
from tests.telephony.conftest import (TEST_FLOW, free_port, peak_correlation, read_wav, rtp_base, speechlike,
                                     write_wav)
from tests.telephony.test_bridge import wait_cdr

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ops(lab):
    """A worker with a control port and an 'external network' UA behind the gateway address."""
    ext_port = free_port()
    lab.third_pcm = speechlike(3)
    third = write_wav(lab.audio / "third.wav", lab.third_pcm)
    from telephony.peer import Peer

    ext = Peer(ext_port, rtp_base(), user="ext", answer_wav=str(third), record_dir=lab.root / "rx-ext",
               log_path=lab.root / "ua-ext.log")
    lab.procs.append(ext)
    lab.ext, lab.third_wav = ext, third
    lab.ops_worker = lab.start_worker("wops", TEST_FLOW, control=True, gateway=f"127.0.0.1:{ext_port}")
    lab.token = control_token(lab.root)
    lab.tenant_id = worker_status(lab.ops_worker.control_port, lab.token)["result"]["tenant_id"]
    return lab


def op(lab, name, **args):
    return worker_op(lab.ops_worker.control_port, lab.token, name, tenant_id=lab.tenant_id, **args)


def start_talk(lab, number: str, agent_ua, n: int = 1) -> str:
    caller = lab.peer(number, record_dir=lab.root / f"rx-{number}")
    caller.call("c1", lab.ops_worker.uri, wav=str(lab.caller_wav), dtmf="1", dtmf_after=0.3, **{"from": number})
    agent_ua.incoming(n, timeout=15)
    agent_ua.wait_for(lambda e: len(agent_ua.find(ev="state", state="CONFIRMED")) >= n, 10)
    time.sleep(0.3)
    [conv] = [c for c in worker_status(lab.ops_worker.control_port, lab.token)["result"]["conversations"] if c["caller"] == number]
    assert conv["state"] == "talking"
    lab.current_caller = caller
    return conv["call_uuid"]


def tone_ratio(pcm: np.ndarray, freq: float = 440.0) -> float:
    """Largest share of spectral energy at ``freq`` in any 0.5 s window (hold music is a 440 Hz tone here)."""
    best = 0.0
    for i in range(0, len(pcm) - 4000, 2000):
        spec = np.abs(np.fft.rfft(pcm[i : i + 4000].astype(np.float64))) ** 2
        k = int(freq * 4000 / 8000)
        best = max(best, spec[k - 3 : k + 4].sum() / (spec.sum() + 1e-9))
    return best


def test_hold_retrieve_and_blind_transfer_to_agent(ops):
    lab = ops
    lab.set_states("signed_out")
    a_id, a_ua = lab.agent("6001")
    call_uuid = start_talk(lab, "13600000001", a_ua)
    assert op(lab, "hold", call_uuid=call_uuid)["result"]["state"] == "held"
    time.sleep(1.5)
    assert op(lab, "retrieve", call_uuid=call_uuid)["result"]["state"] == "talking"
    b_id, b_ua = lab.agent("6002")
    assert op(lab, "transfer", call_uuid=call_uuid, target_kind="agent", target="6002")["ok"]
    b_ua.incoming(1, timeout=20)
    b_ua.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 10)
    a_ua.wait_for(lambda e: e.get("ev") == "ended", 5)  # the first agent left
    time.sleep(2)
    lab.current_caller.send(op="hangup", id="c1")
    end = lab.current_caller.ended("c1")
    [call] = wait_cdr(lab, "13600000001")
    assert call.transfers == 1 and call.agent_id == a_id and call.result == "answered"
    assert 1300 <= call.hold_ms <= 6000  # 1.5 s on hold, plus control-path latency on a loaded box
    assert sorted(leg.leg for leg in call.leg_rows) == ["agent", "agent", "caller"]
    heard = read_wav(end["record"])
    assert tone_ratio(heard) > 0.5  # the caller heard hold music
    heard_b = read_wav(b_ua.wait_for(lambda e: e.get("ev") == "ended", 5)["record"])
    assert peak_correlation(lab.caller_pcm, heard_b) > 0.7  # the new agent talks to the caller


def test_attended_transfer_to_external_number(ops):
    lab = ops
    lab.set_states("signed_out")
    a_id, a_ua = lab.agent("6003")
    call_uuid = start_talk(lab, "13600000002", a_ua)
    n_ext = len(lab.ext.find(ev="incoming"))
    assert op(lab, "consult", call_uuid=call_uuid, target_kind="external", target="96110")["ok"]
    lab.ext.incoming(n_ext + 1, timeout=20)
    time.sleep(1.0)
    assert op(lab, "complete_transfer", call_uuid=call_uuid)["result"]["state"] == "talking"
    a_ua.wait_for(lambda e: e.get("ev") == "ended", 5)
    time.sleep(1.5)
    lab.current_caller.send(op="hangup", id="c1")
    end = lab.current_caller.ended("c1")
    [call] = wait_cdr(lab, "13600000002")
    assert call.transfers == 1 and call.agent_id == a_id
    heard = read_wav(end["record"])
    assert peak_correlation(lab.third_pcm, heard) > 0.8  # after the transfer the caller talks to the external party


def test_supervisor_monitor_whisper_barge_and_conference(ops):
    lab = ops
    lab.set_states("signed_out")
    a_id, a_ua = lab.agent("6004")
    call_uuid = start_talk(lab, "13600000003", a_ua)
    sup = lab.peer("9001", answer_wav=str(lab.third_wav), record_dir=lab.root / "rx-sup")
    assert op(lab, "add_party", call_uuid=call_uuid, mode="monitor", target_kind="uri", target=sup.uri)["ok"]
    sup.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 10)
    time.sleep(2.5)
    assert op(lab, "set_party_mode", call_uuid=call_uuid, mode="whisper")["ok"]
    time.sleep(2.5)
    caller_mark = time.monotonic()
    assert op(lab, "set_party_mode", call_uuid=call_uuid, mode="barge")["ok"]
    time.sleep(2.5)
    assert op(lab, "drop_party", call_uuid=call_uuid)["ok"]
    sup_end = sup.wait_for(lambda e: e.get("ev") == "ended", 5)
    # three-way conference with an external number
    n_ext = len(lab.ext.find(ev="incoming"))
    assert op(lab, "add_party", call_uuid=call_uuid, mode="conference", target_kind="external", target="96120")["ok"]
    inc = lab.ext.incoming(n_ext + 1, timeout=20)
    time.sleep(2.5)
    assert op(lab, "drop_party", call_uuid=call_uuid)["ok"]
    ext_heard = read_wav(lab.ext.wait_for(lambda e: e.get("ev") == "ended" and e.get("id") == inc["id"], 5)["record"])
    assert peak_correlation(lab.caller_pcm, ext_heard) > 0.35 and peak_correlation(lab.agent_pcm, ext_heard) > 0.35
    lab.current_caller.send(op="hangup", id="c1")
    caller_end = lab.current_caller.ended("c1")
    agent_end = a_ua.wait_for(lambda e: e.get("ev") == "ended", 5)
    sup_heard = read_wav(sup_end["record"])
    agent_heard = read_wav(agent_end["record"])
    caller_heard = read_wav(caller_end["record"])
    # a mix of two equal voices correlates ~0.7 with each; 0.35 leaves room for codec and jitter-buffer noise
    assert peak_correlation(lab.caller_pcm, sup_heard) > 0.35 and peak_correlation(lab.agent_pcm, sup_heard) > 0.35
    assert peak_correlation(lab.third_pcm, agent_heard) > 0.35  # whisper and barge reach the agent
    # the caller heard the supervisor only after the barge: nothing before, something after
    t_barge = int((caller_mark - (time.monotonic() - caller_end["duration_s"])) * 8000)
    assert peak_correlation(lab.third_pcm, caller_heard[: max(t_barge - 4000, 8000)]) < 0.3
    assert peak_correlation(lab.third_pcm, caller_heard[t_barge:]) > 0.35
    [call] = wait_cdr(lab, "13600000003")
    assert call.result == "answered" and "party" in {leg.leg for leg in call.leg_rows}


def test_outbound_callback_shows_service_number(ops):
    lab = ops
    lab.set_states("signed_out")
    d_id, d_ua = lab.agent("6005", state="not_ready")
    n_ext = len(lab.ext.find(ev="incoming"))
    res = op(lab, "originate", work_no="6005", number="13512345678")
    assert res["ok"], res
    d_ua.incoming(1, timeout=20)
    inc = lab.ext.incoming(n_ext + 1, timeout=20)
    assert "12345@" in inc["remote"]  # caller ID shown to the citizen
    time.sleep(1.5)
    op(lab, "hangup", call_uuid=res["result"]["call_uuid"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_scope(lab.engine) as s:
            call = s.query(Call).filter_by(call_uuid=res["result"]["call_uuid"]).one()
            if call.ended_at:
                break
        time.sleep(0.2)
    assert (call.direction, call.result, call.caller_number, call.agent_id) == ("out", "answered", "13512345678", d_id)
