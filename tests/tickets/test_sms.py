"""SMS over real HTTP against the gateway simulator: receipts and KPI classification, retries with backoff,
timeouts, idempotency, and the outbox surviving a killed process (nothing lost, nothing sent twice)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from domain.db import session_factory, session_scope
from domain.models import SmsMessage, utcnow
from tests.conftest import REPO
from tests.tickets.conftest import seed_tenant
from tickets.integrations.outbox import RetryPolicy
from tickets.integrations.signing import KeyRing
from tickets.simulators import LocalServer
from tickets.simulators.sms_gateway import SmsGatewaySim
from tickets.sms import HttpSmsGateway, apply_receipt, delivery_rate, enqueue, send_due

RING = KeyRing("k1", {"k1": "sms-secret"})
OUTCOMES = {"13800000001": "EMPTY", "13800000002": "SUSPEND", "13800000003": "ABNORMAL", "13800000004": "UNDELIV",
            "13800000005": "POWEROFF"}


@pytest.fixture
def city(engine, settings):
    """The hotline app on a real port, receiving signed receipts."""
    from serving.app import create_app

    with session_scope(engine) as s:
        seed_tenant(s)
    settings.integration_keys = json.dumps({"sms": {"active": "k1", "keys": RING.keys}})
    with LocalServer(create_app(settings, engine)) as server:
        yield server


@pytest.fixture
def gateway(city):
    sim = SmsGatewaySim(RING, receipt_url=f"{city.url}/api/hooks/sms/receipts", outcomes=OUTCOMES)
    with LocalServer(sim.app) as server:
        sim.url = server.url
        yield sim


def _statuses(engine) -> dict[str, str]:
    with session_scope(engine) as s:
        return {m.phone: m.status for m in s.scalars(select(SmsMessage))}


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_receipts_classify_outcomes_and_feed_the_kpi(engine, gateway):
    phones = ["13900000001", "13900000002", *OUTCOMES]
    with session_scope(engine) as s:
        for i, phone in enumerate(phones):
            enqueue(s, 1, phone, "您的工单已办结", f"t:{i}")
        assert enqueue(s, 1, phones[0], "again", "t:0") is None  # same idempotency key
    assert send_due(session_factory(engine), HttpSmsGateway(gateway.url, RING)) == {"sent": 7, "retried": 0, "failed": 0}
    _wait(lambda: "sent" not in _statuses(engine).values())
    assert _statuses(engine) == {"13900000001": "delivered", "13900000002": "delivered", "13800000001": "empty_number",
                                 "13800000002": "suspended", "13800000003": "abnormal_handset",
                                 "13800000004": "failed", "13800000005": "suspended"}
    with session_scope(engine) as s:
        kpi = delivery_rate(s, 1, utcnow() - timedelta(days=1), utcnow() + timedelta(days=1))
        assert (kpi["sent"], kpi["delivered"], kpi["excluded"]) == (7, 2, 4) and kpi["rate"] == round(2 / 3, 4)
        assert apply_receipt(s, "t:0", "GW1", "UNDELIV").status == "delivered"  # a late duplicate changes nothing
    assert len(gateway.handset_deliveries) == 7


def test_duplicate_receipts_and_receipt_before_the_send_is_recorded(engine, gateway):
    gateway.duplicate_receipts = True
    with session_scope(engine) as s:
        enqueue(s, 1, "13900000009", "x", "dup:1")
    send_due(session_factory(engine), HttpSmsGateway(gateway.url, RING))
    _wait(lambda: _statuses(engine)["13900000009"] == "delivered")
    with session_scope(engine) as s:
        enqueue(s, 1, "13900000010", "y", "early:1")
    with session_scope(engine) as s:  # the receipt wins the race against our own bookkeeping
        apply_receipt(s, "early:1", "GW-early", "DELIVRD")
    send_due(session_factory(engine), HttpSmsGateway(gateway.url, RING))
    assert _statuses(engine)["13900000010"] == "delivered"


def test_retry_with_backoff_timeouts_and_giving_up(engine, gateway):
    sessions = session_factory(engine)
    policy = RetryPolicy(base_s=10, factor=3, max_attempts=4, lease_s=60)
    with session_scope(engine) as s:
        enqueue(s, 1, "13900000003", "x", "retry:1")
    now = utcnow()
    gateway.fail_next = 2
    assert send_due(sessions, HttpSmsGateway(gateway.url, RING), now=now, policy=policy)["retried"] == 1
    assert send_due(sessions, HttpSmsGateway(gateway.url, RING), now=now + timedelta(seconds=9), policy=policy) == \
        {"sent": 0, "retried": 0, "failed": 0}  # backoff: not due yet
    with session_scope(engine) as s:
        row = s.scalar(select(SmsMessage))
        assert (row.next_attempt_at.replace(tzinfo=None) - now.replace(tzinfo=None)) == timedelta(seconds=10)
    gw = HttpSmsGateway(gateway.url, RING)
    assert send_due(sessions, gw, now=now + timedelta(seconds=10), policy=policy)["retried"] == 1
    assert send_due(sessions, HttpSmsGateway(gateway.url, RING), now=now + timedelta(seconds=40), policy=policy)["sent"] == 1

    gateway.delay_s = 1.0  # slower than the client's timeout
    gateway.receipt_url = ""  # (the slow gateway may still deliver later; its receipt would then settle the status)
    with session_scope(engine) as s:
        enqueue(s, 1, "13900000004", "y", "timeout:1")
    slow = HttpSmsGateway(gateway.url, RING, timeout_s=0.2)
    results = [send_due(sessions, slow, now=now + timedelta(hours=h), policy=policy) for h in range(1, 5)]
    assert [r["retried"] for r in results] == [1, 1, 1, 0] and results[-1]["failed"] == 1
    gateway.delay_s = 0
    with session_scope(engine) as s:
        failed = s.scalar(select(SmsMessage).where(SmsMessage.idempotency_key == "timeout:1"))
        assert failed.status == "failed" and failed.attempts == 4 and failed.gateway_id == ""
        assert delivery_rate(s, 1, now - timedelta(days=1), now + timedelta(days=1))["sent"] == 1  # never accepted


def test_bad_signature_and_unknown_keys_are_refused(engine, gateway):
    forged = HttpSmsGateway(gateway.url, KeyRing("k1", {"k1": "wrong"}))
    with session_scope(engine) as s:
        enqueue(s, 1, "13900000005", "x", "forged:1")
    assert send_due(session_factory(engine), forged)["failed"] == 1  # 401 is not retried
    assert gateway.handset_deliveries == []


@pytest.mark.parametrize("mode", ["after_write", "after_submit"])
def test_killed_process_loses_nothing_and_sends_nothing_twice(engine, gateway, mode):
    url = engine.url.render_as_string(hide_password=False)
    gateway.receipt_url = ""  # receipts would race with the checks of our own bookkeeping below
    if mode == "after_submit":
        with session_scope(engine) as s:
            enqueue(s, 1, "13800138000", "您的工单已办结", "crash:1")
    child = subprocess.run([sys.executable, "-m", "tests.tickets.sms_crash_child", url, gateway.url, mode],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr  # SIGKILL: no cleanup ran
    with session_scope(engine) as s:
        rows = s.scalars(select(SmsMessage)).all()
        assert len(rows) == 1 and rows[0].status == "queued"  # written, never marked sent
        key = rows[0].idempotency_key
    assert gateway.handset_deliveries == ([] if mode == "after_write" else [key])

    # a fresh worker takes over once the dead worker's lease has expired
    later = utcnow() + timedelta(minutes=5)
    assert send_due(session_factory(engine), HttpSmsGateway(gateway.url, RING), now=later)["sent"] == 1
    assert send_due(session_factory(engine), HttpSmsGateway(gateway.url, RING), now=later)["sent"] == 0
    assert gateway.handset_deliveries == [key]  # exactly once at the handset
    assert _statuses(engine) == {"13800138000": "sent"}


def test_throughput_covers_a_million_messages_a_year(engine, gateway):
    n = 600
    with session_scope(engine) as s:
        for i in range(n):
            enqueue(s, 1, f"139{i:08d}", "您的工单已办结，感谢您的来电。", f"bulk:{i}")
    gateway.receipt_url = ""  # measure submission only
    sessions, gw = session_factory(engine), HttpSmsGateway(gateway.url, RING)
    started = time.perf_counter()
    sent = 0
    while sent < n:
        sent += send_due(sessions, gw, batch=200)["sent"]
    rate = n / (time.perf_counter() - started)
    print(f"\nSMS submit throughput: {rate:.0f} msg/s = {rate * 86400 / 1e6:.1f} M/day (need 1 M/year)")
    assert rate * 86400 > 100 * 2740  # 100× the contract's daily average
