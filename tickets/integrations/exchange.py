"""The work-order exchange with the city's 110 centre and the provincial 12345 platform (one REST protocol).

Both directions carry the same signed JSON event (see ``docs/integrations.md``)::

    {"event_id": "...", "type": "dispatch|sign|return|start|complete|...", "order_id": "...", "seq": 3,
     "occurred_at": "...", "ticket": {...}, "department": "", "reason": "", "result": "", "satisfaction": null}

``order_id`` is the work order's id on the side that created it (our ticket number, or the peer's id, kept in
``Ticket.external_ref``); ``seq`` counts the sender's events per order from 1. Outbound events go through the
outbox (:mod:`tickets.integrations.outbox`): at least once, retried with backoff. Inbound events are applied by
:mod:`tickets.integrations.inbound`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from domain.models import Agent, Call, OutboxMessage, Recording, Ticket, TicketEvent, TranscriptSegment, utcnow
from domain.validation import SafeText, ShortText
from tickets.integrations import outbox
from tickets.lifecycle import TicketDraft

POLICE110 = "police110"
PROVINCIAL = "provincial"
POLICE_DEPARTMENT = "110指挥中心"  # dispatching a ticket to this department hands it to the 110 centre
EVENTS_PATH = "/api/v1/events"  # the peer's inbound path

EventType = Literal["create", "dispatch", "sign", "return", "redispatch", "start", "complete", "callback", "close", "reopen",
                    "supervise", "sync", "call"]


class ExchangeEvent(BaseModel):
    event_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9:._-]+$")
    type: EventType
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9:._-]+$")
    seq: int = Field(ge=1)
    occurred_at: datetime | None = None
    ticket: TicketDraft | None = None  # what the partner dispatches to us
    department: ShortText = ""
    reason: ShortText = ""
    result: SafeText = Field("", max_length=4000)
    satisfaction: int | None = Field(None, ge=1, le=5)


# ---------------------------------------------------------------- outbound
def enabled(settings, channel: str) -> bool:
    return bool(settings.police110_url if channel == POLICE110 else settings.provincial_url)


def order_id(ticket: Ticket, channel: str) -> str:
    return ticket.external_ref if ticket.source == channel else ticket.number


def snapshot(ticket: Ticket) -> dict:
    return {"number": ticket.number, "state": ticket.state, "category": ticket.category,
            "request_type": ticket.request_type, "caller_name": ticket.caller_name, "phone": ticket.phone,
            "address": ticket.address, "incident_address": ticket.incident_address, "summary": ticket.summary,
            "respondent": ticket.respondent, "department": ticket.department, "district": ticket.district,
            "result": ticket.result, "satisfaction": ticket.satisfaction,
            "due_at": ticket.due_at.isoformat() if ticket.due_at else None, "call_id": ticket.call_id}


def sync_state(ticket: Ticket, channel: str) -> dict:
    return dict((ticket.sync or {}).get(channel, {}))


def set_sync(ticket: Ticket, channel: str, **values) -> None:
    sync = dict(ticket.sync or {})
    sync[channel] = {**sync.get(channel, {}), **values}
    ticket.sync = sync  # reassign so the JSON column is flushed


def _enqueue_event(session: Session, ticket: Ticket, channel: str, kind: str, event: TicketEvent | None = None) -> None:
    seq = sync_state(ticket, channel).get("out_seq", 0) + 1
    set_sync(ticket, channel, out_seq=seq)
    oid = order_id(ticket, channel)
    body = {"event_id": f"{channel}:{oid}:{seq}", "type": kind, "order_id": oid, "seq": seq,
            "occurred_at": (event.at if event else utcnow()).isoformat(), "ticket": snapshot(ticket),
            "note": event.note if event else ""}
    if channel == POLICE110 and kind == "dispatch" and ticket.call_id:  # police matters go with the call data
        call = session.get(Call, ticket.call_id)
        body["call"] = call_record(session, call)
        body["transcript"] = [{"role": seg.speaker_role, "start_ms": seg.start_ms, "text": seg.text}
                              for seg in session.scalars(select(TranscriptSegment).where(
                                  TranscriptSegment.call_id == call.id, TranscriptSegment.is_final)
                                  .order_by(TranscriptSegment.start_ms))]
    outbox.enqueue(session, ticket.tenant_id, channel, body["event_id"], "POST", EVENTS_PATH, body)


def publish(session: Session, ticket: Ticket, event: TicketEvent, settings, skip: str = "") -> None:
    """Queue the event for each linked peer: a dispatch to 110指挥中心 hands the ticket to the 110 centre, and a
    ticket linked to 110 reports every later action; the provincial platform receives every ticket event."""
    if enabled(settings, POLICE110) and skip != POLICE110:
        linked = ticket.source == POLICE110 or POLICE110 in (ticket.sync or {})
        handover = event.action in ("dispatch", "redispatch") and ticket.department == POLICE_DEPARTMENT
        if handover:
            _enqueue_event(session, ticket, POLICE110, "dispatch", event)
        elif linked and event.action != "create":
            _enqueue_event(session, ticket, POLICE110, event.action, event)
    if enabled(settings, PROVINCIAL) and skip != PROVINCIAL:
        _enqueue_event(session, ticket, PROVINCIAL, event.action, event)


def call_record(session: Session, call: Call) -> dict:
    """The call data sent to peers: the CDR and its recordings' metadata."""
    recordings = session.scalars(select(Recording).where(Recording.call_id == call.id).order_by(Recording.id))
    return {"call_uuid": call.call_uuid, "caller_number": call.caller_number, "direction": call.direction,
            "skill_group": call.skill_group, "started_at": call.started_at.isoformat(),
            "answered_at": call.answered_at.isoformat() if call.answered_at else None,
            "ended_at": call.ended_at.isoformat() if call.ended_at else None, "result": call.result,
            "queue_wait_ms": call.queue_wait_ms, "satisfaction": call.satisfaction,
            "recordings": [{"id": r.id, "duration_ms": r.duration_ms, "sha256": r.sha256, "sample_rate": r.sample_rate,
                            "channels": r.channels} for r in recordings]}


