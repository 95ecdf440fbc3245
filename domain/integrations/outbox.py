"""The transactional outbox: integration messages are written in the same transaction as the change they
report, then delivered at least once by :func:`deliver_due`, with exponential backoff and a lease so a crashed
worker's messages are picked up again. Receivers deduplicate by the message's ``event_id``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.integrations.signing import KeyRing, sign
from domain.models import OutboxMessage, utcnow


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of failed deliveries: base × factor^(attempt-1), capped; after max_attempts a message is dead."""

    base_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 3600.0
    max_attempts: int = 12  # ≈ 2.8 days of retrying with the defaults
    lease_s: float = 60.0  # a claimed message is retried after this long if its worker died mid-send

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.max_delay_s, self.base_s * self.factor ** max(0, attempts - 1)))


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


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


def deliver_due(sessions: sessionmaker, channel: str, client: SignedClient, *, now: datetime | None = None,
                policy: RetryPolicy = RetryPolicy(), batch: int = 100) -> dict:
    """Deliver the channel's due messages once; returns counts of sent, retried and dead messages."""
    now = now or utcnow()
    with sessions() as session, session.begin():
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == channel, OutboxMessage.status == "pending",
                                        OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id).limit(batch).with_for_update(skip_locked=True)).all()
        for row in rows:  # lease: invisible to other workers until it expires
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=policy.lease_s)
        claimed = [(row.id, row.attempts, row.payload) for row in rows]
    counts = {"sent": 0, "retried": 0, "dead": 0}
    for row_id, attempts, payload in claimed:
        try:
            response = client.request(payload["method"], payload["path"], payload.get("body"))
            status, error = response.status_code, "" if response.is_success else response.text[:500]
        except httpx.HTTPError as exc:  # timeouts, refused connections
            status, error = 0, f"{type(exc).__name__}: {exc}"[:500]
        with sessions() as session, session.begin():
            row = session.get(OutboxMessage, row_id)
            row.last_error = error
            if 200 <= status < 300:
                row.status = "sent"
                counts["sent"] += 1
            elif (status == 0 or _retryable(status)) and attempts < policy.max_attempts:
                row.next_attempt_at = now + policy.delay(attempts)
                counts["retried"] += 1
            else:
                row.status = "dead"
                counts["dead"] += 1
    return counts
