"""The transactional outbox: integration messages are written in the same transaction as the change they
report, then delivered at least once by :func:`deliver_due`, with exponential backoff and a lease so a crashed
worker's messages are picked up again. Receivers deduplicate by the message's ``event_id``.

:func:`drain` is the one delivery loop of every outbox (these messages and the SMS of :mod:`tickets.sms`); the
backoff and the attempt limit are tenacity's strategies, applied to the attempt count stored with each message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import httpx
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Future, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from domain.models import OutboxMessage, utcnow
from tickets.integrations.signing import KeyRing, sign


class DeliveryError(Exception):
    """A failed send; ``retryable`` when a later attempt may succeed (timeouts, 5xx, 429), not for a refusal."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of failed deliveries: base × factor^(attempt-1), capped; after max_attempts a message is given up."""

    base_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 3600.0
    max_attempts: int = 12  # ≈ 2.8 days of retrying with the defaults
    lease_s: float = 60.0  # a claimed message is retried after this long if its worker died mid-send

    def backoff(self, attempts: int, error: DeliveryError) -> timedelta | None:
        """When to try again after the ``attempts``-th attempt failed with ``error``; None gives the message up
        (the error is final or the attempts are spent)."""
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempts
        state.outcome = Future.construct(attempts, error, True)
        if not retry_if_exception(_retryable)(state) or stop_after_attempt(self.max_attempts)(state):
            return None
        wait = wait_exponential(multiplier=self.base_s, exp_base=self.factor, max=self.max_delay_s)
        return timedelta(seconds=wait(state))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable


def retryable_status(status: int) -> bool:
    """HTTP answers worth another attempt: server errors, timeouts and rate limits."""
    return status >= 500 or status in (408, 425, 429)


def drain(sessions: sessionmaker, due: Select, send: Callable[[Any], str],
          record: Callable[[Any, str, DeliveryError | None], None], *, give_up: str, now: datetime,
          policy: RetryPolicy) -> dict:
    """Deliver the rows ``due`` selects once: claim them under a lease (other workers skip them until it expires,
    so a crashed worker's rows are picked up again), ``send`` each one (its result, or a :class:`DeliveryError`)
    and record the outcomes in one transaction: ``record`` writes what an attempt returned, then a failed row waits
    for its backoff or takes the ``give_up`` status. A crash before that commit only means the batch is sent again,
    which the receivers drop by the idempotency key each message carries. Returns counts of sent, retried and
    given-up rows."""
    with sessions() as session, session.begin():
        claimed = session.scalars(due.with_for_update(skip_locked=True)).all()
        for row in claimed:
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=policy.lease_s)
        session.flush()
        session.expunge_all()  # the claimed rows stay readable while they are sent
    outcomes = []
    for claim in claimed:
        try:
            outcomes.append((claim, send(claim), None))
        except DeliveryError as exc:
            outcomes.append((claim, "", exc))
    counts = {"sent": 0, "retried": 0, give_up: 0}
    with sessions() as session, session.begin():
        for claim, result, error in outcomes:
            row = session.get(type(claim), claim.id)
            record(row, result, error)
            delay = None if error is None else policy.backoff(claim.attempts, error)
            if error is None:
                counts["sent"] += 1
            elif delay is not None:
                row.next_attempt_at = now + delay
                counts["retried"] += 1
            else:
                row.status = give_up
                counts[give_up] += 1
    return counts


def enqueue(session: Session, tenant_id: int, channel: str, key: str, method: str, path: str,
            body: dict | None = None, now: datetime | None = None) -> OutboxMessage | None:
    """Queue one request (idempotent by ``key``: a second enqueue of the same key is ignored)."""
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)) is not None:
        return None
    row = OutboxMessage(tenant_id=tenant_id, channel=channel, idempotency_key=key,
                        payload={"method": method, "path": path, "body": body}, next_attempt_at=now or utcnow())
    session.add(row)
    return row


class SignedClient:
    """An HTTP client for one peer that signs every request with the channel's key ring."""

    def __init__(self, base_url: str, ring: KeyRing, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None):
        self.ring = ring
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def request(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> httpx.Response:
        content = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        headers = {"Content-Type": "application/json", **sign(self.ring, method, path, content)}
        return self.http.request(method, path, content=content, headers=headers, params=params)

    def close(self) -> None:
        self.http.close()


def deliver_due(sessions: sessionmaker, channel: str, client: SignedClient, *, now: datetime | None = None,
                policy: RetryPolicy = RetryPolicy(), batch: int = 100) -> dict:
    """Deliver the channel's due messages once; returns counts of sent, retried and dead messages."""
    now = now or utcnow()

    def send(row: OutboxMessage) -> str:
        try:
            response = client.request(row.payload["method"], row.payload["path"], row.payload.get("body"))
        except httpx.HTTPError as exc:  # timeouts, refused connections
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:500], retryable=True) from exc
        if not response.is_success:
            raise DeliveryError(response.text[:500], retryable=retryable_status(response.status_code))
        return ""

    def record(row: OutboxMessage, _: str, error: DeliveryError | None) -> None:
        row.last_error = str(error) if error else ""
        if error is None:
            row.status = "sent"

    due = (select(OutboxMessage).where(OutboxMessage.channel == channel, OutboxMessage.status == "pending",
                                       OutboxMessage.next_attempt_at <= now).order_by(OutboxMessage.id).limit(batch))
    return drain(sessions, due, send, record, give_up="dead", now=now, policy=policy)
