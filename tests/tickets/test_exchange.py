"""The 110 exchange and the provincial platform sync over real HTTP against their simulators: handover and
events back, dispatch from either side, duplicates, out-of-order events, bad signatures, key rotation,
timeouts and retries, call records, capacity query and reconciliation."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from domain.db import session_factory, session_scope
from domain.models import (Agent, Call, OutboxMessage, ParkedEvent, Recording, SmsMessage, Ticket, TranscriptSegment,
                           utcnow)
from tests.tickets.conftest import seed_tenant
from tickets.integrations import exchange
from tickets.integrations.outbox import RetryPolicy, SignedClient, deliver_due
from tickets.integrations.signing import KeyRing, keyring
from tickets.lifecycle import TicketDraft, create_ticket, history, transition
from tickets.notify import notify
from tickets.simulators import LocalServer
from tickets.simulators.exchange_peer import ExchangePeerSim

KEYS = {"k1": "old-shared-secret", "k2": "new-shared-secret"}
DRAFT = TicketDraft(category="公安政法/治安管理/噪音扰民", request_type="举报", caller_name="李女士",
                    phone="13800138000", incident_address="兴宾区河西路8号", summary="楼下KTV深夜聚众斗殴",
                    district="兴宾区")


class Env:
    def __init__(self, engine, settings, police, provincial, city):
        self.engine, self.settings, self.police, self.provincial, self.city = engine, settings, police, provincial, city
        self.sessions = session_factory(engine)

    def deliver(self, channel: str, now=None, timeout_s: float = 5.0) -> dict:
        peer = self.police if channel == exchange.POLICE110 else self.provincial
        client = SignedClient(peer.url, keyring(self.settings, channel), timeout_s=timeout_s)
        try:
            return deliver_due(self.sessions, channel, client, now=now or utcnow(), policy=RetryPolicy(max_attempts=3))
        finally:
            client.close()

    def act(self, number: str, action: str, **kw):
        with session_scope(self.engine) as s:
            ticket = s.scalar(select(Ticket).where(Ticket.number == number))
            notify(s, ticket, transition(s, ticket, action, actor="agent", **kw), self.settings)

    def ticket(self, **where) -> Ticket:
        with session_scope(self.engine) as s:
            return s.scalar(select(Ticket).filter_by(**where))


@pytest.fixture
def env(engine, settings):
    from serving.app import create_app

    with session_scope(engine) as s:
        seed_tenant(s)
    ring = KeyRing("k2", KEYS)
    police, provincial = ExchangePeerSim("police110", ring), ExchangePeerSim("provincial", ring)
    with LocalServer(police.app) as p1, LocalServer(provincial.app) as p2:
        police.url, provincial.url = p1.url, p2.url
        settings.police110_url, settings.provincial_url = p1.url, p2.url
        settings.integration_keys = json.dumps({"police110": {"active": "k2", "keys": KEYS},
                                                "provincial": {"active": "k2", "keys": KEYS}})
        with LocalServer(create_app(settings, engine)) as city:
            police.city_url = provincial.city_url = city.url
            yield Env(engine, settings, police, provincial, city)


def _city_ticket(env, with_call: bool = False) -> str:
    with session_scope(env.engine) as s:
        call = None
        if with_call:
            call = Call(tenant_id=1, call_uuid="police-call-1", caller_number="13800138000", ended_at=utcnow())
            s.add(call)
            s.flush()
            s.add(TranscriptSegment(tenant_id=1, call_id=call.id, leg="caller", speaker_role="caller", start_ms=0,
                                    end_ms=2000, text="楼下有人打架，已经见血了"))
            s.flush()
        ticket = create_ticket(s, 1, DRAFT, actor="agent", call=call)
        notify(s, ticket, history(s, ticket)[-1], env.settings)
        return ticket.number


def test_handover_to_110_and_its_events_back_in_any_order(env):
    number = _city_ticket(env, with_call=True)
    env.act(number, "dispatch", department=exchange.POLICE_DEPARTMENT)
    assert env.deliver("police110") == {"sent": 1, "retried": 0, "dead": 0}
    handed = env.police.events[0]
    assert (handed["type"], handed["order_id"], handed["seq"]) == ("dispatch", number, 1)
    assert handed["ticket"]["summary"] == DRAFT.summary and handed["ticket"]["phone"] == DRAFT.phone
    assert handed["call"]["call_uuid"] == "police-call-1" and handed["transcript"][0]["text"] == "楼下有人打架，已经见血了"

    # complete arrives before sign: parked, then both apply in order when sign comes
    r = env.police.send(number, "complete", seq=2, result="民警已到场处置")
    assert r.status_code == 200 and r.json() == {"status": "parked", "waiting_for_seq": 1}
    assert env.ticket(number=number).state == "dispatched"
    r = env.police.send(number, "complete", seq=2, result="民警已到场处置")  # the peer retries: still parked once
    assert r.json()["status"] == "parked"
    r = env.police.send(number, "sign", seq=1)
    assert r.json()["status"] == "applied" and r.json()["state"] == "completed"
    assert r.json()["applied"] == [f"police110-{number}-1", f"police110-{number}-2"]
    ticket = env.ticket(number=number)
    assert ticket.state == "completed" and ticket.result == "民警已到场处置"
    with session_scope(env.engine) as s:
        assert s.scalar(select(ParkedEvent)) is None
        assert [e.actor for e in history(s, ticket)][-2:] == ["110指挥中心", "110指挥中心"]
        assert s.scalar(select(SmsMessage).where(SmsMessage.ticket_id == ticket.id)) is not None  # 办结 notice
    # duplicates (same event id, or a stale seq) change nothing
    assert env.police.send(number, "sign", seq=1).json()["status"] == "duplicate"
    assert env.police.send(number, "sign", seq=1, event_id="another-id").json()["status"] == "duplicate"
    # no echo of the peer's own events; the city's later actions go to the 110 centre
    assert env.deliver("police110")["sent"] == 0
    env.act(number, "callback", satisfaction=5)
    assert env.deliver("police110")["sent"] == 1 and env.police.events[-1]["type"] == "callback"
    assert env.police.events[-1]["seq"] == 2


def test_110_dispatches_to_the_city_and_gets_sign_return_complete(env):
    order = "110-20261124-0007"
    r = env.police.send(order, "sign", seq=2)  # ahead of its dispatch
    assert r.json()["status"] == "parked"
    assert env.ticket(external_ref=order) is None
    r = env.police.send(order, "dispatch", seq=1, ticket={"category": "城乡建设/市政设施/道路井盖", "summary": "井盖缺失",
                                                        "phone": "13700000000", "district": "兴宾区"})
    assert r.json()["status"] == "applied" and r.json()["applied"] == [f"police110-{order}-1"]
    ticket = env.ticket(external_ref=order)
    assert ticket.source == "police110" and ticket.state == "created" and ticket.summary == "井盖缺失"
    with session_scope(env.engine) as s:  # the parked 'sign' is illegal on a fresh ticket: rejected, recorded
        rejected = history(s, ticket)[-1]
        assert rejected.action == "rejected" and "不能执行「签收」" in rejected.note
        assert s.scalar(select(ParkedEvent)) is None
    assert env.police.send(order, "sign", seq=2).json()["status"] == "duplicate"
    for action, kw in (("dispatch", {"department": "兴宾区城管局"}), ("return", {"reason": "非本单位职责"}),
                       ("redispatch", {"department": "市住建局"}), ("sign", {}), ("complete", {"result": "已补装井盖"})):
        env.act(ticket.number, action, **kw)
    assert env.deliver("police110")["sent"] == 5
    mine = [e for e in env.police.events if e["order_id"] == order]
    assert [e["type"] for e in mine] == ["dispatch", "return", "redispatch", "sign", "complete"]
    assert [e["seq"] for e in mine] == [1, 2, 3, 4, 5] and env.police.orders[order]["state"] == "completed"


def test_bad_signatures_replays_and_key_rotation(env):
    number = _city_ticket(env)
    env.act(number, "dispatch", department=exchange.POLICE_DEPARTMENT)
    forged = KeyRing("k2", {"k2": "guessed"})
    r = env.police.send(number, "sign", seq=1, ring=forged)
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"
    r = env.police.send(number, "sign", seq=1, ring=KeyRing("k9", {"k9": "x"}))
    assert r.status_code == 401
    assert env.ticket(number=number).state == "dispatched"
    # the peer still signs with the old key during rotation: accepted while k1 is in our ring
    assert env.police.send(number, "sign", seq=1, ring=KeyRing("k1", KEYS)).json()["status"] == "applied"
    # after rotation completes, k1 is refused
    env.settings.integration_keys = json.dumps({"police110": {"active": "k2", "keys": {"k2": KEYS["k2"]}},
                                                "provincial": {"active": "k2", "keys": KEYS}})
    r = env.police.send(number, "start", seq=2, ring=KeyRing("k1", KEYS))
    assert r.status_code == 401
    assert env.police.send(number, "start", seq=2).json()["status"] == "applied"
    # our outbound requests are signed with the active key; a peer without it refuses them (401: not retried)
    env.police.ring = KeyRing("k1", {"k1": KEYS["k1"]})
    env.act(number, "complete", result="已处置")
    assert env.deliver("police110")["dead"] == 2  # the handover and the completion report
    # malformed and hostile bodies with a valid signature: 422, nothing written
    r = env.provincial.send("P-1", "dispatch", seq=1, ticket={"summary": "路灯\x00不亮"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = env.provincial.send("P-1'; DROP TABLE tickets; --", "dispatch", seq=1)
    assert r.status_code == 422
    assert env.ticket(source="provincial") is None


def test_outbound_timeouts_retries_and_duplicate_deliveries(env):
    sessions = env.sessions
    number = _city_ticket(env)
    env.act(number, "dispatch", department=exchange.POLICE_DEPARTMENT)
    now = utcnow()
    env.police.delay_s = 0.6
    assert env.deliver("police110", now=now, timeout_s=0.2) == {"sent": 0, "retried": 1, "dead": 0}
    time.sleep(0.8)  # the timed-out request did reach the peer: the retry below must not count twice
    env.police.delay_s = 0
    assert len(env.police.events) == 1
    env.police.fail_next = 1
    assert env.deliver("police110", now=now + timedelta(seconds=5))["retried"] == 1
    assert env.deliver("police110", now=now + timedelta(seconds=15))["sent"] == 1
    assert len(env.police.events) == 1 and env.police.duplicates == 1
    with sessions() as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.channel == "police110"))
        assert row.status == "sent" and row.attempts == 3 and row.last_error == ""

    env.act(number, "sign")
    env.police.lose_ack_next = 1  # delivered, but the answer is lost: we retry, the peer deduplicates
    assert env.deliver("police110", now=now + timedelta(minutes=1))["retried"] == 1
    assert env.deliver("police110", now=now + timedelta(minutes=2))["sent"] == 1
    assert [e["type"] for e in env.police.events] == ["dispatch", "sign"] and env.police.duplicates == 2

    # the peer is down for good: after max_attempts the message is dead and visible
    env.act(number, "start")
    env.police.fail_next = 99
    results = [env.deliver("police110", now=now + timedelta(hours=h)) for h in (1, 2, 3)]
    assert [r["dead"] for r in results] == [0, 0, 1]
    with sessions() as s:
        dead = s.scalar(select(OutboxMessage).where(OutboxMessage.status == "dead"))
        assert "503" in dead.last_error or "系统繁忙" in dead.last_error


def test_provincial_sync_dispatch_supervision_capacity_and_reconciliation(env):
    number = _city_ticket(env)
    env.act(number, "dispatch", department="市住建局")
    with session_scope(env.engine) as s:
        call = Call(tenant_id=1, call_uuid="call-prov-1", caller_number="13800138000", answered_at=utcnow())
        s.add(call)
        s.flush()
        s.add(Recording(tenant_id=1, call_id=call.id, path="rec/call-prov-1.wav", duration_ms=61_000, sha256="ab" * 32))
        s.flush()
        exchange.publish_call(s, call, env.settings)
        exchange.publish_call(s, call, env.settings)  # once per call
        s.execute(Agent.__table__.update().where(Agent.work_no == "8").values(state="ready"))
    assert env.deliver("provincial")["sent"] == 3
    assert [e["type"] for e in env.provincial.events] == ["create", "dispatch", "call"]
    assert env.provincial.orders[number]["state"] == "dispatched"
    assert env.provincial.events[2]["call"]["caller_number"] == "13800138000"
    assert env.provincial.events[2]["call"]["recordings"][0]["duration_ms"] == 61_000

    # the province dispatches a ticket to the city, then supervises it (督办)
    order = "GX12345-2026-88"
    ticket_body = {"category": "劳动和社会保障/劳动关系/拖欠工资", "request_type": "投诉", "summary": "工地拖欠农民工工资",
                   "phone": "13600000000", "district": "合山市"}
    assert env.provincial.send(order, "dispatch", ticket=ticket_body).json()["status"] == "applied"
    assert env.provincial.send(order, "supervise", reason="省平台督办：请加快办理").json()["status"] == "applied"
    local = env.ticket(external_ref=order)
    assert local.source == "provincial" and local.supervised and local.district == "合山市"
    assert env.deliver("provincial")["sent"] == 0  # nothing echoed back
    env.act(local.number, "dispatch", department="合山市人社局")
    assert env.deliver("provincial")["sent"] == 1
    assert env.provincial.orders[order]["state"] == "dispatched" and env.provincial.orders[order]["seq"] == 1

    # capacity query (全区统一调度), signed
    cap = env.provincial.capacity()
    assert cap.status_code == 200
    assert cap.json()["agents_total"] == 2 and cap.json()["ready"] == 1 and cap.json()["active_calls"] == 1
    env.provincial.ring = KeyRing("k2", {"k2": "wrong"})
    assert env.provincial.capacity().status_code == 401
    env.provincial.ring = KeyRing("k2", KEYS)

    # the province silently loses an update; reconciliation finds and repairs it
    env.provincial.forget_next = 1
    env.act(number, "sign")
    assert env.deliver("provincial")["sent"] == 1
    assert env.provincial.orders[number]["state"] == "dispatched"
    client = SignedClient(env.provincial.url, keyring(env.settings, "provincial"))
    with session_scope(env.engine) as s:
        report = exchange.reconcile(s, 1, client, since=utcnow() - timedelta(hours=1))
    assert report["mismatched"] == [number] and report["missing"] == [] and report["requeued"] == 1
    assert env.deliver("provincial")["sent"] == 1
    assert env.provincial.orders[number]["state"] == "signed" and env.provincial.events[-1]["type"] == "sync"
    with session_scope(env.engine) as s:
        assert exchange.reconcile(s, 1, client, since=utcnow() - timedelta(hours=1))["requeued"] == 0
    client.close()


def test_worker_pass_delivers_outboxes_and_supervises(env):
    from tickets.integrations.worker import run_once

    number = _city_ticket(env)
    env.act(number, "dispatch", department=exchange.POLICE_DEPARTMENT)
    with session_scope(env.engine) as s:
        s.add_all([Call(tenant_id=1, call_uuid="ended-1", caller_number="1", ended_at=utcnow()),
                   Call(tenant_id=1, call_uuid="live-1", caller_number="2")])
    report = run_once(env.sessions, env.settings)
    assert report["calls_queued"] == 1 and run_once(env.sessions, env.settings)["calls_queued"] == 0
    assert report["police110"]["sent"] == 1 and report["provincial"]["sent"] == 3
    assert env.provincial.events[-1]["call"]["call_uuid"] == "ended-1"
    assert report["supervision_raised"] == [] and "sms" not in report
    later = run_once(env.sessions, env.settings, now=utcnow() + timedelta(days=3))  # 治安管理: 24 h SLA
    assert later["supervision_raised"] == [number]
    assert env.ticket(number=number).escalation_level == 3
