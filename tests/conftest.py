"""Shared fixtures: a migrated database (SQLite always, PostgreSQL when HOTLINE_TEST_DATABASE_URL is set),
the API app with demo data, logged-in clients per role, and the shared evaluation data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from domain.db import make_db_engine, session_scope, upgrade
from domain.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PG_URL = os.environ.get("HOTLINE_TEST_DATABASE_URL", "")
DB_BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_collection_modifyitems(items):
    """Real SIP calls on a loaded 2-core machine can miss a timing window: such tests get one rerun."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a missing component (shared data, Redis, Chromium, a SIP tool) fails the run: a skip there
    would pass a suite that tested nothing."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true 时不允许跳过（缺少测试所需组件）: {reason}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


def _fresh_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'hotline.db'}"
    engine = make_db_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return PG_URL


@pytest.fixture(params=DB_BACKENDS)
def db_url(request, tmp_path) -> str:
    """An empty database URL of each configured backend."""
    return _fresh_url(request.param, tmp_path)


@pytest.fixture
def engine(db_url):
    upgrade(db_url)
    eng = make_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """One directory for the models built from wheels (Whisper assembly, e5 conversion) across the session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def settings(tmp_path, models_dir) -> Settings:
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "var" / "models").symlink_to(models_dir)
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def app(engine, settings):
    from demo import seed_demo
    from serving.app import create_app

    with session_scope(engine) as session:
        seed_demo(session, settings.default_tenant)
    return create_app(settings, engine)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def login(client, username: str, password: str = "Hotline#2026", tenant: str = "laibin") -> dict:
    """Log in with a bearer token and return the Authorization header."""
    r = client.post("/api/auth/login", json={"tenant": tenant, "username": username, "password": password,
                                              "mode": "bearer"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture(scope="session")
def embedder(tmp_path_factory, models_dir):
    """The real e5 embedder, loaded once; passage vectors cached for the session."""
    from knowledge.embedding import CachedEmbedder, E5Embedder

    return CachedEmbedder(E5Embedder(models_dir), tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="session")
def demo_index(embedder):
    """The shipped demo knowledge base in a hybrid index."""
    from knowledge.kbfile import DEMO_KB, load_kb_docs
    from knowledge.retrieval import HybridIndex

    index = HybridIndex(embedder)
    index.add(load_kb_docs(DEMO_KB))
    return index
