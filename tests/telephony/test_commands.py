"""`hotline call` and `hotline eval live` end to end (real worker processes, SIP and RTP on loopback)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.telephony.conftest import free_port
from tests.telephony.test_bridge import wait_cdr

pytestmark = pytest.mark.slow


def test_hotline_call_places_a_real_call(peers):
    from serving.cli import app

    _, agent = peers.agent("8801")
    port = free_port()
    r = CliRunner().invoke(app, ["call", "--wav", str(peers.caller_wav), "--to", peers.worker.uri, "--dtmf", "1",
                                 "--seconds", "4", "--from", "13811112222", "--port", str(port)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["connected"] and out["tx_pkt"] > 150 and out["rx_loss"] == 0
    assert agent.find(ev="incoming")
    [call] = wait_cdr(peers, "13811112222")
    assert call.ivr_path == "1" and call.result == "answered"


def test_eval_live_small_run(shared_data, tmp_path):
    from eval.live_bench import run_live

    res = run_live(calls=2, duration=8, data=shared_data, workdir=tmp_path / "live")
    assert res["completed"] == 2 and res["dropped"] == 0 and res["recordings_complete"] == 2
    f = res["frames"]
    assert f["caller"]["rtp_lost_at_bridge"] == 0 and f["agent"]["rtp_lost_at_bridge"] == 0 and f["lost_at_uas"] == 0
    assert f["caller"]["forked_frames"] >= f["caller"]["rtp_received_by_bridge"] > 0
    assert res["transcript_segments"]["expected"] > 0 and res["bridge_workers_used"] == 1
    assert res["cpu"]["bridge_core_pct_per_leg"] is not None
    transcripts = res["transcript_segments"]  # the ASR followers transcribed both calls from their spools
    assert transcripts["stored"] == transcripts["finals_published"] > 0
    assert res["transcript_complete"]["calls"] == 2 and res["spools_left"] == 0 and res["asr_followers"] >= 1
    # the live lag (end of utterance -> final) and the followers' CPU per second of leg audio
    assert 0 < res["final_latency_s"]["p50"] <= res["final_latency_s"]["p95"]
    assert 0 < res["cpu"]["follower_cpu_per_leg_second"] < 1
