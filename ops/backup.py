"""`hotline backup DEST` / `hotline restore SRC`: a consistent snapshot of one installation, taken while calls run.

A backup is a directory:

* ``database.sqlite`` (SQLite online backup API: a consistent copy while the workers write) or
  ``database.pgdump`` (``pg_dump -Fc``: one repeatable-read snapshot of PostgreSQL);
* ``files/``: the data directory's own files (recordings, the spools of calls in progress, models, prompts,
  the installation secrets the SIP passwords and the worker control channel derive from, the event bus key);
* ``manifest.json``: what was taken, when, from where, the Alembic revision, and the SHA-256, size and
  modification time of every file above.  It is written last: a backup without it is incomplete and restore
  refuses it.

With ``previous`` (the last backup), a file unchanged since then (same size and modification time) is hard-linked
from it instead of copied: an hourly backup copies the hour's new recordings, not the whole archive.

The database is copied first and the files after it, so every recording a database row points to was on disk
before the copy started (a recording is written, then its row committed): files written later are extra, never
missing.  Everything else of the installation lives in the database (calls, transcripts, QA results, tickets,
knowledge base versions, tenant settings).  Caches (embeddings), logs, sockets and run state (worker registry,
Kamailio's run directory and credential table, rebuilt at start) are left out.

Restore goes onto a fresh data directory (and an empty PostgreSQL database): it checks every checksum first,
then writes the database, copies the files and rewrites the recordings' paths to the new data directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from domain.db import make_db_engine, session_scope
from domain.errors import AppError

FORMAT = 1
MANIFEST = "manifest.json"
SKIPPED_DIRS = {"cache"}  # rebuilt on demand
KEPT_RUN_FILES = {"control.token", "sip-secret"}  # of telephony/, the rest is run state rebuilt at start


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _libpq(url: str) -> tuple[str, dict]:
    """A libpq connection string for pg_dump/pg_restore, with the password passed in the environment."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    plain = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return plain, env


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database).resolve()


def _data_files(data_dir: Path, db_file: Path | None):
    """The data directory's files a backup keeps, as paths relative to it."""
    skip = set()
    if db_file is not None:
        skip = {db_file.name, db_file.name + "-wal", db_file.name + "-shm", db_file.name + "-journal"}
    for root, dirs, files in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        if rel_root.parts[:1] == ("telephony",):
            dirs[:] = []
        dirs.sort()
        for name in sorted(files):
            rel = rel_root / name
            path = data_dir / rel
            if rel_root == Path(".") and name in skip:
                continue
            if rel_root.parts[:1] == ("telephony",) and name not in KEPT_RUN_FILES:
                continue
            if name.endswith((".log", ".tmp", ".sock")) or not path.is_file():
                continue
            yield rel


