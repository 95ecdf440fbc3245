"""SMS result notices: a pluggable gateway, the ``sms_messages`` table as the outbox, delivery receipts and the
KPI 短信有效到达率.

A message is written (status ``queued``) in the same transaction as the ticket change that causes it, so a crash
loses nothing. :func:`send_due` claims due messages under a lease, submits them with their idempotency key as
the gateway's client message id (the gateway drops a repeated id, so a crash between submit and commit never
reaches the handset twice), and retries failures with exponential backoff (the outbox loop of
:func:`tickets.integrations.outbox.drain`). Receipts (:func:`apply_receipt`)
classify the outcome; empty numbers, switched-off or suspended numbers and abnormal handsets are excluded from
the KPI as the contract says.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from domain.models import SmsMessage, Ticket, utcnow
from tickets.integrations.outbox import DeliveryError, RetryPolicy, SignedClient, drain, retryable_status
from tickets.integrations.signing import KeyRing

# Gateway receipt codes (CMPP/SGIP style) → our status.
RECEIPT_STATUS = {
    "DELIVRD": "delivered",
    "EMPTY": "empty_number",  # 空号
    "SUSPEND": "suspended",  # 停机
    "POWEROFF": "suspended",  # 关机 (switched off) counts with suspended numbers
    "ABNORMAL": "abnormal_handset",  # 终端异常
    "UNDELIV": "failed",
    "EXPIRED": "failed",
    "REJECTD": "failed",
}
EXCLUDED = frozenset({"empty_number", "suspended", "abnormal_handset"})
FINAL = EXCLUDED | {"delivered", "failed"}


@dataclass(frozen=True)
class GatewayCapabilities:
    delivery_receipts: bool  # pushes receipts to our /api/hooks/sms/receipts
    idempotent_submit: bool  # drops a repeated client message id
    max_chars: int  # longest body accepted (long SMS are concatenated by the carrier)


class SmsGateway(ABC):
    """One SMS carrier or aggregator. ``submit`` returns the gateway's message id or raises DeliveryError."""

    capabilities: GatewayCapabilities

    @abstractmethod
    def submit(self, client_msg_id: str, phone: str, body: str) -> str: ...


class HttpSmsGateway(SmsGateway):
    """The HTTP JSON gateway protocol (the bundled simulator speaks it): ``POST /sms/send``, HMAC-signed."""

    capabilities = GatewayCapabilities(delivery_receipts=True, idempotent_submit=True, max_chars=500)

    def __init__(self, base_url: str, ring: KeyRing, timeout_s: float = 5.0):
        self.client = SignedClient(base_url, ring, timeout_s)

    def submit(self, client_msg_id: str, phone: str, body: str) -> str:
        try:
            r = self.client.request("POST", "/sms/send", {"client_msg_id": client_msg_id, "phone": phone, "text": body})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if r.is_success:
            return r.json()["msg_id"]
        raise DeliveryError(f"HTTP {r.status_code}: {r.text[:200]}", retryable=retryable_status(r.status_code))


def enqueue(session: Session, tenant_id: int, phone: str, body: str, key: str, *, ticket_id: int | None = None,
            now: datetime | None = None) -> SmsMessage | None:
    """Queue one SMS, idempotent by ``key`` (returns None when that key was queued before)."""
    if session.scalar(select(SmsMessage.id).where(SmsMessage.idempotency_key == key)) is not None:
        return None
    now = now or utcnow()
    row = SmsMessage(tenant_id=tenant_id, idempotency_key=key, ticket_id=ticket_id, phone=phone, body=body,
                     next_attempt_at=now, created_at=now, updated_at=now)
    session.add(row)
    return row


def result_notice(session: Session, ticket: Ticket, signature: str) -> SmsMessage | None:
    """Queue the 办结 notice to the caller (once per completion; a reopened ticket notifies again)."""
    if not ticket.phone:
        return None
    body = (f"{signature}您反映的问题（工单号 {ticket.number}）已办结。办理结果：{ticket.result[:120]}"
            f"。如有疑问请拨打12345。")
    return enqueue(session, ticket.tenant_id, ticket.phone, body, f"ticket:{ticket.id}:complete:{ticket.reopen_count}",
                   ticket_id=ticket.id)


def send_due(sessions: sessionmaker, gateway: SmsGateway, *, now: datetime | None = None,
             policy: RetryPolicy = RetryPolicy(base_s=30, max_attempts=8), batch: int = 200) -> dict:
    """Submit due queued messages once; returns counts of sent, retried and failed messages."""
    now = now or utcnow()

    def record(row: SmsMessage, gateway_id: str, error: DeliveryError | None) -> None:
        if error is None:
            row.gateway_id = gateway_id
            if row.status == "queued":  # a receipt may already have arrived
                row.status = "sent"

    due = (select(SmsMessage).where(SmsMessage.status == "queued", SmsMessage.next_attempt_at <= now)
           .order_by(SmsMessage.id).limit(batch))
    return drain(sessions, due, lambda row: gateway.submit(row.idempotency_key, row.phone, row.body), record,
                 give_up="failed", now=now, policy=policy)


def apply_receipt(session: Session, client_msg_id: str, gateway_id: str, code: str) -> SmsMessage | None:
    """Record a delivery receipt; duplicates and receipts for already-final messages change nothing."""
    row = session.scalar(select(SmsMessage).where(SmsMessage.idempotency_key == client_msg_id))
    if row is None or row.status in FINAL:
        return row
    row.status = RECEIPT_STATUS.get(code.upper(), "failed")
    row.gateway_id = row.gateway_id or gateway_id
    return row


def delivery_rate(session: Session, tenant_id: int, start: datetime, end: datetime) -> dict:
    """短信有效到达率 over messages created in [start, end): delivered / (sent − excluded).

    "Sent" means accepted by the gateway; messages still awaiting a receipt count as not delivered.
    """
    accepted = func.sum(case((SmsMessage.gateway_id != "", 1), else_=0))
    rows = session.execute(select(SmsMessage.status, func.count(), accepted)
                           .where(SmsMessage.tenant_id == tenant_id, SmsMessage.created_at >= start,
                                  SmsMessage.created_at < end).group_by(SmsMessage.status)).all()
    by_status = {status: count for status, count, _ in rows}
    # accepted by the gateway; a receipt other than "failed" implies acceptance even before we recorded the id
    sent = sum(count if status in FINAL - {"failed"} else int(n_accepted or 0) for status, count, n_accepted in rows)
    excluded = sum(by_status.get(s, 0) for s in EXCLUDED)
    delivered = by_status.get("delivered", 0)
    base = sent - excluded
    return {"sent": sent, "delivered": delivered, "excluded": excluded, "by_status": by_status,
            "rate": round(delivered / base, 4) if base else None}
