"""Secrets kept in the data directory (the worker control token, the SIP credential secret): created once,
mode 0600, by whichever process needs one first."""
from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path


def read_or_create(path: Path) -> str:
    """The secret in ``path`` (64 hex digits), written atomically if there is none yet: when two processes create
    it at once, the first link wins and both read the same secret."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_native_id()}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
