"""Batch QA on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head without CPUs for tasks and two
worker nodes of one CPU each, separate raylets on this machine).

``hotline qa score DIR`` joins the cluster through ``HOTLINE_RAY_ADDRESS`` and scores a folder of recordings, one
Ray task per call: the real Whisper-base ASR, the channel split, and the scorecard.  The calls spread over both
worker nodes, come back one JSON line each, and a broken file is reported in Chinese without losing the others."""
from __future__ import annotations

import json

import pytest
import soundfile as sf
from typer.testing import CliRunner

from domain.settings import get_settings
from tests.conftest import REPO

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CLIP_S = 10  # seconds of each call cut from a labelled synthetic call
CALLS = 4


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, {n.node_id for n in nodes}
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def recordings(shared_data, tmp_path):
    """Four stereo recordings (left agent, right caller) of the first 40 s of a labelled call, and one broken."""
    from asr.audio import load_audio

    audio = load_audio(shared_data / "synthetic_calls" / "audio" / "d001.flac")
    n = CLIP_S * audio.sample_rate
    folder = tmp_path / "calls"
    folder.mkdir()
    for i in range(CALLS):
        sf.write(folder / f"call{i}.wav", audio.samples[:, i * n:(i + 1) * n].T, audio.sample_rate)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav")
    (folder / "notes.txt").write_text("不是录音", encoding="utf-8")
    return folder


def test_folder_scored_across_both_nodes(cluster, recordings, monkeypatch):
    from domain.ray_cluster import connect
    from serving.cli import app

    head, worker_nodes = cluster
    monkeypatch.setenv("HOTLINE_RAY_ADDRESS", head.address)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(REPO / "var"))  # the Whisper model assembled once per machine
    get_settings.cache_clear()
    try:
        # the command's own connect() then finds this session: the driver is joined exactly as the command joins
        connect(get_settings(), runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
        out = CliRunner().invoke(app, ["qa", "score", str(recordings), "--json", str(recordings / "all.json")])
    finally:
        get_settings.cache_clear()
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.exit_code == 1, out.output  # one call failed, the others were scored
    assert sorted(r["file"] for r in rows) == sorted([f"call{i}.wav" for i in range(CALLS)] + ["broken.wav"])
    broken = next(r for r in rows if r["file"] == "broken.wav")
    assert broken["error"].startswith("无法解码音频")
    assert "broken.wav：无法解码音频" in out.stderr and f"成功 {CALLS} 通，失败 1 通" in out.stderr
    scored = [r for r in rows if r["file"] != "broken.wav"]
    assert {r["node_id"] for r in scored} == worker_nodes  # every call ran as a task on a worker node, both used
    for r in scored:
        assert r["metadata"]["source_mode"] == "stereo" and r["metadata"]["duration_ms"] == CLIP_S * 1000
        assert 0 <= r["score"] <= 100 and {i["code"] for i in r["items"]} >= {"greeting"}
    first = next(r for r in scored if r["file"] == "call0.wav")
    greeting = next(i for i in first["items"] if i["code"] == "greeting")
    assert greeting["passed"], greeting  # the agent's opening (with the job number) was recognised
    assert json.loads((recordings / "all.json").read_text(encoding="utf-8")) == rows
