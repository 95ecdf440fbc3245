"""Work orders: creation at hang-up from the confirmed draft, the lifecycle actions, SLA supervision and reports."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from domain import tenant_settings
from domain.accounts import Principal
from domain.errors import AppError, not_found
from domain.models import Call, OutboxMessage, ParkedEvent, SmsMessage, Ticket, TranscriptSegment, utcnow
from domain.spreadsheet import XLSX_MEDIA_TYPE
from domain.validation import SafeText, ShortText
from serving.api.deps import get_session, require_roles
from tickets import lifecycle, reports, sms
from tickets.notify import notify

router = APIRouter(prefix="/api/tickets", tags=["tickets"])

DESK = ("agent", "supervisor")
READERS = ("agent", "supervisor", "qa_reviewer", "admin")
REPORTERS = ("supervisor", "evaluator", "admin")


class FromCallIn(BaseModel):
    call_id: int
    draft: lifecycle.TicketDraft
    confirmed: bool = Field(description="The agent confirmed (or edited) the draft in the desk.")


class CreateIn(BaseModel):
    draft: lifecycle.TicketDraft
    note: ShortText = ""


class ActionIn(BaseModel):
    action: Literal["dispatch", "sign", "return", "redispatch", "start", "complete", "callback", "close", "reopen"]
    department: ShortText = ""
    reason: ShortText = ""
    result: SafeText = Field("", max_length=4000)
    satisfaction: int | None = Field(None, ge=1, le=5)
    note: ShortText = ""


def _out(ticket: Ticket, now: datetime, policy: lifecycle.SlaPolicy) -> dict:
    return {
        "id": ticket.id, "number": ticket.number, "state": ticket.state,
        "state_label": lifecycle.STATE_LABELS[ticket.state], "category": ticket.category,
        "request_type": ticket.request_type, "caller_name": ticket.caller_name, "phone": ticket.phone,
        "address": ticket.address, "incident_address": ticket.incident_address, "summary": ticket.summary,
        "respondent": ticket.respondent, "department": ticket.department, "district": ticket.district,
        "kb_entry_ids": ticket.kb_entry_ids, "result": ticket.result, "satisfaction": ticket.satisfaction,
        "supervised": ticket.supervised, "escalation_level": ticket.escalation_level, "source": ticket.source,
        "external_ref": ticket.external_ref, "call_id": ticket.call_id, "reopen_count": ticket.reopen_count,
        "created_at": ticket.created_at.isoformat(), "sla": lifecycle.sla_status(ticket, now, policy),
        "allowed_actions": lifecycle.allowed_actions(ticket.state),
    }


def _get(session: Session, principal: Principal, ticket_id: int) -> Ticket:
    ticket = session.scalar(select(Ticket).where(Ticket.id == ticket_id, Ticket.tenant_id == principal.tenant_id))
    if ticket is None:
        raise not_found("工单")
    return ticket


@router.post("/from-call", status_code=201)
def create_from_call(body: FromCallIn, request: Request, principal: Principal = Depends(require_roles(*DESK)),
                     session: Session = Depends(get_session, scope="function")) -> dict:
    """At hang-up: the ticket from the draft the agent confirmed (automatic only for configured skill groups)."""
    settings = request.app.state.settings
    call = session.scalar(select(Call).where(Call.id == body.call_id, Call.tenant_id == principal.tenant_id))
    if call is None:
        raise not_found("通话")
    auto_groups = {g.strip() for g in settings.ticket_auto_create_groups.split(",") if g.strip()}
    policy = lifecycle.load_policy(settings, session, principal.tenant_id)
    ticket = lifecycle.create_from_hangup(session, call, body.draft, confirmed=body.confirmed,
                                          auto_create=call.skill_group in auto_groups, actor=principal.user.username,
                                          policy=policy, created_by=principal.user.id)
    notify(session, ticket, lifecycle.history(session, ticket)[-1], settings)
    session.commit()  # durable before the response (get_session's commit runs after it is sent)
    return _out(ticket, utcnow(), policy)


@router.post("", status_code=201)
def create(body: CreateIn, request: Request, principal: Principal = Depends(require_roles(*DESK)),
           session: Session = Depends(get_session, scope="function")) -> dict:
    """Manual intake (手工受理) without a call, e.g. a letter or a walk-in."""
    settings = request.app.state.settings
    policy = lifecycle.load_policy(settings, session, principal.tenant_id)
    ticket = lifecycle.create_ticket(session, principal.tenant_id, body.draft, actor=principal.user.username,
                                     policy=policy, created_by=principal.user.id, note=body.note)
    notify(session, ticket, lifecycle.history(session, ticket)[-1], settings)
    session.commit()  # durable before the response (get_session's commit runs after it is sent)
    return _out(ticket, utcnow(), policy)


@router.get("")
def list_tickets(request: Request, principal: Principal = Depends(require_roles(*READERS)),
                 session: Session = Depends(get_session, scope="function"), state: str | None = Query(None, max_length=24),
                 q: str | None = Query(None, max_length=100), supervised: bool | None = None,
                 limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0)) -> list[dict]:
    query = select(Ticket).where(Ticket.tenant_id == principal.tenant_id)
    if state:
        query = query.where(Ticket.state == state)
    if supervised is not None:
        query = query.where(Ticket.supervised == supervised)
    if q:
        like = f"%{q}%"
        query = query.where(or_(Ticket.number.like(like), Ticket.summary.like(like), Ticket.category.like(like)))
    policy = lifecycle.load_policy(request.app.state.settings, session, principal.tenant_id)
    now = utcnow()
    rows = session.scalars(query.order_by(Ticket.id.desc()).limit(limit).offset(offset))
    return [_out(t, now, policy) for t in rows]


@router.get("/reports")
def report(principal: Principal = Depends(require_roles(*REPORTERS)), session: Session = Depends(get_session, scope="function"),
           start: date | None = None, end: date | None = None,
           granularity: Literal["day", "week", "month"] = "day") -> dict:
    """Volumes by category, district, department and time; on-time completion, return rate, satisfaction."""
    return reports.build(session, principal.tenant_id, *_range(session, principal.tenant_id, start, end),
                                granularity)


@router.get("/reports.xlsx")
def report_xlsx(principal: Principal = Depends(require_roles(*REPORTERS)), session: Session = Depends(get_session, scope="function"),
                start: date | None = None, end: date | None = None,
                granularity: Literal["day", "week", "month"] = "day") -> Response:
    start_at, end_at = _range(session, principal.tenant_id, start, end)
    data = reports.build(session, principal.tenant_id, start_at, end_at, granularity)
    tz = tenant_settings.zone(session, principal.tenant_id)
    name = f"tickets-{start_at.astimezone(tz):%Y%m%d}-{(end_at.astimezone(tz) - timedelta(days=1)):%Y%m%d}.xlsx"
    return Response(reports.to_xlsx(data), headers={"Content-Disposition": f'attachment; filename="{name}"'},
                    media_type=XLSX_MEDIA_TYPE)


def _range(session: Session, tenant_id: int, start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """The tenant's calendar days [start, end] as UTC instants; defaults to the last 30 days."""
    tz = tenant_settings.zone(session, tenant_id)
    today = tenant_settings.local_now(tz).date()
    end = end or today
    start = start or end - timedelta(days=29)
    if start > end:
        raise AppError("bad_range", "开始日期不能晚于结束日期", 422)
    return tenant_settings.day_bounds(start, end + timedelta(days=1), tz)


