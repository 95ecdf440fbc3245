"""Ticket fixtures: a migrated database with the demo tenant, a session on it, and a controllable clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.db import make_engine, session_factory, session_scope, upgrade
from domain.demo import seed_demo
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


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 1, 30, tzinfo=timezone.utc))  # 09:30 in Laibin


@pytest.fixture(scope="module", params=DB_BACKENDS)
def shared_engine(request, tmp_path_factory):
    """One migrated database per backend and module (other modules reset PostgreSQL); tests roll back."""
    url = _fresh_url(request.param, tmp_path_factory.mktemp("tickets-db"))
    upgrade(url)
    eng = make_engine(url)
    with session_scope(eng) as s:
        seed_demo(s)
    yield eng
    eng.dispose()


@pytest.fixture
def tenant_id(shared_engine) -> int:
    with session_scope(shared_engine) as s:
        return seed_demo(s).id


@pytest.fixture
def session(shared_engine, tenant_id):
    """A session whose work is rolled back after the test (nothing is committed)."""
    s = session_factory(shared_engine)()
    yield s
    s.rollback()
    s.close()
