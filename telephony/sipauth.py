"""SIP digest credentials of agent extensions, and the files Kamailio's edge checks read.

Each agent's SIP password is derived from a per-installation secret (``<data_dir>/telephony/sip-secret``, 32 random
bytes created once, mode 0600): base32 of HMAC-SHA256(secret, "agent:<work_no>"), 20 characters. It is unrelated to
the agent's login password, it is stored nowhere (Kamailio's table holds only HA1 = MD5(user:realm:password)), and
replacing the secret file changes every agent's password. ``hotline telephony sip-password <work_no>`` prints it for
the agent's softphone.

Kamailio reads the credentials through ``auth_db`` over ``db_text`` (``<data_dir>/telephony/sipdb/subscriber``), in
non-caching mode: the table is re-read whenever the file changes, so :func:`provision` can be called again (the
supervisor does every few seconds) to add new agents and drop deactivated ones without a restart.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Iterable

from sqlalchemy import select

from domain.secret_files import read_or_create

SIP_USER = re.compile(r"^[0-9A-Za-z_.-]{1,32}$")  # safe in a SIP URI user part and a db_text row


def run_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "telephony"


def secret_path(data_dir: Path) -> Path:
    return run_dir(data_dir) / "sip-secret"


def db_dir(data_dir: Path) -> Path:
    return run_dir(data_dir) / "sipdb"


def _secret(data_dir: Path) -> bytes:
    return bytes.fromhex(read_or_create(secret_path(data_dir)))


def agent_password(data_dir: Path, work_no: str) -> str:
    """The SIP digest password of extension ``work_no`` (creates the installation secret on first use)."""
    mac = hmac.new(_secret(data_dir), f"agent:{work_no}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:20]


def ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - RFC 2617 digest


def active_extensions(session) -> list[str]:
    """Work numbers of agents that may register: the agent's user account, if any, is active."""
    from domain.models import Agent, User

    rows = session.execute(select(Agent.work_no, User.active).outerjoin(User, User.id == Agent.user_id)).all()
    return sorted({w for w, active in rows if active is not False and SIP_USER.match(w or "")})


def _replace(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically (mode 0600); False when it already held exactly that."""
    old_mtime = 0
    if path.exists():
        if path.read_text() == text:
            return False
        old_mtime = int(path.stat().st_mtime)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # db_text notices a change by the file's mtime in whole seconds: a rewrite within the second of the
    # previous one must still look newer, or Kamailio keeps the old table
    if int(os.stat(tmp).st_mtime) <= old_mtime:
        os.utime(tmp, (old_mtime + 1, old_mtime + 1))
    os.replace(tmp, path)
    return True


def write_subscribers(data_dir: Path, realm: str, extensions: Iterable[str]) -> bool:
    """Kamailio's ``subscriber`` table (db_text) for ``extensions``; True when the file changed."""
    d = db_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    _replace(d / "version", "table_name(str) table_version(int)\nsubscriber:7\n")
    rows = ["id(int,auto) username(str) domain(str) ha1(str) ha1b(str)"]
    for i, user in enumerate(sorted(set(extensions)), 1):
        pw = agent_password(data_dir, user)
        rows.append(f"{i}:{user}:{realm}:{ha1(user, realm, pw)}:{ha1(f'{user}@{realm}', realm, pw)}")
    return _replace(d / "subscriber", "\n".join(rows) + "\n")


def write_trunks(path: Path, trunks: Iterable[str]) -> None:
    """Kamailio's permissions address file: carrier trunk addresses (group 2), exempt from per-source limits."""
    lines = ["# carrier trunks (HOTLINE_SIP_TRUNKS): group 2, exempt from the per-source rate and call limits"]
    for t in trunks:
        t = t.strip()
        if not t:
            continue
        if not re.fullmatch(r"[0-9a-fA-F:.]+(/\d{1,3})?", t):
            raise ValueError(f"SIP 中继地址无效：{t}")
        addr, _, mask = t.partition("/")
        lines.append(f"2 {addr} {mask or (128 if ':' in addr else 32)} 0 trunk")
    _replace(Path(path), "\n".join(lines) + "\n")


def provision(engine, data_dir: Path, realm: str) -> bool:
    """(Re)write the credentials of every active agent; True when Kamailio will see a change."""
    from domain.db import session_scope

    with session_scope(engine) as s:
        extensions = active_extensions(s)
    return write_subscribers(data_dir, realm, extensions)


def kamailio_defines(engine, data_dir: Path, *, realm: str, trunks: Iterable[str]) -> list[str]:
    """Provision the credentials and the trunk list; the ``-A`` options that point Kamailio's config at them."""
    provision(engine, data_dir, realm)
    trunk_file = run_dir(data_dir) / "trunks.list"
    write_trunks(trunk_file, trunks)
    return ["-A", f'AUTH_DB="text://{db_dir(data_dir).resolve()}"', "-A", f'TRUNKS="{trunk_file.resolve()}"',
            "-A", f'REALM="{realm}"']


def parse_trunks(value: str) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]