@router.post("/supervise")
def supervise(request: Request, principal: Principal = Depends(require_roles("supervisor", "admin")),
              session: Session = Depends(get_session, scope="function")) -> list[dict]:
    """Run the 督办 check now (the worker also runs it every minute); returns the tickets whose level rose."""
    policy = lifecycle.load_policy(request.app.state.settings, session, principal.tenant_id)
    raised = lifecycle.supervise(session, principal.tenant_id, policy=policy, actor=principal.user.username)
    session.commit()
    return [{"id": t.id, "number": t.number, "level": level, "message": lifecycle.SUPERVISION_LEVELS[level][1]}
            for t, level in raised]


@router.get("/sms-delivery")
def sms_delivery(principal: Principal = Depends(require_roles(*REPORTERS)), session: Session = Depends(get_session, scope="function"),
                 start: date | None = None, end: date | None = None) -> dict:
    """短信有效到达率 with its working: sent, delivered, excluded (空号/停机/终端异常) and counts by status."""
    return sms.delivery_rate(session, principal.tenant_id, *_range(session, principal.tenant_id, start, end))


@router.get("/integrations")
def integrations_status(principal: Principal = Depends(require_roles("supervisor", "admin")),
                        session: Session = Depends(get_session, scope="function")) -> dict:
    """Operators' view of the links: outbox and SMS counts by status, dead messages and parked events."""
    outbox_counts = session.execute(select(OutboxMessage.channel, OutboxMessage.status, func.count())
                                    .where(OutboxMessage.tenant_id == principal.tenant_id)
                                    .group_by(OutboxMessage.channel, OutboxMessage.status)).all()
    sms_counts = session.execute(select(SmsMessage.status, func.count()).where(
        SmsMessage.tenant_id == principal.tenant_id).group_by(SmsMessage.status)).all()
    dead = session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == principal.tenant_id,
                                                       OutboxMessage.status == "dead")
                           .order_by(OutboxMessage.id.desc()).limit(100))
    parked = session.scalars(select(ParkedEvent).where(ParkedEvent.tenant_id == principal.tenant_id)
                             .order_by(ParkedEvent.id).limit(100))
    return {"outbox": [{"channel": c, "status": st, "count": n} for c, st, n in outbox_counts],
            "sms": {st: n for st, n in sms_counts},
            "dead": [{"id": m.id, "channel": m.channel, "key": m.idempotency_key, "attempts": m.attempts,
                      "last_error": m.last_error} for m in dead],
            "parked": [{"channel": p.channel, "event_id": p.event_id, "order_id": p.ref, "seq": p.seq,
                        "received_at": p.received_at.isoformat()} for p in parked]}