def _copy_sqlite(src: Path, dest: Path) -> None:
    """SQLite's online backup: a consistent copy while other connections write (pages changed meanwhile are
    copied again), then an integrity check of the copy."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target, pages=1024, sleep=0.005)
        if target.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise AppError("backup_corrupt", "数据库备份完整性检查未通过", 500)
    finally:
        target.close()
        source.close()


def _run(argv: list[str], env: dict, what: str) -> None:
    if not shutil.which(argv[0]):
        raise AppError("tool_missing", f"未找到 {argv[0]}（apt-get install postgresql-client）", 500)
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AppError(f"{what}_failed", f"{argv[0]} 失败：{done.stderr.strip()[-500:]}", 500)


def _revision(url: str) -> str | None:
    engine = make_db_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def backup(dest: Path, *, db_url: str, data_dir: Path, previous: Path | None = None) -> dict:
    """Snapshot the installation into ``dest`` (a new or empty directory); returns the manifest."""
    dest, data_dir = Path(dest), Path(data_dir).resolve()
    before = _manifest(previous)["files"] if previous else {}  # not re-hashed: that would read the whole archive
    if dest.exists() and any(dest.iterdir()):
        raise AppError("backup_exists", f"备份目录 {dest} 不为空，请指定新目录", 400)
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)  # it holds the installation secrets
    started = time.monotonic()
    taken_at = datetime.now(timezone.utc)
    if _is_postgres(db_url):
        db_name, db_file = "database.pgdump", None
        conn, env = _libpq(db_url)
        _run(["pg_dump", "-Fc", "--no-owner", "--no-privileges", "-f", str(dest / db_name), conn], env, "pg_dump")
    else:
        db_name, db_file = "database.sqlite", _sqlite_path(db_url)
        if not db_file.is_file():
            raise AppError("not_found", f"数据库文件 {db_file} 不存在", 404)
        _copy_sqlite(db_file, dest / db_name)
    db_done = time.monotonic()
    files, linked = {}, 0
    for rel in _data_files(data_dir, db_file):
        target = dest / "files" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            st = (data_dir / rel).stat()
            old = before.get(str(rel))
            if old and (old["bytes"], old.get("mtime_ns")) == (st.st_size, st.st_mtime_ns):
                os.link(Path(previous) / "files" / rel, target)
                files[str(rel)] = old
                linked += 1
                continue
            shutil.copy2(data_dir / rel, target)
        except FileNotFoundError:  # removed meanwhile (a spool finished after the database copy): not needed
            continue
        files[str(rel)] = {"sha256": _sha256(target), "bytes": target.stat().st_size, "mtime_ns": st.st_mtime_ns}
    manifest = {
        "format": FORMAT, "taken_at": taken_at.isoformat(), "host": socket.gethostname(),
        "data_dir": str(data_dir), "backend": "postgresql" if db_file is None else "sqlite",
        "alembic_revision": _revision(db_url),
        "database": {"file": db_name, "sha256": _sha256(dest / db_name), "bytes": (dest / db_name).stat().st_size},
        "files": files, "linked_from_previous": linked, "previous": str(previous) if previous else None,
        "seconds": {"database": round(db_done - started, 3), "total": round(time.monotonic() - started, 3)},
    }
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest / MANIFEST)
    return manifest


def _manifest(src: Path) -> dict:
    src = Path(src)
    if not (src / MANIFEST).is_file():
        raise AppError("backup_incomplete", f"{src} 不是完整的备份（缺少 {MANIFEST}）", 400)
    manifest = json.loads((src / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise AppError("backup_format", f"不支持的备份格式 {manifest.get('format')}", 400)
    return manifest


def verify(src: Path) -> dict:
    """The backup's manifest, once every checksum in it matches; a clear error otherwise."""
    src = Path(src)
    manifest = _manifest(src)
    expected = [(src / manifest["database"]["file"], manifest["database"]["sha256"])]
    expected += [(src / "files" / rel, meta["sha256"]) for rel, meta in manifest["files"].items()]
    bad = [str(p.relative_to(src)) for p, digest in expected if not p.is_file() or _sha256(p) != digest]
    if bad:
        raise AppError("backup_corrupt", f"备份校验失败（{len(bad)} 个文件缺失或已损坏）：{', '.join(bad[:5])}", 400,
                       {"files": bad})
    return manifest


def _empty_database(url: str) -> bool:
    engine = make_db_engine(url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def restore(src: Path, *, db_url: str, data_dir: Path) -> dict:
    """Restore the backup ``src`` onto a fresh data directory and an empty database; returns a summary."""
    started = time.monotonic()
    src, data_dir = Path(src), Path(data_dir).resolve()
    manifest = verify(src)
    postgres = _is_postgres(db_url)
    if (manifest["backend"] == "postgresql") != postgres:
        raise AppError("backend_mismatch", f"备份来自 {manifest['backend']}，目标数据库类型不同；请先在同类数据库上恢复"
                       "，再用数据库自身工具迁移", 400)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise AppError("data_dir_not_empty", f"数据目录 {data_dir} 不为空：恢复只写入全新的数据目录", 400)
    if postgres and not _empty_database(db_url):
        raise AppError("database_not_empty", "目标数据库不为空：恢复只写入空数据库", 400)
    data_dir.mkdir(parents=True, exist_ok=True)
    if postgres:
        conn, env = _libpq(db_url)
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "-d", conn,
              str(src / manifest["database"]["file"])], env, "pg_restore")
    else:
        db_file = _sqlite_path(db_url)
        if db_file.exists():
            raise AppError("database_not_empty", f"数据库文件 {db_file} 已存在：恢复只写入全新的数据目录", 400)
        db_file.parent.mkdir(parents=True, exist_ok=True)
        _copy_sqlite(src / manifest["database"]["file"], db_file)
    for rel in manifest["files"]:
        target = data_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "files" / rel, target)  # with its mode: the secrets stay readable by their owner only
    moved = _rebase_recordings(db_url, Path(manifest["data_dir"]), data_dir)
    return {"restored_from": str(src), "taken_at": manifest["taken_at"], "files": len(manifest["files"]),
            "recordings_rebased": moved, "alembic_revision": manifest["alembic_revision"],
            "seconds": round(time.monotonic() - started, 3)}


def _rebase_recordings(db_url: str, old: Path, new: Path) -> int:
    """Point recordings stored under the old data directory at the same files under the new one."""
    from domain.models import Recording

    if old == new:
        return 0
    engine = make_db_engine(db_url)
    moved = 0
    try:
        with session_scope(engine) as session:
            for row in session.query(Recording):
                path = Path(row.path)
                if path.is_relative_to(old):
                    row.path = str(new / path.relative_to(old))
                    moved += 1
    finally:
        engine.dispose()
    return moved
