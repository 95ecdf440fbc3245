"""Ticket fixtures: a migrated database with the demo tenant, a session on it, and a controllable clock."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest

from domain import accounts
from domain.db import make_db_engine, session_factory, session_scope, upgrade
from domain.models import Agent
from tests.conftest import DB_BACKENDS, _fresh_url


class Clock:
    """A settable clock: ``clock()`` is now, ``clock.advance(hours=…)`` moves it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test instead of running the migrations again."""
    path = tmp_path_factory.mktemp("template") / "hotline.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def engine(db_url, sqlite_template):
    """Overrides the shared fixture: same empty migrated database, faster on SQLite."""
    if db_url.startswith("sqlite"):
        shutil.copyfile(sqlite_template, db_url.split("///", 1)[1])
    else:
        upgrade(db_url)
    eng = make_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 1, 30, tzinfo=timezone.utc))  # 09:30 in Laibin


def seed_tenant(session) -> int:
    """The 来宾 tenant and two agents, without the demo users (password hashing is slow by design)."""
    accounts.ensure_roles(session)
    tenant = accounts.ensure_tenant(session, "laibin", "来宾市12345政务服务便民热线")
    for work_no, name in (("8", "李敏"), ("15", "王芳")):
        session.add(Agent(tenant_id=tenant.id, work_no=work_no, name=name))
    session.flush()
    return tenant.id


@pytest.fixture(scope="module", params=DB_BACKENDS)
def shared_engine(request, tmp_path_factory):
    """One migrated database per backend and module (other modules reset PostgreSQL); tests roll back."""
    url = _fresh_url(request.param, tmp_path_factory.mktemp("tickets-db"))
    upgrade(url)
    eng = make_db_engine(url)
    with session_scope(eng) as s:
        seed_tenant(s)
    yield eng
    eng.dispose()


@pytest.fixture
def tenant_id(shared_engine) -> int:
    with session_scope(shared_engine) as s:
        return accounts.ensure_tenant(s, "laibin").id


@pytest.fixture
def session(shared_engine, tenant_id):
    """A session whose work is rolled back after the test (nothing is committed)."""
    s = session_factory(shared_engine)()
    yield s
    s.rollback()
    s.close()