def publish_call(session: Session, call: Call, settings, now: datetime | None = None) -> None:
    """Queue a call record (CDR, with its recordings' metadata) for the provincial platform (once per call)."""
    if not enabled(settings, PROVINCIAL):
        return
    body = {"event_id": f"{PROVINCIAL}:call:{call.call_uuid}", "type": "call", "order_id": call.call_uuid, "seq": 1,
            "occurred_at": (call.ended_at or call.started_at).isoformat(), "call": call_record(session, call)}
    outbox.enqueue(session, call.tenant_id, PROVINCIAL, body["event_id"], "POST", EVENTS_PATH, body, now=now)


def publish_ended_calls(session: Session, settings, since: datetime, now: datetime | None = None) -> int:
    """Queue the records of calls that ended since ``since`` and were not pushed yet (run by the worker)."""
    if not enabled(settings, PROVINCIAL):
        return 0
    key = literal(f"{PROVINCIAL}:call:") + Call.call_uuid
    calls = session.scalars(select(Call).outerjoin(OutboxMessage, OutboxMessage.idempotency_key == key)
                            .where(Call.ended_at >= since, OutboxMessage.id.is_(None)).limit(1000)).all()
    for call in calls:
        publish_call(session, call, settings, now=now)
    return len(calls)


# ---------------------------------------------------------------- provincial: capacity and reconciliation
def agent_capacity(session: Session, tenant_id: int, max_concurrent_calls: int = 35) -> dict:
    """The city's agent capacity for the provincial platform's unified dispatch (全区统一调度)."""
    states = dict(session.execute(select(Agent.state, func.count()).where(Agent.tenant_id == tenant_id)
                                  .group_by(Agent.state)).all())
    active_calls = session.scalar(select(func.count()).select_from(Call).where(
        Call.tenant_id == tenant_id, Call.answered_at.is_not(None), Call.ended_at.is_(None))) or 0
    signed_in = sum(n for s, n in states.items() if s != "signed_out")
    return {"agents_total": sum(states.values()), "signed_in": signed_in, "ready": states.get("ready", 0),
            "busy": states.get("busy", 0), "acw": states.get("acw", 0), "not_ready": states.get("not_ready", 0),
            "active_calls": active_calls, "max_concurrent_calls": max_concurrent_calls,
            "free_call_capacity": max(0, min(max_concurrent_calls - active_calls, states.get("ready", 0))),
            "at": utcnow().isoformat()}


def reconcile(session: Session, tenant_id: int, client: outbox.SignedClient, since: datetime) -> dict:
    """Compare the provincial platform's view of our tickets updated since ``since`` with ours and queue a full
    ``sync`` event for every ticket it lacks or holds in another state (its outbox delivers them)."""
    response = client.request("GET", "/api/v1/orders", params={"since": since.isoformat()})
    response.raise_for_status()
    remote = {o["order_id"]: o for o in response.json()["orders"]}
    local = session.scalars(select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.updated_at >= since))
    report = {"checked": 0, "missing": [], "mismatched": [], "requeued": 0}
    for ticket in local:
        report["checked"] += 1
        oid = order_id(ticket, PROVINCIAL)
        theirs = remote.get(oid)
        if theirs is not None and theirs.get("state") == ticket.state:
            continue
        report["missing" if theirs is None else "mismatched"].append(oid)
        _enqueue_event(session, ticket, PROVINCIAL, "sync")
        report["requeued"] += 1
    return report
