"""Evaluators choose data sets the server registers (issue #28 item 11): the entries of the evaluation data folder
are listed by name, path parameters are marked as such, and only evaluators and admins may see them."""
from __future__ import annotations

from fastapi.testclient import TestClient

from domain.db import session_scope
from demo import seed_demo
from tests.conftest import login


def test_datasets_are_listed_by_name_for_evaluators_only(engine, settings, tmp_path):
    from serving.app import create_app

    root = tmp_path / "evaldata"
    (root / "mandarin").mkdir(parents=True)
    (root / "kb.jsonl").write_text("{}\n", encoding="utf-8")
    (root / ".cache").mkdir()
    with session_scope(engine) as s:
        seed_demo(s, "laibin")
    app = create_app(settings.model_copy(update={"eval_data_root": root}), engine)
    with TestClient(app) as client:
        evaluator = login(client, "evaluator")
        assert client.get("/api/evaluations/datasets", headers=evaluator).json() == [
            {"name": "kb.jsonl", "kind": "file"}, {"name": "mandarin", "kind": "folder"}]
        asr = next(b for b in client.get("/api/evaluations/benchmarks", headers=evaluator).json() if b["name"] == "asr")
        assert next(p for p in asr["params"] if p["name"] == "data")["path"] is True
        assert next(p for p in asr["params"] if p["name"] == "limit")["path"] is False
        missing = client.post("/api/evaluations/runs", headers=evaluator, json={"benchmark": "asr", "args": {}})
        assert missing.status_code == 422 and "data" not in missing.json()["error"]["message"]
        for role in ("agent", "qa", "supervisor"):
            assert client.get("/api/evaluations/datasets", headers=login(client, role)).status_code == 403
