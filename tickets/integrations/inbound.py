"""Inbound events of the work-order exchange (:mod:`tickets.integrations.exchange`): idempotent
(``inbox_receipts``), applied in ``seq`` order, and parked (``parked_events``) when they arrive ahead of a missing
predecessor."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.models import InboxReceipt, ParkedEvent, Ticket, TicketEvent, utcnow
from tickets import lifecycle
from tickets.integrations import exchange
from tickets.notify import notify

_APPLIED = {"sign", "return", "start", "complete"}  # peer actions that move our ticket


def _find(session: Session, tenant_id: int, channel: str, oid: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.tenant_id == tenant_id, or_(
        Ticket.number == oid, (Ticket.source == channel) & (Ticket.external_ref == oid))))


def _apply(session: Session, tenant_id: int, channel: str, ev: exchange.ExchangeEvent, ticket: Ticket | None,
           settings) -> Ticket:
    actor = {exchange.POLICE110: "110指挥中心", exchange.PROVINCIAL: "省12345平台"}[channel]
    now = utcnow()
    policy = lifecycle.load_policy(settings, session, tenant_id)
    if ev.type == "dispatch" and ticket is None:
        draft = ev.ticket or lifecycle.TicketDraft(request_type="求助")
        ticket = lifecycle.create_ticket(session, tenant_id, draft, actor=actor, now=now, policy=policy, source=channel,
                                         external_ref=ev.order_id, note=f"{actor}派单 {ev.order_id}")
        notify(session, ticket, lifecycle.history(session, ticket)[-1], settings, skip=channel)
    elif ev.type == "supervise":
        ticket.supervised = True
        session.add(TicketEvent(tenant_id=tenant_id, ticket_id=ticket.id, from_state=ticket.state,
                                to_state=ticket.state, action="supervise", actor=actor,
                                note=ev.reason or f"{actor}督办", at=now))
    elif ev.type in _APPLIED:
        event = lifecycle.transition(session, ticket, ev.type, actor=actor, now=now, reason=ev.reason,
                                     result=ev.result, note=f"{actor}回传", policy=policy)
        notify(session, ticket, event, settings, skip=channel)  # no echo to the sender
    else:
        raise AppError("unsupported_event", f"不支持的外部事件类型：{ev.type}", 422)
    exchange.set_sync(ticket, channel, in_seq=ev.seq)
    return ticket


def receive(session: Session, tenant_id: int, channel: str, ev: exchange.ExchangeEvent, settings) -> dict:
    """Apply one inbound event exactly once and in order; returns {"status": applied|duplicate|parked, ...}."""
    try:
        outcome = _receive(session, tenant_id, channel, ev, settings)
        session.flush()
    except IntegrityError as exc:  # a concurrent delivery of the same event won the race; the sender retries
        raise AppError("conflict", "事件正在处理，请稍后重试", 409) from exc
    return outcome


def _receive(session: Session, tenant_id: int, channel: str, ev: exchange.ExchangeEvent, settings) -> dict:
    if session.scalar(select(InboxReceipt.id).where(InboxReceipt.channel == channel,
                                                    InboxReceipt.event_id == ev.event_id)) is not None:
        return {"status": "duplicate"}
    ticket = _find(session, tenant_id, channel, ev.order_id)
    last = exchange.sync_state(ticket, channel).get("in_seq", 0) if ticket else 0
    if ev.seq <= last:
        session.add(InboxReceipt(channel=channel, event_id=ev.event_id))
        return {"status": "duplicate", "number": ticket.number}
    if (ticket is None and ev.type != "dispatch") or ev.seq > last + 1:
        if session.scalar(select(ParkedEvent.id).where(ParkedEvent.channel == channel,
                                                       ParkedEvent.event_id == ev.event_id)) is None:
            session.add(ParkedEvent(tenant_id=tenant_id, channel=channel, event_id=ev.event_id, ref=ev.order_id,
                                    seq=ev.seq, payload=ev.model_dump(mode="json")))
        return {"status": "parked", "waiting_for_seq": last + 1}
    applied = [ev]
    ticket = _apply(session, tenant_id, channel, ev, ticket, settings)
    session.add(InboxReceipt(channel=channel, event_id=ev.event_id))
    while True:  # drain parked successors
        parked = session.scalar(select(ParkedEvent).where(ParkedEvent.tenant_id == tenant_id,
                                                          ParkedEvent.channel == channel,
                                                          ParkedEvent.ref == ev.order_id,
                                                          ParkedEvent.seq == exchange.sync_state(ticket, channel)["in_seq"] + 1))
        if parked is None:
            break
        nxt = exchange.ExchangeEvent.model_validate(parked.payload)
        try:
            with session.begin_nested():
                _apply(session, tenant_id, channel, nxt, ticket, settings)
            applied.append(nxt)
        except AppError as exc:  # its sender was already answered "parked": record the rejection, keep going
            exchange.set_sync(ticket, channel, in_seq=nxt.seq)
            session.add(TicketEvent(tenant_id=tenant_id, ticket_id=ticket.id, from_state=ticket.state,
                                    to_state=ticket.state, action="rejected", actor=channel,
                                    note=f"外部事件 {nxt.event_id}（{nxt.type}）无法执行：{exc.message}", at=utcnow()))
        session.add(InboxReceipt(channel=channel, event_id=nxt.event_id))
        session.delete(parked)
    return {"status": "applied", "number": ticket.number, "applied": [e.event_id for e in applied],
            "state": ticket.state}
