"""The agent desk in a real browser during a real SIP call: live transcript, a suggestion of an entry
the knowledge manager has just published, and the ticket saved from the live draft."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from domain.db import session_scope
from domain.models import Call, Ticket
from serving.app import create_app
from tests.e2e.conftest import CALL_SECONDS
from tests.ui.conftest import CHROMIUM_ARGS, CHROMIUM, PASSWORD, shot

pytestmark = pytest.mark.slow


@pytest.fixture
def served(system):
    """The app as `hotline serve` runs it (live consumers on), over real HTTP."""
    import uvicorn

    app = create_app(system.settings, system.engine, live=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while not server.started and time.time() < deadline:
        time.sleep(0.2)
    assert httpx.get(base + "/readyz").status_code == 200
    yield base
    server.should_exit = True
    thread.join(timeout=15)


NEW_ENTRY = {"title": "社保卡遗失了怎么补办（新版流程）", "category": "劳动和社会保障/社会保险/社保卡",
             "body": "自2026年12月起，社保卡遗失补办免收工本费：本人携带身份证到来宾市民中心3号窗口办理，当场领卡。",
             "department": "来宾市人力资源和社会保障局", "keywords": ["社保卡", "补办", "遗失"]}


def _publish_as_knowledge_manager(base: str) -> None:
    token = httpx.post(base + "/api/auth/login", json={"username": "km", "password": PASSWORD, "mode": "bearer"}).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    created = httpx.post(base + "/api/knowledge/entries", json=NEW_ENTRY, headers=headers, timeout=60)
    assert created.status_code == 201, created.text
    for action in ("submit", "publish"):
        r = httpx.post(f"{base}/api/knowledge/entries/{created.json()['id']}/action", json={"action": action},
                       headers=headers, timeout=60)
        assert r.status_code == 200, r.text


def test_desk_follows_a_real_call_and_saves_its_ticket(system, served):
    from playwright.sync_api import sync_playwright

    _publish_as_knowledge_manager(served)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900}, locale="zh-CN")
        page.set_default_timeout(30_000)
        page.goto(served + "/")
        page.fill("#login-username", "agent")
        page.fill("#login-password", PASSWORD)
        page.press("#login-password", "Enter")
        page.wait_for_url(lambda url: "/ui/index.html" not in url and not url.endswith("/ui/"))
        page.goto(served + "/ui/agent.html")
        page.wait_for_selector("#live-status[data-status=open]")

        worker = system.start_worker()
        agent = system.agent_phone("8")
        caller = system.caller_phone("13978261453")
        caller.call("c1", worker.uri, wav=str(system.caller_wav), dtmf="1", dtmf_after=0.5,
                    **{"from": "13978261453"})
        agent.incoming(1, timeout=60)
        page.wait_for_selector("#caller-number:has-text('13978261453')")
        page.wait_for_selector("[data-testid=utt-final]", timeout=CALL_SECONDS * 1000)
        page.wait_for_selector("[data-testid=suggestion]:has-text('新版流程')", timeout=CALL_SECONDS * 1000)
        shot(page, "e2e-agent-desk-live-call")
        assert page.input_value("#tk-phone") == "13978261453"
        assert page.input_value("#tk-summary")
        page.click("#btn-save-ticket")
        page.wait_for_selector("[data-testid=ticket-saved]")
        number = page.get_attribute("[data-testid=ticket-saved]", "data-number")
        caller.send(op="hangup", id="c1")
        caller.ended("c1")
        browser.close()

    with session_scope(system.engine) as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        call = s.scalar(select(Call).where(Call.caller_number == "13978261453"))
    assert ticket is not None and ticket.phone == "13978261453" and ticket.summary
    assert ticket.call_id == call.id  # created from the confirmed draft of this call
