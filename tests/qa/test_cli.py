"""`hotline qa score` / `hotline kpi ...` through the real Typer app."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.qa.test_api import TRANSCRIPT


@pytest.fixture
def cli_env(engine, db_url, tmp_path, monkeypatch):
    from domain.db import get_db_engine, session_scope
    from domain.models import Tenant
    from domain.settings import get_settings

    monkeypatch.setenv("HOTLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    get_db_engine.cache_clear()
    with session_scope(engine) as s:
        s.add(Tenant(code="laibin", name="来宾市"))
    yield tmp_path
    get_settings.cache_clear()
    get_db_engine.cache_clear()


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


def test_qa_score_folder_stored_per_call_on_ray(cli_env, shared_data, models_dir):
    """``hotline qa score DIR --store``: each recording a Ray task (a local Ray of one CPU), each result stored
    as it arrives, a broken file reported in Chinese while the others are stored."""
    import ray
    import soundfile as sf
    from sqlalchemy import func, select

    from domain.db import get_db_engine, session_scope
    from domain.models import QAResult
    from serving.cli import app

    (cli_env / "var").mkdir(exist_ok=True)
    (cli_env / "var" / "models").symlink_to(models_dir)
    audio, sr = sf.read(shared_data / "synthetic_calls" / "audio" / "d001.flac", dtype="int16")
    folder = cli_env / "calls"
    folder.mkdir()
    for i in range(2):
        sf.write(folder / f"call{i}.wav", audio[i * 9 * sr:(i + 1) * 9 * sr], sr)
    (folder / "broken.wav").write_bytes(b"RIFF")
    try:
        out = CliRunner().invoke(app, ["qa", "score", str(folder), "--store", "--cpus", "1"])
    finally:
        ray.shutdown()
    assert out.exit_code == 1, out.output
    rows = {r["file"]: r for r in map(json.loads, (line for line in out.stdout.splitlines() if line.startswith("{")))}
    assert set(rows) == {"call0.wav", "call1.wav", "broken.wav"}
    assert rows["broken.wav"]["error"].startswith("无法解码音频") and "result_id" not in rows["broken.wav"]
    assert "成功 2 通，失败 1 通" in out.stderr
    with session_scope(get_db_engine()) as s:
        stored = set(s.scalars(select(QAResult.id)))
        assert s.scalar(select(func.count(QAResult.id))) == 2
    assert {rows["call0.wav"]["result_id"], rows["call1.wav"]["result_id"]} == stored
    assert rows["call0.wav"]["metadata"]["source_mode"] == "stereo"
    empty = cli_env / "empty"
    empty.mkdir()
    out = CliRunner().invoke(app, ["qa", "score", str(empty)])
    assert out.exit_code != 0 and "目录中没有录音文件" in out.output
