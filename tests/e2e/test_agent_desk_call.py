"""The agent desk in a real browser during a real SIP call: live transcript, a suggestion of an entry
the knowledge manager has just published that stays through a garbled caller turn and a reload of the desk
mid-call, and the ticket saved after the reload from the live draft, linked to the call."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
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
    deadline = time.time() + 300  # the live models load at start (minutes on a busy 2-core machine)
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


FIRST_TURN_S = 9.722  # d001: the caller's first turn (社保卡不见了，要怎么补办)
GARBLED = (20.262, 25.192)  # the caller's second turn, played backwards: the ASR writes nonsense


def _caller_wav_with_a_garbled_turn(system, tmp_path):
    audio, sr = sf.read(system.caller_wav, dtype="int16")
    a, b = (int(t * sr) for t in GARBLED)
    audio[a:b] = audio[a:b][::-1].copy()
    path = tmp_path / "caller-garbled.wav"
    sf.write(path, np.ascontiguousarray(audio), sr, subtype="PCM_16")
    return path


def test_desk_follows_a_real_call_and_saves_its_ticket(system, served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _publish_as_knowledge_manager(served)
    caller_wav = _caller_wav_with_a_garbled_turn(system, tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
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
        caller.call("c1", worker.uri, wav=str(caller_wav), dtmf="1", dtmf_after=0.5,
                    **{"from": "13978261453"})
        agent.incoming(1, timeout=60)
        page.wait_for_selector("#caller-number:has-text('13978261453')")
        page.wait_for_selector("[data-testid=utt-final]", timeout=CALL_SECONDS * 1000)
        right = page.locator("[data-testid=suggestion]:has-text('新版流程')")
        right.wait_for(timeout=CALL_SECONDS * 1000)
        trigger = right.locator("[data-testid=card-trigger]").inner_text()
        assert "社保卡" in trigger
        # the garbled turn comes and goes: the right card stays, as first shown
        finals = page.locator(".utt.caller:not(.partial)")
        first = int(finals.first.get_attribute("data-start"))  # call time on the desk counts the IVR too
        deadline = time.time() + CALL_SECONDS
        while int(finals.last.get_attribute("data-start")) < first + (GARBLED[0] - FIRST_TURN_S) * 1000 - 1000:
            assert time.time() < deadline, "the garbled turn never reached the desk"
            page.wait_for_timeout(500)
        garbled = finals.last.inner_text()
        shot(page, "e2e-agent-desk-garbled-turn")
        expect(right).to_have_count(1)
        assert right.locator("[data-testid=card-trigger]").inner_text() == trigger
        assert "补办" not in garbled  # played backwards, the turn says nothing the copilot can use
        # a reload mid-call restores the desk: the call, its transcript, the card and the draft
        finals = page.locator("[data-testid=utt-final]").count()
        page.reload()
        page.wait_for_selector("[data-testid=desk-restored]:visible")
        assert page.locator("[data-testid=utt-final]").count() >= finals
        expect(right).to_have_count(1)
        assert page.inner_text("#caller-number") == "13978261453"
        shot(page, "e2e-agent-desk-after-reload")
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
