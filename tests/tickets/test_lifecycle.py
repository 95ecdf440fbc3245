"""The ticket state machine: every legal transition, every illegal one, numbering, creation rules and SLA timers."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from domain.errors import AppError
from domain.models import Call, Recording, Ticket, TranscriptSegment
from tickets.lifecycle import (OPEN_STATES, STATE_LABELS, TRANSITIONS, SlaPolicy, SlaRule, TicketDraft,
                            create_from_hangup, create_ticket, history, sla_status, supervise, transition)

ARGS = {"dispatch": {"department": "市住建局"}, "redispatch": {"department": "兴宾区政府"},
        "return": {"reason": "不属于本单位职责"}, "complete": {"result": "已修复路灯"},
        "callback": {"satisfaction": 5}, "reopen": {"reason": "市民反映问题未解决"}}
# A path of actions that reaches each state from 'created'.
PATH_TO = {"created": [], "dispatched": ["dispatch"], "signed": ["dispatch", "sign"],
           "returned": ["dispatch", "return"], "in_progress": ["dispatch", "sign", "start"],
           "completed": ["dispatch", "sign", "start", "complete"],
           "callback": ["dispatch", "sign", "start", "complete", "callback"],
           "closed": ["dispatch", "sign", "start", "complete", "callback", "close"]}
DRAFT = TicketDraft(category="城乡建设/市政设施/路灯", request_type="求助", caller_name="张先生", phone="13800138000",
                    incident_address="兴宾区城东路 12 号", summary="路灯不亮已一周", district="兴宾区")


def _ticket(session, tenant_id, clock, state="created") -> Ticket:
    ticket = create_ticket(session, tenant_id, DRAFT, actor="agent", now=clock())
    for action in PATH_TO[state]:
        transition(session, ticket, action, actor="agent", now=clock(), **ARGS.get(action, {}))
    assert ticket.state == state
    return ticket


@pytest.mark.parametrize("state", list(STATE_LABELS))
@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_every_action_from_every_state(session, tenant_id, clock, state, action):
    ticket = _ticket(session, tenant_id, clock, state)
    events_before = len(history(session, ticket))
    spec = TRANSITIONS[action]
    if state in spec.sources:
        event = transition(session, ticket, action, actor="agent", now=clock(), **ARGS.get(action, {}))
        assert ticket.state == spec.target
        assert (event.from_state, event.to_state, event.action) == (state, spec.target, action)
    else:
        with pytest.raises(AppError) as err:
            transition(session, ticket, action, actor="agent", now=clock(), **ARGS.get(action, {}))
        assert err.value.code == "illegal_transition" and err.value.status == 409
        assert f"当前状态为「{STATE_LABELS[state]}」" in err.value.message
        assert f"不能执行「{spec.label}」" in err.value.message
        assert ticket.state == state
        assert len(history(session, ticket)) == events_before


def test_every_state_is_reachable_and_every_transition_is_covered():
    targets = {t.target for t in TRANSITIONS.values()} | {"created"}
    assert targets == set(STATE_LABELS)
    assert set(PATH_TO) == set(STATE_LABELS)


@pytest.mark.parametrize("action", [a for a, t in TRANSITIONS.items() if t.requires])
def test_required_fields(session, tenant_id, clock, action):
    state = next(s for s in PATH_TO if s in TRANSITIONS[action].sources)
    ticket = _ticket(session, tenant_id, clock, state)
    with pytest.raises(AppError) as err:
        transition(session, ticket, action, actor="agent", now=clock())
    assert err.value.code == "missing_field" and "需要填写" in err.value.message
    assert ticket.state == state


def test_satisfaction_range_and_unknown_action(session, tenant_id, clock):
    ticket = _ticket(session, tenant_id, clock, "completed")
    with pytest.raises(AppError, match="1–5"):
        transition(session, ticket, "callback", actor="agent", satisfaction=9)
    with pytest.raises(AppError) as err:
        transition(session, ticket, "teleport", actor="agent")
    assert err.value.code == "unknown_action"


def test_full_lifecycle_with_return_redispatch_and_reopen(session, tenant_id, clock):
    ticket = _ticket(session, tenant_id, clock)
    steps = [("dispatch", {"department": "市住建局"}), ("return", {"reason": "非本单位职责"}),
             ("redispatch", {"department": "兴宾区城管局"}), ("sign", {}), ("start", {}),
             ("complete", {"result": "已更换灯泡"}), ("callback", {"satisfaction": 2}), ("close", {}),
             ("reopen", {"reason": "回访不满意"}), ("dispatch", {"department": "兴宾区城管局"}), ("sign", {}),
             ("complete", {"result": "已更换整套线路"}), ("close", {})]
    for action, kwargs in steps:
        clock.advance(hours=1)
        transition(session, ticket, action, actor="agent", now=clock(), **kwargs)
    assert ticket.state == "closed" and ticket.reopen_count == 1 and ticket.department == "兴宾区城管局"
    assert ticket.result == "已更换整套线路" and ticket.satisfaction is None
    events = history(session, ticket)
    assert [e.action for e in events] == ["create"] + [a for a, _ in steps]
    assert events[2].note == "非本单位职责" and events[9].note == "回访不满意"
    assert ticket.due_at.replace(tzinfo=None) > events[9].at.replace(tzinfo=None)  # reopening restarts the SLA


def test_answered_on_the_phone_completes_directly(session, tenant_id, clock):
    ticket = _ticket(session, tenant_id, clock)
    transition(session, ticket, "complete", actor="agent", now=clock(), result="已当场解答")
    transition(session, ticket, "close", actor="agent", now=clock())
    assert ticket.state == "closed"


def test_numbers_are_readable_unique_and_restart_each_local_day(session, tenant_id, clock):
    numbers = [create_ticket(session, tenant_id, DRAFT, actor="agent", now=clock()).number for _ in range(3)]
    assert numbers == ["LB20261124-0001", "LB20261124-0002", "LB20261124-0003"]
    clock.advance(hours=15)  # 00:30 on the 25th in Laibin, still the 24th in UTC
    assert create_ticket(session, tenant_id, DRAFT, actor="agent", now=clock()).number == "LB20261125-0001"


def _call(session, tenant_id) -> Call:
    call = Call(tenant_id=tenant_id, call_uuid="c-1", caller_number="13900000001", district="兴宾区")
    session.add(call)
    session.flush()
    session.add(Recording(tenant_id=tenant_id, call_id=call.id, path="rec/c-1.wav"))
    for i, text in enumerate(["您好", "我家门口路灯坏了"]):
        session.add(TranscriptSegment(tenant_id=tenant_id, call_id=call.id, leg="caller", speaker_role="caller",
                                      start_ms=i * 1000, end_ms=i * 1000 + 900, text=text))
    session.flush()
    return call


def test_hangup_needs_a_confirmed_draft_unless_automatic(session, tenant_id, clock):
    call = _call(session, tenant_id)
    with pytest.raises(AppError) as err:
        create_from_hangup(session, call, DRAFT, confirmed=False, actor="agent", now=clock())
    assert err.value.code == "draft_not_confirmed" and "确认" in err.value.message
    with pytest.raises(AppError):
        create_from_hangup(session, call, None, confirmed=True, actor="agent", now=clock())
    assert session.scalar(select(Ticket).where(Ticket.call_id == call.id)) is None

    ticket = create_from_hangup(session, call, DRAFT.model_copy(update={"phone": ""}), confirmed=True,
                                actor="agent", now=clock())
    assert ticket.phone == "13900000001" and ticket.source == "hotline" and ticket.call_id == call.id
    assert len(ticket.attachments["recording_ids"]) == 1 and len(ticket.attachments["transcript_segment_ids"]) == 2
    assert ticket.attachments["draft"]["category"] == DRAFT.category
    with pytest.raises(AppError) as err:
        create_from_hangup(session, call, DRAFT, confirmed=True, actor="agent", now=clock())
    assert err.value.code == "ticket_exists"

    call2 = Call(tenant_id=tenant_id, call_uuid="c-2", caller_number="13900000002")
    session.add(call2)
    session.flush()
    auto = create_from_hangup(session, call2, DRAFT, confirmed=False, auto_create=True, actor="system", now=clock())
    assert auto.source == "auto"


def test_sla_per_category_and_supervision_with_a_controllable_clock(session, tenant_id, clock):
    policy = SlaPolicy(default_hours=100, rules=[SlaRule(category_prefix="城乡建设", hours=10),
                                                 SlaRule(category_prefix="城乡建设/市政设施", hours=50)],
                       remind_fraction=0.8, escalate_after_hours=5)
    lamp = create_ticket(session, tenant_id, DRAFT, actor="agent", now=clock(), policy=policy)
    other = create_ticket(session, tenant_id, DRAFT.model_copy(update={"category": "教育/义务教育"}), actor="agent",
                          now=clock(), policy=policy)
    water = create_ticket(session, tenant_id, DRAFT.model_copy(update={"category": "城乡建设/公用事业/停水"}),
                          actor="agent", now=clock(), policy=policy)
    assert lamp.due_at - clock() == timedelta(hours=50)  # the longest matching prefix wins
    assert other.due_at - clock() == timedelta(hours=100) and water.due_at - clock() == timedelta(hours=10)
    transition(session, water, "dispatch", actor="agent", now=clock(), department="市水务公司")

    assert supervise(session, tenant_id, now=clock(), policy=policy) == []
    assert sla_status(water, clock(), policy)["remaining_s"] == 10 * 3600
    clock.advance(hours=7, minutes=59)
    assert supervise(session, tenant_id, now=clock(), policy=policy) == []
    clock.advance(minutes=1)  # 80 % of 10 h
    assert [(t.id, lvl) for t, lvl in supervise(session, tenant_id, now=clock(), policy=policy)] == [(water.id, 1)]
    assert supervise(session, tenant_id, now=clock(), policy=policy) == []  # raised once
    clock.advance(hours=2)
    assert [(t.id, lvl) for t, lvl in supervise(session, tenant_id, now=clock(), policy=policy)] == [(water.id, 2)]
    assert water.supervised and sla_status(water, clock(), policy)["remaining_s"] == 0
    clock.advance(hours=5)
    assert [(t.id, lvl) for t, lvl in supervise(session, tenant_id, now=clock(), policy=policy)] == [(water.id, 3)]
    assert [e.action for e in history(session, water)][-3:] == ["remind", "overdue", "escalate"]
    assert all(e.from_state == e.to_state == "dispatched" for e in history(session, water)[-3:])

    transition(session, lamp, "complete", actor="agent", now=clock(), result="已修复")  # 17 h < 50 h
    assert sla_status(lamp, clock(), policy)["on_time"] is True and lamp.state not in OPEN_STATES
    transition(session, water, "sign", actor="agent", now=clock())
    transition(session, water, "complete", actor="agent", now=clock(), result="已恢复供水")
    assert sla_status(water, clock(), policy)["on_time"] is False
    transition(session, water, "reopen", actor="supervisor", now=clock(), reason="再次停水")
    assert water.escalation_level == 0 and not water.supervised
    clock.advance(hours=40)  # lamp done, water reopened 40 h ago, other at 57 h of 100
    levels = {t.id: lvl for t, lvl in supervise(session, tenant_id, now=clock(), policy=policy)}
    assert levels == {water.id: 3}


def test_numbering_is_unique_under_concurrent_creation(shared_engine, tenant_id, clock):
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timezone

    from domain.db import session_scope

    day = datetime(2027, 3, 1, 2, 0, tzinfo=timezone.utc)

    def make(_):
        with session_scope(shared_engine) as s:
            return create_ticket(s, tenant_id, DRAFT, actor="agent", now=day).number

    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = list(pool.map(make, range(24)))
    assert sorted(numbers) == [f"LB20270301-{i:04d}" for i in range(1, 25)]


def test_sla_on_working_days_with_holidays_and_make_up_days(session, tenant_id, clock):
    from datetime import date, datetime, timezone
    from zoneinfo import ZoneInfo

    LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # the default tenant zone SlaPolicy counts days in

    friday_4pm = datetime(2026, 11, 27, 16, 0, tzinfo=LOCAL_TZ)
    policy = SlaPolicy(default_hours=24, rules=[], working_days_only=True)
    assert policy.deadline(friday_4pm, "x") == datetime(2026, 11, 30, 16, 0, tzinfo=LOCAL_TZ)  # weekend skipped
    assert policy.model_copy(update={"holidays": [date(2026, 11, 30)]}).deadline(friday_4pm, "x") == \
        datetime(2026, 12, 1, 16, 0, tzinfo=LOCAL_TZ)
    assert policy.model_copy(update={"workdays": [date(2026, 11, 28)]}).deadline(friday_4pm, "x") == \
        datetime(2026, 11, 28, 16, 0, tzinfo=LOCAL_TZ)
    assert policy.hours_between(friday_4pm, datetime(2026, 11, 30, 2, 0, tzinfo=LOCAL_TZ)) == 10
    assert SlaPolicy(default_hours=24, rules=[]).deadline(friday_4pm, "x") == friday_4pm + timedelta(hours=24)

    ticket = create_ticket(session, tenant_id, DRAFT, actor="agent", now=friday_4pm.astimezone(timezone.utc),
                           policy=policy)
    sunday = datetime(2026, 11, 29, 20, 0, tzinfo=LOCAL_TZ).astimezone(timezone.utc)
    assert supervise(session, tenant_id, now=sunday, policy=policy) == []  # 16 working hours still left
    monday_11 = datetime(2026, 11, 30, 11, 30, tzinfo=LOCAL_TZ).astimezone(timezone.utc)  # 4.5 h < 20 % of 24 h
    assert [(t.id, lvl) for t, lvl in supervise(session, tenant_id, now=monday_11, policy=policy)] == [(ticket.id, 1)]
    monday_5pm = datetime(2026, 11, 30, 17, 0, tzinfo=LOCAL_TZ).astimezone(timezone.utc)
    assert [lvl for _, lvl in supervise(session, tenant_id, now=monday_5pm, policy=policy)] == [2]
