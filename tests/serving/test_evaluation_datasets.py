"""Evaluators choose data sets the server registers (issue #28 item 11): the entries of the evaluation data folder
are listed by name, path parameters are marked as such, and only evaluators and admins may see them."""
from __future__ import annotations

import json

from fastapi.testclient import TestClient

from domain.db import session_scope
from demo import seed_demo
from demo.eval_data import BUNDLED, seed_eval_data
from serving.api.evaluations import data_path
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


def test_the_bundled_sets_are_put_in_the_evaluation_folder_once(tmp_path):
    root = tmp_path / "eval-data"
    assert sorted(seed_eval_data(root)) == sorted(BUNDLED)
    calls = data_path(root, "data", "corpus-calls")  # resolves inside the folder: a benchmark may read it
    assert (calls / "dialogues" / "c001.json").is_file() and (calls / "kb.jsonl").is_file()
    first = (root / "govqa-paraphrases.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(first)
    (root / "corpus-calls" / "mine.txt").write_text("operator's file")
    assert seed_eval_data(root) == []  # nothing replaced on the next start
    assert (root / "corpus-calls" / "mine.txt").exists()