@router.post("/integrations/outbox/{message_id}/retry")
def retry_dead(message_id: int, principal: Principal = Depends(require_roles("admin")),
               session: Session = Depends(get_session, scope="function")) -> dict:
    """Put a dead outbox message back in the queue (after the peer or the keys were fixed)."""
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id,
                                                         OutboxMessage.tenant_id == principal.tenant_id))
    if message is None:
        raise not_found("外发消息")
    if message.status != "dead":
        raise AppError("not_dead", "只有投递失败的消息可以重新投递", 409)
    message.status, message.attempts, message.next_attempt_at = "pending", 0, utcnow()
    session.commit()
    return {"id": message.id, "status": message.status}


@router.get("/{ticket_id}")
def get_ticket(ticket_id: int, request: Request, principal: Principal = Depends(require_roles(*READERS)),
               session: Session = Depends(get_session, scope="function")) -> dict:
    """A ticket with its history, SLA timer and the attached transcript."""
    ticket = _get(session, principal, ticket_id)
    out = _out(ticket, utcnow(), lifecycle.load_policy(request.app.state.settings, session, principal.tenant_id))
    out["history"] = [{"action": e.action, "from": e.from_state, "to": e.to_state, "actor": e.actor, "note": e.note,
                       "at": e.at.isoformat()} for e in lifecycle.history(session, ticket)]
    segment_ids = ticket.attachments.get("transcript_segment_ids", [])
    segments = session.scalars(select(TranscriptSegment).where(TranscriptSegment.id.in_(segment_ids))
                               .order_by(TranscriptSegment.start_ms)) if segment_ids else []
    out["transcript"] = [{"role": s.speaker_role, "start_ms": s.start_ms, "text": s.text} for s in segments]
    out["recording_ids"] = ticket.attachments.get("recording_ids", [])
    return out


@router.post("/{ticket_id}/actions")
def act(ticket_id: int, body: ActionIn, request: Request, principal: Principal = Depends(require_roles(*DESK)),
        session: Session = Depends(get_session, scope="function")) -> dict:
    """One lifecycle action; illegal ones get 409 with the current state and the allowed actions."""
    if body.action == "reopen" and principal.role != "supervisor":
        raise AppError("forbidden", "只有班长/主管可以重新打开工单", 403)
    settings = request.app.state.settings
    policy = lifecycle.load_policy(settings, session, principal.tenant_id)
    ticket = _get(session, principal, ticket_id)
    event = lifecycle.transition(session, ticket, body.action, actor=principal.user.username, department=body.department,
                                 reason=body.reason, result=body.result, satisfaction=body.satisfaction,
                                 note=body.note, policy=policy)
    notify(session, ticket, event, settings)
    session.commit()  # durable before the response (get_session's commit runs after it is sent)
    return _out(ticket, utcnow(), policy)
