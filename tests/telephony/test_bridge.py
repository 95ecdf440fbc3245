"""End-to-end calls through a real bridge worker with pjsua2 UAs as caller and agent softphone."""
from __future__ import annotations

import time

import pytest
import soundfile as sf

from domain.db import session_scope
from domain.models import Agent, Call, CallLeg, Recording
from tests.telephony.conftest import correlation, peak_correlation, read_wav

pytestmark = pytest.mark.slow


def wait_cdr(lab, caller: str, n: int = 1, timeout: float = 15.0, recording: bool = True) -> list[Call]:
    """Poll the DB until ``n`` ended calls from ``caller`` exist (and their recordings, when asked)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(lab.engine) as s:
            calls = s.query(Call).filter(Call.caller_number == caller, Call.ended_at.is_not(None)).order_by(Call.id).all()
            recs = {r.call_id for r in s.query(Recording)}
            if len(calls) >= n and (not recording or all(c.id in recs for c in calls)):
                for c in calls:
                    c.leg_rows = s.query(CallLeg).filter_by(call_id=c.id).all()
                    c.recording = s.query(Recording).filter_by(call_id=c.id).one_or_none()
                    s.expunge(c)
                return calls
        if time.monotonic() > deadline:
            raise TimeoutError(f"no CDR for {caller}")
        time.sleep(0.2)


def agent_state(lab, agent_id: int) -> str:
    with session_scope(lab.engine) as s:
        return s.get(Agent, agent_id).state


def test_call_is_bridged_forked_recorded_and_billed(peers):
    lab = peers
    agent_id, agent = lab.agent("1001")
    caller = lab.peer("13800000001", record_dir=lab.root / "rx-caller")
    caller.call("c1", lab.worker.uri, wav=str(lab.caller_wav), dtmf="1", dtmf_after=0.5, **{"from": "13800000001"})
    caller.state("c1", "CONFIRMED")
    agent.incoming(1, timeout=15)
    agent.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 10)
    assert agent_state(lab, agent_id) == "busy"
    time.sleep(5)
    caller.send(op="hangup", id="c1")
    c_end = caller.ended("c1")
    a_end = agent.wait_for(lambda e: e.get("ev") == "ended", 10)
    [call] = wait_cdr(lab, "13800000001")

    assert call.result == "answered" and call.hangup_side == "caller"
    assert call.ivr_path == "1" and call.skill_group == "general" and call.agent_id == agent_id
    assert call.dialled_number == "12345" and call.answered_at and call.ended_at >= call.answered_at
    assert 0 < call.queue_wait_ms < 5000
    legs = {leg.leg: leg for leg in call.leg_rows}
    assert set(legs) == {"caller", "agent"}
    # every RTP packet the UAs sent reached the bridge's fork (20 ms frames; a few frames of start-up slack)
    assert legs["caller"].frames_received >= c_end["tx_pkt"] - 5 > 150  # ≥ 3 s of audio; pacing varies under load
    assert legs["agent"].frames_received >= a_end["tx_pkt"] - 5 > 150
    assert c_end["rx_loss"] == 0 and a_end["rx_loss"] == 0
    assert agent_state(lab, agent_id) == "ready"

    # the stereo recording: agent left, caller right, each correlating with what that side played
    audio, sr = sf.read(call.recording.path, dtype="int16")
    assert sr == 8000 and audio.shape[1] == 2 and call.recording.duration_ms > 5000 and len(call.recording.sha256) == 64
    # (median over 0.5 s windows; on a loaded 2-core box jitter buffers slip a frame now and then)
    assert correlation(lab.agent_pcm, audio[:, 0]) > 0.8
    assert correlation(lab.caller_pcm, audio[:, 1]) > 0.8
    assert peak_correlation(lab.agent_pcm, audio[:, 1]) < 0.3  # no cross-talk between channels
    # and each softphone heard the other side through the bridge (after the IVR tones, for the caller)
    heard_by_agent = read_wav(a_end["record"])
    heard_by_caller = read_wav(c_end["record"])
    assert correlation(lab.caller_pcm, heard_by_agent) > 0.6 and peak_correlation(lab.caller_pcm, heard_by_agent) > 0.95
    assert peak_correlation(lab.agent_pcm, heard_by_caller) > 0.95


def test_sip_info_dtmf_routes_to_second_skill_group(peers):
    lab = peers
    general_id, general = lab.agent("1002", skills=("general",))
    ent_id, ent = lab.agent("2001", skills=("enterprise",))
    caller = lab.peer("13800000002")
    caller.call("c1", lab.worker.uri, dtmf="2", dtmf_method="info", dtmf_after=0.5, **{"from": "13800000002"})
    ent.incoming(1, timeout=15)
    ent.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 10)
    assert not general.find(ev="incoming")
    caller.send(op="hangup", id="c1")
    [call] = wait_cdr(lab, "13800000002")
    assert call.ivr_path == "2" and call.skill_group == "enterprise" and call.agent_id == ent_id
    assert call.result == "answered"
