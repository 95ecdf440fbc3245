"""The agent desk renders live events from /ws/agent: transcript partials settling into finals, suggestions with
key facts and copy-to-ticket, the live ticket draft, QA warnings and the 110 alert."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from domain.call_events import CallState, PoliceAlert, QAWarning, Suggestion, KnowledgeHit, TranscriptFinal, TranscriptPartial
from domain.models import Agent, Ticket, User
from tests.ui.conftest import shot


def _agent_id(app, username: str) -> tuple[int, int]:
    with app.state.sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
        return session.scalar(select(Agent.id).where(Agent.user_id == user.id)), user.tenant_id


def test_desk_renders_live_events(open_as, live_app):
    agent_id, tenant_id = _agent_id(live_app, "agent")
    with live_app.state.sessions() as session:  # a ticket from an earlier call of the same citizen
        session.add(Ticket(tenant_id=tenant_id, number="LB-EARLIER-1", phone="13877201234", caller_name="张先生",
                           address="兴宾区城东路8号", category="城乡建设/市政设施", summary="路灯不亮"))
        session.commit()
    page = open_as("agent", "/ui/agent.html")
    page.wait_for_selector("#live-status[data-status=open]")
    if page.evaluate("fetch('/api/telephony/me').then(r => r.status)") != 404:  # the telephony API is mounted
        page.click("#btn-signin")
        page.wait_for_selector("#agent-state[data-state=not_ready]")
        page.keyboard.press("Alt+2")
        page.wait_for_selector("#agent-state[data-state=ready]")
    bus = live_app.state.bus
    call = "ui-call-1"
    common = {"tenant_id": tenant_id, "call_id": call}
    bus.publish(CallState(**common, state="talking", caller="13877201234", agent_id=agent_id))
    page.wait_for_selector("#caller-number:has-text('13877201234')")
    assert page.input_value("#tk-phone") == "13877201234"
    page.wait_for_selector("[data-testid=caller-tickets]:has-text('LB-EARLIER-1')")
    assert page.inner_text("#caller-name") == "张先生"
    assert page.input_value("#tk-address") == "兴宾区城东路8号"

    bus.publish(TranscriptPartial(**common, leg="caller", role="caller", start_ms=500, end_ms=1500, text="我想问一下医保"))
    page.wait_for_selector("[data-testid=utt-partial]:has-text('我想问一下医保')")
    bus.publish(TranscriptFinal(**common, leg="caller", role="caller", start_ms=500, end_ms=3000,
                                text="我想问一下医保怎么缴费"))
    page.wait_for_selector("[data-testid=utt-final]:has-text('我想问一下医保怎么缴费')")
    assert page.locator("[data-testid=utt-partial]").count() == 0
    bus.publish(TranscriptFinal(**common, leg="agent", role="agent", start_ms=3200, end_ms=5000, text="您好，请讲"))
    page.wait_for_selector(".utt.agent:has-text('您好，请讲')")

    hit = KnowledgeHit(entry_id=42, title="城乡居民医保缴费", answer="每年9月至12月可通过微信缴纳城乡居民医保，个人缴费380元。",
                       score=0.83, key_facts=["9月至12月", "个人缴费380元"], matched_spans=["医保"])
    bus.publish(Suggestion(**common, hits=[hit], category="社会保障/医疗保险", category_confidence=0.9,
                           ticket_draft={"category": "社会保障/医疗保险", "summary": "市民咨询城乡居民医保缴费方式",
                                         "request_type": "咨询"}))
    page.wait_for_selector("[data-testid=suggestion] mark:has-text('个人缴费380元')")
    expect(page.locator("#tk-summary")).to_have_value(re.compile("医保缴费"))
    assert page.input_value("#tk-category") == "社会保障/医疗保险"
    # the agent edits the summary; a later draft update must not overwrite it
    page.fill("#tk-summary", "市民咨询医保缴费时间和金额")
    bus.publish(Suggestion(**common, hits=[hit], ticket_draft={"summary": "覆盖", "district": "兴宾区"}))
    expect(page.locator("#tk-district")).to_have_value("兴宾区")
    assert page.input_value("#tk-summary") == "市民咨询医保缴费时间和金额"
    page.keyboard.press("Alt+c")
    assert "个人缴费380元" in page.input_value("#tk-result")

    bus.publish(QAWarning(**common, item="readback", message="尚未向市民复述诉求要点"))
    page.wait_for_selector("[data-testid=qa-warning]:has-text('复述')")
    bus.publish(PoliceAlert(**common, reason="正在发生的打架斗殴", evidence="楼下有人持刀打架"))
    page.wait_for_selector("#police-alert:visible")
    assert page.is_enabled("#btn-transfer-110")
    # events of a call that is not this agent's never reach the desk
    bus.publish(TranscriptFinal(tenant_id=tenant_id, call_id="someone-else", leg="caller", role="caller", start_ms=0,
                                end_ms=1, text="别人的通话"))
    page.wait_for_timeout(300)
    assert page.locator("text=别人的通话").count() == 0
    # save the ticket from the draft (Ctrl+Enter); the copied answer completes it at once
    page.focus("#tk-summary")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-testid=ticket-saved]:has-text('已保存工单')")
    number = page.get_attribute("[data-testid=ticket-saved]", "data-number")
    with live_app.state.sessions() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket.summary == "市民咨询医保缴费时间和金额"
        assert ticket.category == "社会保障/医疗保险" and ticket.phone == "13877201234"
        assert ticket.state == "completed" and "个人缴费380元" in ticket.result
        assert ticket.kb_entry_ids == [42]
    shot(page, "agent-desk")
    assert not page.errors, page.errors


def test_agents_message_each_other(open_as):
    sender = open_as("agent", "/ui/agent.html")
    sender.fill("#msg-to", "15")
    sender.fill("#msg-text", "王芳，帮我看一下社保窗口的电话")
    sender.press("#msg-text", "Enter")
    sender.wait_for_selector("#messages:has-text('我 → 15号')")
    receiver = open_as("agent2", "/ui/agent.html")
    receiver.wait_for_selector("[data-testid=message]:has-text('社保窗口的电话')")
    assert "8号" in receiver.inner_text("[data-testid=message]")
