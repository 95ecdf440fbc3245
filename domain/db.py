"""Engine, sessions and migrations.  SQLite is the embedded default; PostgreSQL works unchanged."""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import AppError
from domain.settings import get_settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
INT64 = (-(2**63), 2**63 - 1)


def _int64_parameters(_conn, _cursor, _statement, parameters, _context, _executemany) -> None:
    """Every integer a statement binds fits a 64-bit column: an id or a number from a request beyond that
    (``/api/tickets/99999999999999999999``) is the client's error, answered 400, not an overflow in the driver."""
    for row in parameters if isinstance(parameters, list) else [parameters]:  # a list: executemany's sets
        values = row.values() if isinstance(row, dict) else row if isinstance(row, (tuple, list)) else (row,)
        for value in values:
            if type(value) is int and not INT64[0] <= value <= INT64[1]:
                raise AppError("number_out_of_range", "数值超出允许范围（最大 9223372036854775807）", 400)


def make_db_engine(url: str) -> Engine:
    engine = _make_db_engine(url)
    event.listen(engine, "before_cursor_execute", _int64_parameters)
    return engine


def _make_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # durability and integrity on the embedded database
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache
def get_db_engine(url: str | None = None) -> Engine:
    return make_db_engine(url or get_settings().sqlalchemy_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_db_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work: commits on success (durable before the caller acknowledges), rolls back on error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def upgrade(url: str | None = None) -> None:
    """Run Alembic migrations to head."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().sqlalchemy_url).replace("%", "%%"))
    command.upgrade(cfg, "head")
