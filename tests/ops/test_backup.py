"""`hotline backup` / `hotline restore`: a snapshot taken while a real SIP call runs, restored onto a fresh data
directory, keeps every call, transcript, QA result, ticket and recording (SQLite here; PostgreSQL too when
HOTLINE_TEST_DATABASE_URL is set)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from domain.db import make_db_engine, session_scope
from domain.errors import AppError
from domain.models import Call, QAResult, Recording, Scorecard, Ticket, TranscriptSegment
from ops.backup import backup, restore, verify
from telephony import sipauth
from telephony.control import control_token
from tests.conftest import PG_URL
from tests.telephony.conftest import lab, peers  # noqa: F401 - fixtures
from tests.telephony.test_bridge import wait_cdr

pytestmark = pytest.mark.slow


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _finished_call_with_its_records(lab) -> int:  # noqa: F811
    """A real call through the bridge, answered by an agent and hung up, plus what the later stages store for
    it: transcript segments, a QA result and a ticket."""
    _agent_id, agent = lab.agent("7001")
    caller = lab.peer("13900000001")
    caller.call("a", lab.worker.uri, wav=str(lab.caller_wav), dtmf="1", dtmf_after=0.5, **{"from": "13900000001"})
    caller.state("a", "CONFIRMED")
    agent.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 15)
    time.sleep(3)
    caller.send(op="hangup", id="a")
    caller.ended("a")
    [call] = wait_cdr(lab, "13900000001")
    with session_scope(lab.engine) as s:
        card = Scorecard(tenant_id=call.tenant_id, name="备份测试", definition={"items": []})
        s.add(card)
        s.flush()
        s.add_all([TranscriptSegment(tenant_id=call.tenant_id, call_id=call.id, recording_id=call.recording.id,
                                     leg=leg, speaker_role=leg, start_ms=i * 1000, end_ms=i * 1000 + 900,
                                     text=f"第{i}句：我要反映小区停水的问题")
                   for i, leg in enumerate(["caller", "agent", "caller"])])
        s.add(QAResult(tenant_id=call.tenant_id, call_id=call.id, recording_id=call.recording.id,
                       scorecard_id=card.id, score=92.5))
        s.add(Ticket(tenant_id=call.tenant_id, number="BK-0001", call_id=call.id, category="城乡建设/供水",
                     summary="小区停水三天", phone="13900000001"))
    return call.id


def _snapshot(engine, call_id: int) -> dict:
    """Everything the restore must bring back for one call (recording path aside: it moves)."""
    with session_scope(engine) as s:
        call = s.get(Call, call_id)
        rec = s.query(Recording).filter_by(call_id=call_id).one()
        return {
            "call": (call.call_uuid, call.caller_number, call.result, call.hangup_side, call.agent_id,
                     call.answered_at, call.ended_at),
            "segments": [(t.leg, t.start_ms, t.end_ms, t.text) for t in
                         s.query(TranscriptSegment).filter_by(call_id=call_id).order_by(TranscriptSegment.id)],
            "qa": [(q.score, q.scorecard_id) for q in s.query(QAResult).filter_by(call_id=call_id)],
            "tickets": [(t.number, t.category, t.summary) for t in s.query(Ticket).filter_by(call_id=call_id)],
            "recording": (rec.sha256, rec.duration_ms),
        }


def _recording_path(engine, call_id: int) -> Path:
    with session_scope(engine) as s:
        return Path(s.query(Recording).filter_by(call_id=call_id).one().path)


def test_backup_mid_call_restores_everything_onto_a_fresh_data_directory(peers, tmp_path):  # noqa: F811
    lab = peers
    done_id = _finished_call_with_its_records(lab)
    before = _snapshot(lab.engine, done_id)

    # a second call is in progress while the backup runs
    lab.set_states("signed_out")  # the first agent is done for the day
    _agent_id, agent = lab.agent("7002")
    caller = lab.peer("13900000002")
    caller.call("b", lab.worker.uri, wav=str(lab.caller_wav), dtmf="1", dtmf_after=0.5, **{"from": "13900000002"})
    caller.state("b", "CONFIRMED")
    agent.wait_for(lambda e: e.get("ev") == "state" and e.get("state") == "CONFIRMED", 15)
    time.sleep(2)
    with session_scope(lab.engine) as s:
        live = s.query(Call).filter_by(caller_number="13900000002").one()
        live_id, live_uuid = live.id, live.call_uuid
        assert live.ended_at is None
    token, sip_password = control_token(lab.root), sipauth.agent_password(lab.root, "7002")  # the installation's secrets
    dest = tmp_path / "backup"
    manifest = backup(dest, db_url=lab.url, data_dir=lab.root)
    assert not caller.find(ev="ended", id="b")  # the call ran on through the backup
    caller.send(op="hangup", id="b")
    caller.ended("b")
    wait_cdr(lab, "13900000002")

    spooled = [f for f in manifest["files"] if f.startswith(f"recordings/spool/{live_uuid}/")]
    assert spooled, "the live call's spool (its audio so far) is in the backup"
    assert "telephony/control.token" in manifest["files"] and "telephony/sip-secret" in manifest["files"]
    assert not any(f.endswith(".log") or f.startswith("telephony/kamailio-run") for f in manifest["files"])
    assert verify(dest)["taken_at"] == manifest["taken_at"]

    # restore onto a new data directory, through the command an operator runs
    fresh = tmp_path / "new-host" / "var"
    env = {**os.environ, "HOTLINE_DATA_DIR": str(fresh), "HOTLINE_DATABASE_URL": ""}
    run = subprocess.run([str(Path(sys.executable).parent / "hotline"), "restore", str(dest)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["recordings_rebased"] >= 1
    restored = make_db_engine(f"sqlite:///{fresh / 'hotline.db'}")
    try:
        assert _snapshot(restored, done_id) == before
        new_path = _recording_path(restored, done_id)
        assert new_path.is_relative_to(fresh.resolve()) and _sha256(new_path) == before["recording"][0]
        with session_scope(restored) as s:
            assert s.get(Call, live_id).call_uuid == live_uuid  # the call in progress is there too
        for rel in spooled:
            assert (fresh / rel).read_bytes() == (dest / "files" / rel).read_bytes()
        # the agents' SIP passwords and the control channel survive the move to the new host
        assert sipauth.agent_password(fresh, "7002") == sip_password and control_token(fresh) == token
        assert (fresh / "telephony" / "sip-secret").stat().st_mode & 0o077 == 0
    finally:
        restored.dispose()


def test_restore_refuses_a_damaged_backup_and_a_used_data_directory(peers, tmp_path):  # noqa: F811
    lab = peers
    dest = tmp_path / "backup"
    manifest = backup(dest, db_url=lab.url, data_dir=lab.root)
    with pytest.raises(AppError) as used:
        restore(dest, db_url=f"sqlite:///{lab.root / 'hotline.db'}", data_dir=lab.root)
    assert used.value.code == "data_dir_not_empty"
    with pytest.raises(AppError) as again:
        backup(dest, db_url=lab.url, data_dir=lab.root)
    assert again.value.code == "backup_exists"
    some = next(iter(manifest["files"]))
    (dest / "files" / some).write_bytes(b"damaged")
    with pytest.raises(AppError) as bad:
        restore(dest, db_url=f"sqlite:///{tmp_path / 'new' / 'hotline.db'}", data_dir=tmp_path / "new")
    assert bad.value.code == "backup_corrupt" and f"files/{some}" in bad.value.detail["files"]
    assert not (tmp_path / "new").exists()  # nothing written before the checks pass
    (dest / "manifest.json").unlink()
    with pytest.raises(AppError) as partial:
        verify(dest)
    assert partial.value.code == "backup_incomplete"


def _postgresql_backup_is_a_pg_dump_restored_into_an_empty_database(peers, tmp_path):  # noqa: F811
    """Copy the lab's call into PostgreSQL databases of our own (others' tests use the shared one)."""
    from domain.db import upgrade

    lab = peers
    done_id = _finished_call_with_its_records(lab) if not _has_call(lab, "13900000001") else _call_id(lab)
    admin = make_db_engine(PG_URL)
    names = [f"hotline_ops_{os.getpid()}_{which}" for which in ("src", "dst")]
    urls = [make_url(PG_URL).set(database=n).render_as_string(hide_password=False) for n in names]
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for n in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{n}"'))
            conn.execute(text(f'CREATE DATABASE "{n}"'))
    try:
        upgrade(urls[0])
        src = make_db_engine(urls[0])
        _copy_rows(lab.engine, src)
        before = _snapshot(src, done_id)
        manifest = backup(tmp_path / "pg", db_url=urls[0], data_dir=lab.root)
        assert manifest["backend"] == "postgresql" and manifest["database"]["file"] == "database.pgdump"
        restore(tmp_path / "pg", db_url=urls[1], data_dir=tmp_path / "pg-host")
        dst = make_db_engine(urls[1])
        assert _snapshot(dst, done_id) == before
        assert _recording_path(dst, done_id).is_relative_to((tmp_path / "pg-host").resolve())
        with pytest.raises(AppError) as used:
            restore(tmp_path / "pg", db_url=urls[1], data_dir=tmp_path / "pg-host-2")
        assert used.value.code == "database_not_empty"
        src.dispose()
        dst.dispose()
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for n in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)'))
        admin.dispose()


if PG_URL:  # as the db_url fixture does: the PostgreSQL variant exists where PostgreSQL is configured
    test_postgresql_backup_is_a_pg_dump_restored_into_an_empty_database = \
        _postgresql_backup_is_a_pg_dump_restored_into_an_empty_database


def _has_call(lab, number: str) -> bool:
    with session_scope(lab.engine) as s:
        return s.query(Call).filter_by(caller_number=number).count() > 0


def _call_id(lab) -> int:
    with session_scope(lab.engine) as s:
        return s.query(Call).filter_by(caller_number="13900000001").one().id


def _copy_rows(source, target) -> None:
    """Every row of the SQLite lab database into the migrated PostgreSQL one, parents first."""
    from domain.models import Base

    with source.connect() as src, target.begin() as dst:
        for table in Base.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(table.select())]
            if rows:
                dst.execute(table.insert(), rows)
        for table in Base.metadata.sorted_tables:  # keep the sequences past the copied ids
            if "id" in table.c and table.c.id.autoincrement:
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"COALESCE((SELECT MAX(id) FROM {table.name}), 1))"))


def test_an_hourly_backup_links_what_the_previous_one_holds_and_copies_the_rest(tmp_path):
    from domain.db import upgrade

    data = tmp_path / "var"
    old = data / "recordings" / "2026" / "12" / "06" / "old.wav"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"RIFF" + os.urandom(64000))
    url = f"sqlite:///{data / 'hotline.db'}"
    upgrade(url)
    first = backup(tmp_path / "b1", db_url=url, data_dir=data)
    assert first["linked_from_previous"] == 0
    new = data / "recordings" / "2026" / "12" / "07" / "new.wav"
    new.parent.mkdir(parents=True)
    new.write_bytes(b"RIFF" + os.urandom(64000))
    second = backup(tmp_path / "b2", db_url=url, data_dir=data, previous=tmp_path / "b1")
    rel_old, rel_new = str(old.relative_to(data)), str(new.relative_to(data))
    assert second["linked_from_previous"] == 1 and set(second["files"]) == {rel_old, rel_new}
    assert (tmp_path / "b2" / "files" / rel_old).stat().st_ino == (tmp_path / "b1" / "files" / rel_old).stat().st_ino
    assert (tmp_path / "b2" / "files" / rel_new).stat().st_nlink == 1  # new since the last backup: copied
    summary = restore(tmp_path / "b2", db_url=f"sqlite:///{tmp_path / 'host' / 'hotline.db'}", data_dir=tmp_path / "host")
    assert summary["files"] == 2
    assert (tmp_path / "host" / rel_old).read_bytes() == old.read_bytes()
    assert (tmp_path / "host" / rel_new).read_bytes() == new.read_bytes()
