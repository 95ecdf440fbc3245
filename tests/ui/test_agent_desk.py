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


def _hit(entry_id, title, score, trigger, first_ms, answer="办理指南见知识条目。"):
    return KnowledgeHit(entry_id=entry_id, title=title, answer=answer, score=score, trigger=trigger, first_ms=first_ms)


def _no_scroll(page) -> None:
    overflow = page.evaluate("[document.documentElement.scrollHeight - innerHeight, document.documentElement.scrollWidth - innerWidth]")
    assert overflow[0] <= 0 and overflow[1] <= 0, f"the desk scrolls at 1366×768 by {overflow}"


def test_card_stack_survives_a_garbled_turn_and_the_desk_survives_reload(open_as, live_app):
    """Cards stay (newest on top, with the phrase and score), pin and dismiss (stored as feedback), QA warnings are
    withdrawn once met, and a reload mid-call restores call link, transcript, cards, marks and typed draft; the
    ticket saved after the reload is linked to the call.  The desk fits 1366×768 without scrolling."""
    from domain.models import Call, KnowledgeEntry, KnowledgeFeedback

    agent_id, tenant_id = _agent_id(live_app, "agent")
    with live_app.state.sessions() as session:
        entries = session.scalars(select(KnowledgeEntry.id).where(KnowledgeEntry.tenant_id == tenant_id)
                                  .order_by(KnowledgeEntry.id).limit(2)).all()
        row = Call(tenant_id=tenant_id, call_uuid="ui-desk-reload", caller_number="13977205678", agent_id=agent_id)
        session.add(row)
        session.commit()
        call_pk = row.id
    page = open_as("agent", "/ui/agent.html", viewport=(1366, 768))
    page.wait_for_selector("#live-status[data-status=open]")
    bus = live_app.state.bus
    common = {"tenant_id": tenant_id, "call_id": "ui-desk-reload"}
    bus.publish(CallState(**common, state="talking", caller="13977205678", agent_id=agent_id,
                          detail={"call_db_id": call_pk}))
    page.wait_for_selector("#caller-number:has-text('13977205678')")
    bus.publish(TranscriptFinal(**common, leg="caller", role="caller", start_ms=9700, end_ms=15000,
                                text="我的社保卡不见了，要怎么补办啊"))
    right = _hit(entries[0], "社保卡遗失补办", 0.96, "我的社保卡不见了，要怎么补办啊", 9700,
                 "社保卡遗失后先挂失，再到社保服务窗口补办，工本费20元。")
    # every suggestion carries the whole card stack and draft, as the copilot sends them
    topic = {"category": "劳动和社会保障/社会保险/社保卡", "category_confidence": 0.9,
             "ticket_draft": {"summary": "市民咨询社保卡遗失补办", "incident_address": "兴宾区江南路",
                              "confidence": {"summary": 0.9, "incident_address": 0.4}}}
    bus.publish(Suggestion(**common, hits=[right], **topic))
    card = page.locator("[data-testid=suggestion]").first
    expect(card).to_contain_text("社保卡遗失补办")
    expect(card).to_contain_text("匹配 96%")
    expect(card.locator("[data-testid=card-trigger]")).to_contain_text("我的社保卡不见了")
    # a low-confidence field is marked for the agent to confirm; typing into it confirms it
    expect(page.locator("label[for=tk-incident_address] [data-testid=unconfirmed]")).to_have_text("待确认")
    assert page.locator("label[for=tk-summary] [data-testid=unconfirmed]").count() == 0

    # a garbled turn: the copilot finds nothing new, the right card stays
    bus.publish(TranscriptFinal(**common, leg="caller", role="caller", start_ms=43000, end_ms=46000,
                                text="那个鸟鸟前猫秘股就是那个嗯"))
    bus.publish(Suggestion(**common, hits=[right], no_good_match=True, **topic))
    page.wait_for_selector(".utt:has-text('鸟鸟前猫')")
    expect(page.locator("[data-testid=suggestion]")).to_have_count(1)
    assert page.locator("[data-testid=no-match]").count() == 0
    # a new card comes on top of the old one; pin the old one back to the top, dismiss the new one
    other = _hit(entries[1], "社保卡异地使用", 0.41, "在外地能不能用", 50000)
    bus.publish(Suggestion(**common, hits=[other, right], **topic))
    expect(page.locator("[data-testid=suggestion]").first).to_contain_text("社保卡异地使用")
    page.locator(f"[data-testid=suggestion][data-entry='{entries[0]}'] [data-testid=pin-card]").click()
    expect(page.locator("[data-testid=suggestion]").first).to_contain_text("社保卡遗失补办")
    page.locator(f"[data-testid=suggestion][data-entry='{entries[1]}'] [data-testid=dismiss-card]").click()
    expect(page.locator("[data-testid=suggestion]")).to_have_count(1)
    with live_app.state.sessions() as session:
        fb = session.scalar(select(KnowledgeFeedback).where(KnowledgeFeedback.entry_id == entries[1],
                                                            KnowledgeFeedback.kind == "unhelpful"))
        assert fb is not None and fb.call_id == call_pk

    # live QA: a warning, then withdrawn once the agent reads back
    bus.publish(QAWarning(**common, item="read_back", message="尚未复述来电人诉求，请在结束前复述确认"))
    page.wait_for_selector("[data-testid=qa-warning][data-item=read_back]")
    bus.publish(QAWarning(**common, item="read_back", message="已满足：结束前复述诉求", resolved=True))
    expect(page.locator("[data-testid=qa-warning]")).to_have_count(0)

    page.fill("#tk-incident_address", "兴宾区河西街道江南路")
    assert page.locator("label[for=tk-incident_address] [data-testid=unconfirmed]").count() == 0
    page.wait_for_timeout(800)  # the typed field reaches the server (debounced)
    shot(page, "agent-desk-card-stack")
    _no_scroll(page)

    page.reload()
    page.wait_for_selector("[data-testid=desk-restored]:visible")
    expect(page.locator(".utt:not(.partial)")).to_have_count(2)
    expect(page.locator("[data-testid=suggestion]")).to_have_count(1)
    expect(page.locator("[data-testid=suggestion]").first).to_contain_text("社保卡遗失补办")
    expect(page.locator("#tk-incident_address")).to_have_value("兴宾区河西街道江南路")
    expect(page.locator("#tk-summary")).to_have_value("市民咨询社保卡遗失补办")
    assert page.locator("#caller-number").inner_text() == "13977205678"
    assert page.is_enabled("#btn-hold")
    # the call goes on after the reload: its next sentence, card and warning still reach the desk
    bus.publish(TranscriptFinal(**common, leg="agent", role="agent", start_ms=52000, end_ms=56000,
                                text="跟您核对一下，您反映社保卡丢失需要补办"))
    page.wait_for_selector(".utt:has-text('跟您核对一下')")
    bus.publish(QAWarning(**common, item="closing", message="请使用规范结束语"))
    page.wait_for_selector("[data-testid=qa-warning][data-item=closing]")
    shot(page, "agent-desk-after-reload")
    _no_scroll(page)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-testid=ticket-saved]")
    number = page.get_attribute("[data-testid=ticket-saved]", "data-number")
    with live_app.state.sessions() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket.call_id == call_pk and ticket.incident_address == "兴宾区河西街道江南路"
    # the next call is not a restored one
    bus.publish(CallState(**common, state="ended", agent_id=agent_id))
    bus.publish(CallState(tenant_id=tenant_id, call_id="ui-desk-next", state="talking", caller="13977200000",
                          agent_id=agent_id))
    page.wait_for_selector("#caller-number:has-text('13977200000')")
    expect(page.locator("[data-testid=desk-restored]")).to_be_hidden()
    assert not page.errors, page.errors
