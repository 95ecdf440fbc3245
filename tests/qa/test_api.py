"""QA and KPI HTTP API: roles, upload scoring, review, agent appeal, KPI entries and exports."""
from __future__ import annotations

import json

import pytest

from tests.conftest import login

TRANSCRIPT = [
    {"role": "agent", "start_ms": 0, "end_ms": 7000, "text": "您好，来宾12345政务服务便民热线，8号话务员为您服务，请问有什么可以帮您？"},
    {"role": "caller", "start_ms": 7500, "end_ms": 12000, "text": "我想问一下社保卡丢了怎么补办？"},
    {"role": "agent", "start_ms": 12500, "end_ms": 20000, "text": "这个不归我们管，你自己去查。"},
    {"role": "agent", "start_ms": 20500, "end_ms": 24000, "text": "感谢您的来电，再见。"},
]


@pytest.fixture
def api(app):
    from fastapi.testclient import TestClient

    from serving.api import kpi as kpi_api, qa as qa_api
    from serving.app import ROUTER_MODULES

    for name, module in (("serving.api.qa", qa_api), ("serving.api.kpi", kpi_api)):
        if name not in ROUTER_MODULES:  # until the app lists these routers
            app.include_router(module.router)
    with TestClient(app) as c:
        yield c


def test_upload_review_appeal_and_overturn_rates(api):
    qa, agent = login(api, "qa"), login(api, "agent")
    files = {"file": ("call.json", json.dumps(TRANSCRIPT, ensure_ascii=False).encode(), "application/json")}
    assert api.post("/api/qa/score", files=files, headers=agent).status_code == 403
    r = api.post("/api/qa/score", files=files, headers=qa)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["serious_service_violation"] and result["review_state"] == "queued"
    bad = next(i for i in result["items"] if i["code"] == "forbidden_phrases")
    assert not bad["passed"] and bad["evidence"][0]["start_ms"] == 12500
    assert [q["id"] for q in api.get("/api/qa/queue", headers=qa).json()] == [result["id"]]
    r = api.post(f"/api/qa/items/{bad['id']}/review", json={"verdict": "overturn", "comment": ""}, headers=qa)
    assert r.status_code == 422 and "复核意见" in r.json()["error"]["message"]
    assert api.post(f"/api/qa/items/{bad['id']}/review", json={"verdict": "confirm", "comment": "属实"},
                    headers=qa).status_code == 200
    done = api.post(f"/api/qa/results/{result['id']}/finish", headers=qa).json()
    assert done["review_state"] == "reviewed"
    rates = api.get("/api/qa/overturn-rates", headers=qa).json()
    assert {r["item_code"] for r in rates} >= {"forbidden_phrases", "greeting"}
    # the uploaded result has no agent: the demo agent cannot see it
    assert api.get(f"/api/qa/results/{result['id']}", headers=agent).status_code == 404
    assert api.get("/api/qa/results", headers=agent).json() == []


def test_bad_uploads_are_rejected_clearly(api):
    qa = login(api, "qa")
    for name, body, code in [("x.txt", b"hello", 415), ("x.json", b"{not json", 422), ("x.json", b"", 422),
                             ("x.wav", b"RIFF0000", 422),
                             ("x.json", json.dumps([{"role": "robot", "start_ms": 0, "end_ms": 1, "text": "x"}]).encode(), 422)]:
        r = api.post("/api/qa/score", files={"file": (name, body)}, headers=qa)
        assert r.status_code == code, (name, r.text)
        assert r.json()["error"]["message"]


def test_scorecards_versioned_via_api(api):
    qa, sup = login(api, "qa"), login(api, "supervisor")
    cards = api.get("/api/qa/scorecards", headers=qa).json()
    assert cards[0]["name"] == "default_12345" and cards[0]["active"]
    definition = cards[0]["definition"]
    definition["params"]["long_silence_ms"]["value"] = 12000
    assert api.post("/api/qa/scorecards", json={"definition": definition}, headers=sup).status_code == 403
    r = api.post("/api/qa/scorecards", json={"definition": definition}, headers=qa)
    assert r.status_code == 201 and r.json()["version"] == 2
    definition["items"][0]["require"] = {"op": "bogus"}
    r = api.post("/api/qa/scorecards", json={"definition": definition}, headers=qa)
    assert r.status_code == 422 and "未知算子" in r.json()["error"]["message"]
    r = api.post(f"/api/qa/scorecards/{cards[0]['id']}/activate", headers=qa)
    assert r.json()["active"] and r.json()["version"] == 1


def test_kpi_month_entries_trend_and_exports(api):
    sup, ev, agent = login(api, "supervisor"), login(api, "evaluator"), login(api, "agent")
    assert api.get("/api/kpi/months/2026-06", headers=agent).status_code == 403
    r = api.post("/api/kpi/months/2026-06/entries", json={"kind": "commendation", "value": 3, "note": "锦旗"},
                 headers=sup)
    assert r.status_code == 201
    assert api.post("/api/kpi/months/2026-06/entries", json={"kind": "commendation", "value": 3, "note": "x"},
                    headers=ev).status_code == 403
    month = api.get("/api/kpi/months/2026-06", headers=ev).json()
    assert month["bonus"] == 3 and len(month["indicators"]) == 11 and month["entries"][0]["note"] == "锦旗"
    assert api.get("/api/kpi/months/2026-13", headers=ev).status_code == 422
    assert api.get("/api/kpi/trend", headers=ev).json()[0]["month"] == "2026-06"
    x = api.get("/api/kpi/export", params={"months": "2026-04,2026-05,2026-06", "fmt": "xlsx"}, headers=ev)
    assert x.status_code == 200 and x.content[:2] == b"PK"
    pdf = api.get("/api/kpi/export", params={"months": "2026-06", "fmt": "pdf"}, headers=ev)
    assert pdf.content.startswith(b"%PDF")
    entry_id = month["entries"][0]["id"]
    assert api.delete(f"/api/kpi/months/2026-06/entries/{entry_id}", headers=sup).status_code == 204
    assert api.get("/api/kpi/months/2026-06", headers=ev).json()["bonus"] == 0


def test_an_uploaded_recording_is_transcribed_and_scored(api, shared_data, tmp_path):
    import soundfile as sf

    path = shared_data / "synthetic_calls" / "audio" / "d001.flac"
    if not path.exists():
        pytest.skip(f"{path} not found")
    audio, sr = sf.read(path, dtype="int16")
    clip = tmp_path / "call.wav"
    sf.write(clip, audio[: 30 * sr], sr)  # stereo: agent left, caller right
    r = api.post("/api/qa/score", files={"file": ("call.wav", clip.read_bytes())}, headers=login(api, "qa"))
    assert r.status_code == 201, r.text
    quoted = [e for item in r.json()["items"] for e in item["evidence"] if "text" in e]
    assert {e["role"] for e in quoted} >= {"agent"}
    assert any("政务服务便民热线" in e["text"] for e in quoted) and any("社保卡" in e["text"] for e in quoted)
