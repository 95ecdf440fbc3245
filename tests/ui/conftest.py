"""A running app (uvicorn in a thread, temp SQLite, demo data) and headless Chromium for the UI tests."""
from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from domain.db import make_db_engine, session_scope, upgrade
from domain.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "Hotline#2026"
ROLE_USERS = {"agent": "agent", "qa_reviewer": "qa", "knowledge_manager": "km", "supervisor": "supervisor",
              "evaluator": "evaluator", "admin": "admin"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def vendored_charts() -> None:
    if not (REPO / "serving/web/vendor/echarts/echarts.min.js").exists():
        done = subprocess.run([str(REPO / "scripts/vendor_assets.sh")], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"scripts/vendor_assets.sh failed: {done.stderr}")


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, vendored_charts):
    """The real app served by uvicorn on 127.0.0.1 with a migrated temp SQLite and the demo data."""
    import uvicorn

    from demo import seed_demo
    from serving.app import create_app
    from tests.ui.seed import seed_knowledge, seed_operations

    tmp = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{tmp / 'hotline.db'}"
    upgrade(url)
    engine = make_db_engine(url)
    settings = Settings(data_dir=tmp / "var", secret_key="ui-test-secret", eval_data_root=REPO.parent / "shared" / "data")
    with session_scope(engine) as session:
        seed_demo(session, settings.default_tenant)
        seed_operations(session)
        seed_knowledge(session)
    app = create_app(settings, engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200 and server.started:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        pytest.fail("the app did not start")
    app.state.base_url = base
    yield app
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_as(live_app, browser):
    """open_as(role, path, viewport=(w, h)) → a logged-in page (logged in through the login form)."""
    contexts = []

    def _open(role: str, path: str | None = None, viewport: tuple[int, int] = (1366, 768)):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="zh-CN")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(live_app.state.base_url + "/")
        page.fill("#login-username", ROLE_USERS.get(role, role))
        page.fill("#login-password", PASSWORD)
        page.press("#login-password", "Enter")
        page.wait_for_url(lambda url: "/ui/index.html" not in url and not url.endswith("/ui/"))
        if not path:
            page.wait_for_selector("#whoami")
        else:
            page.goto(live_app.state.base_url + path)
            page.wait_for_selector("#whoami")
        return page

    yield _open
    for context in contexts:
        context.close()


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
