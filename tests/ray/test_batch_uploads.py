"""Recordings uploaded to the server are scored as Ray tasks (a local Ray started by the app, as `hotline serve`
does without ``HOTLINE_RAY_ADDRESS``): acknowledged once stored, with a status the QA pages poll until the result
is in the database; a broken file fails with a Chinese reason, and an upload left unscored by a stopped server is
scored when the next one starts."""
from __future__ import annotations

import time

import pytest
import soundfile as sf

from tests.conftest import login

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture
def clip(shared_data, tmp_path):
    """16 s of a labelled stereo call (agent left, caller right): the greeting and the caller's question."""
    audio, sr = sf.read(shared_data / "synthetic_calls" / "audio" / "d001.flac", dtype="int16")
    path = tmp_path / "call.wav"
    sf.write(path, audio[: 16 * sr], sr)
    return path.read_bytes()


@pytest.fixture
def api(client):
    yield client
    scoring = getattr(client.app.state, "recording_scoring", None)
    if scoring is not None:
        scoring.close()
    ray.shutdown()


def wait_done(api, headers, recording_id: int, timeout_s: float = 300) -> dict:
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        r = api.get(f"/api/recordings/{recording_id}/scoring", headers=headers)
        assert r.status_code == 200, r.text
        seen.append(r.json()["state"])
        if seen[-1] in ("scored", "failed"):
            return {**r.json(), "seen": seen}
        time.sleep(1)
    raise AssertionError(f"upload {recording_id} still {seen[-1:]} after {timeout_s} s")


def test_upload_scored_on_ray_with_progress(api, clip):
    qa = login(api, "qa")
    assert api.post("/api/recordings", files={"file": ("call.wav", clip)}, headers=login(api, "agent")).status_code == 403
    r = api.post("/api/recordings", files={"file": ("notes.txt", b"hello")}, headers=qa)
    assert r.status_code == 415 and "只支持录音文件" in r.json()["error"]["message"]
    r = api.post("/api/recordings", files={"file": ("call.wav", clip)}, headers=qa)
    assert r.status_code == 202, r.text
    good = r.json()
    assert good["state"] == "queued" and good["status_url"] == f"/api/recordings/{good['recording_id']}/scoring"
    broken = api.post("/api/recordings", files={"file": ("broken.wav", b"RIFF but nothing else")}, headers=qa).json()

    done = wait_done(api, qa, good["recording_id"])
    assert done["state"] == "scored" and done["error"] is None and done["seen"][0] in ("queued", "storing", "scored")
    assert done["duration_ms"] == 16000
    result = api.get(f"/api/qa/results/{done['result_id']}", headers=qa).json()
    assert result["recording_id"] == good["recording_id"]
    greeting = next(i for i in result["items"] if i["code"] == "greeting")
    assert greeting["passed"] and any("政务服务便民热线" in e.get("text", "") for e in greeting["evidence"]), greeting

    failed = wait_done(api, qa, broken["recording_id"])
    assert failed["state"] == "failed" and failed["error"].startswith("无法解码音频") and failed["result_id"] is None
    assert api.get("/api/recordings/999999/scoring", headers=qa).status_code == 404


def test_upload_left_unscored_is_scored_after_restart(app, clip, settings):
    """A stored upload (file and row) without a result, as a server stopped mid-scoring leaves it, is submitted
    again when the app's recording scoring starts."""
    from domain.db import session_scope
    from domain.models import Recording, Tenant
    from fastapi.testclient import TestClient
    from qa.service import UPLOADS

    folder = settings.data_dir / UPLOADS / "1"
    folder.mkdir(parents=True)
    (folder / "left.wav").write_bytes(clip)
    with session_scope(app.state.engine) as session:
        tenant_id = session.query(Tenant.id).filter(Tenant.code == "laibin").scalar()
        row = Recording(tenant_id=tenant_id, path=str(folder / "left.wav"))
        session.add(row)
        session.flush()
        recording_id = row.id
    with TestClient(app) as api:
        try:
            done = wait_done(api, login(api, "qa"), recording_id)
        finally:
            app.state.recording_scoring.close()
            ray.shutdown()
    assert done["state"] == "scored" and done["result_id"]
