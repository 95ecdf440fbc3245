"""`hotline qa score` / `hotline kpi ...` through the real Typer app."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.qa.test_api import TRANSCRIPT


@pytest.fixture
def cli_env(engine, db_url, tmp_path, monkeypatch):
    from domain.db import get_engine, session_scope
    from domain.models import Tenant
    from domain.settings import get_settings

    monkeypatch.setenv("HOTLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    get_engine.cache_clear()
    with session_scope(engine) as s:
        s.add(Tenant(code="laibin", name="来宾市"))
    yield tmp_path
    get_settings.cache_clear()
    get_engine.cache_clear()


def test_qa_score_transcript_file_and_store(cli_env):
    from serving.cli import app

    path = cli_env / "call.json"
    path.write_text(json.dumps(TRANSCRIPT, ensure_ascii=False), encoding="utf-8")
    out = CliRunner().invoke(app, ["qa", "score", str(path), "--json", str(cli_env / "r.json")])
    assert out.exit_code == 0, out.output
    result = json.loads((cli_env / "r.json").read_text(encoding="utf-8"))
    assert not next(i for i in result["items"] if i["code"] == "forbidden_phrases")["passed"]
    out = CliRunner().invoke(app, ["qa", "score", str(path), "--store"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["review_state"] == "queued"
    bad = cli_env / "bad.json"
    bad.write_text("{oops", encoding="utf-8")
    out = CliRunner().invoke(app, ["qa", "score", str(bad)])
    assert out.exit_code != 0 and "无法读取转写文件" in out.output


def test_kpi_commands(cli_env):
    from serving.cli import app

    r = CliRunner().invoke(app, ["kpi", "add-entry", "2026-06", "commendation", "2", "--note", "表扬信"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["kpi", "compute", "2026-06"])
    assert r.exit_code == 0 and json.loads(r.output)["bonus"] == 2
    xlsx, pdf = cli_env / "k.xlsx", cli_env / "k.pdf"
    r = CliRunner().invoke(app, ["kpi", "export", "2026-06", "--xlsx", str(xlsx), "--pdf", str(pdf)])
    assert r.exit_code == 0, r.output
    assert xlsx.read_bytes()[:2] == b"PK" and pdf.read_bytes()[:4] == b"%PDF"
