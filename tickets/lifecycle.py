"""Work orders (工单): creation from the agent-confirmed draft, readable numbering, the lifecycle state
machine with its history, SLA deadlines and supervision (督办).

Lifecycle (``TRANSITIONS`` is the single source of truth)::

    created     --dispatch(department)-->   dispatched
    dispatched  --sign-->                   signed
    dispatched, signed --return(reason)-->  returned
    returned    --redispatch(department)--> dispatched
    signed      --start-->                  in_progress
    created, signed, in_progress --complete(result)--> completed   (from created: answered on the phone)
    completed   --callback(satisfaction)--> callback
    completed, callback --close-->          closed
    completed, callback, closed --reopen(reason)--> created  (SLA restarts)

Every change is a :class:`~domain.models.TicketEvent`; illegal actions raise :class:`AppError` with a
Chinese message naming the current state and the allowed actions. Time is always passed in (``now``), so
SLA timers are driven by a controllable clock in tests and by the wall clock in production. What an event
sets off (the SMS, the partners' events) is :func:`tickets.notify.notify`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, PrivateAttr
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import tenant_settings
from domain.errors import AppError
from domain.models import Call, Recording, Tenant, Ticket, TicketCounter, TicketEvent, TranscriptSegment, utcnow
from domain.validation import SafeText, ShortText

STATE_LABELS: dict[str, str] = {
    "created": "已创建",
    "dispatched": "已派单",
    "signed": "已签收",
    "returned": "已退单",
    "in_progress": "办理中",
    "completed": "已办结",
    "callback": "已回访",
    "closed": "已关闭",
}
OPEN_STATES = frozenset({"created", "dispatched", "signed", "returned", "in_progress"})


@dataclass(frozen=True)
class Transition:
    label: str
    sources: frozenset[str]
    target: str
    requires: tuple[str, ...] = ()  # fields the action must carry


TRANSITIONS: dict[str, Transition] = {
    "dispatch": Transition("派单", frozenset({"created"}), "dispatched", ("department",)),
    "sign": Transition("签收", frozenset({"dispatched"}), "signed"),
    "return": Transition("退单", frozenset({"dispatched", "signed"}), "returned", ("reason",)),
    "redispatch": Transition("重新派单", frozenset({"returned"}), "dispatched", ("department",)),
    "start": Transition("开始办理", frozenset({"signed"}), "in_progress"),
    "complete": Transition("办结", frozenset({"created", "signed", "in_progress"}), "completed", ("result",)),
    "callback": Transition("回访", frozenset({"completed"}), "callback", ("satisfaction",)),
    "close": Transition("关闭", frozenset({"completed", "callback"}), "closed"),
    "reopen": Transition("重新打开", frozenset({"completed", "callback", "closed"}), "created", ("reason",)),
}
_REQUIRED_LABELS = {"department": "承办部门", "reason": "原因", "result": "办理结果", "satisfaction": "满意度（1–5）"}
Action = Literal["dispatch", "sign", "return", "redispatch", "start", "complete", "callback", "close", "reopen"]


# ---------------------------------------------------------------- parameters
class SlaRule(BaseModel):
    category_prefix: str = Field(description="Matches categories starting with this path, e.g. 城乡建设/公用事业.")
    hours: float = Field(gt=0, description="Hours from creation (or reopening) to the deadline.")


class SlaPolicy(BaseModel):
    """SLA deadlines per category and the supervision (督办) thresholds; the longest matching prefix wins."""

    default_hours: float = Field(120.0, gt=0, description="Deadline for categories no rule matches (5 days).")
    rules: list[SlaRule] = Field(default_factory=lambda: [
        SlaRule(category_prefix="城乡建设/公用事业", hours=24),  # water, power, gas outages
        SlaRule(category_prefix="城乡建设/市政设施", hours=72),
        SlaRule(category_prefix="卫生健康/公共卫生", hours=24),
        SlaRule(category_prefix="市场监管/食品安全", hours=48),
        SlaRule(category_prefix="劳动和社会保障/劳动关系", hours=72),  # unpaid wages
        SlaRule(category_prefix="公安政法/治安管理", hours=24),
    ])
    remind_fraction: float = Field(0.8, gt=0, lt=1, description="Remind (督办提醒) once this share of the SLA has elapsed.")
    escalate_after_hours: float = Field(24.0, ge=0, description="Escalate to the supervisor this long after the deadline.")
    working_days_only: bool = Field(False, description="Count SLA hours on working days only (local time).")
    holidays: list[date] = Field(default_factory=list, description="Public holidays (not working days).")
    workdays: list[date] = Field(default_factory=list, description="Weekend make-up working days (调休上班).")
    # the tenant's zone, whose calendar days ``working_days_only`` counts (set by ``load_policy``)
    _zone: ZoneInfo = PrivateAttr(default_factory=lambda: ZoneInfo(tenant_settings.DEFAULT_TIME_ZONE))

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def hours_for(self, category: str) -> float:
        matches = [r for r in self.rules if category.startswith(r.category_prefix)]
        return max(matches, key=lambda r: len(r.category_prefix)).hours if matches else self.default_hours

    def _working(self, day: date) -> bool:
        if not self.working_days_only or day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def _days(self, start: datetime):
        """(day start, next day start, working?) for each local day from ``start``'s day on (at most 10 years)."""
        tz = self._zone
        day = start.astimezone(tz).date()
        for _ in range(3660):
            yield (datetime.combine(day, time(), tz), datetime.combine(day + timedelta(days=1), time(), tz),
                   self._working(day))
            day += timedelta(days=1)
        raise ValueError("SLA calendar has no working days")

    def deadline(self, start: datetime, category: str) -> datetime:
        """``start`` plus the category's SLA hours, counted on working days when ``working_days_only``."""
        left = timedelta(hours=self.hours_for(category))
        if not self.working_days_only:
            return start + left
        for day_start, day_end, working in self._days(start):
            if working:
                begin = max(start, day_start)
                if begin + left <= day_end:
                    return (begin + left).astimezone(timezone.utc)
                left -= day_end - begin
        raise AssertionError("unreachable")

    def hours_between(self, start: datetime, end: datetime) -> float:
        """SLA hours from ``start`` to ``end`` (0 when end is not later)."""
        if end <= start:
            return 0.0
        if not self.working_days_only:
            return (end - start).total_seconds() / 3600
        total = timedelta()
        for day_start, day_end, working in self._days(start):
            if day_start >= end:
                break
            if working:
                total += min(end, day_end) - max(start, day_start)
        return total.total_seconds() / 3600


# ---------------------------------------------------------------- drafts and numbering
class TicketDraft(BaseModel):
    """The ticket draft as the agent confirmed or edited it in the desk (the copilot proposes it)."""

    category: ShortText = ""
    request_type: Literal["咨询", "求助", "投诉", "举报", "建议"] = "咨询"
    caller_name: ShortText = ""
    phone: str = Field("", pattern=r"^\+?[0-9-]{0,20}$")
    address: ShortText = ""
    incident_address: ShortText = ""
    summary: SafeText = Field("", max_length=4000)
    respondent: ShortText = ""
    district: ShortText = ""
    kb_entry_ids: list[int] = Field(default_factory=list, max_length=50)


def number_prefix(tenant: Tenant) -> str:
    """Two initials of the city (南宁 → NN), from the tenant name; falls back to the tenant code."""
    from pypinyin import Style, lazy_pinyin

    hanzi = [c for c in tenant.name if "\u4e00" <= c <= "\u9fff"][:2]
    if len(hanzi) == 2:
        return "".join(lazy_pinyin(hanzi, style=Style.FIRST_LETTER)).upper()
    return tenant.code[:2].upper()


def next_number(session: Session, tenant: Tenant, now: datetime) -> str:
    """The next readable number of the tenant for its local day, e.g. LB20261124-0001 (atomic per row lock)."""
    day = now.astimezone(tenant_settings.zone(session, tenant.id)).strftime("%Y%m%d")
    bump = (update(TicketCounter).where(TicketCounter.tenant_id == tenant.id, TicketCounter.day == day)
            .values(last=TicketCounter.last + 1).returning(TicketCounter.last))
    seq = session.execute(bump).scalar()
    if seq is None:
        try:
            with session.begin_nested():
                session.execute(insert(TicketCounter).values(tenant_id=tenant.id, day=day, last=1))
            seq = 1
        except IntegrityError:  # another transaction created today's counter first
            seq = session.execute(bump).scalar()
    return f"{number_prefix(tenant)}{day}-{seq:04d}"


# ---------------------------------------------------------------- creation
def _event(session: Session, ticket: Ticket, action: str, source: str, actor: str, note: str, now: datetime) -> TicketEvent:
    event = TicketEvent(tenant_id=ticket.tenant_id, ticket_id=ticket.id, from_state=source, to_state=ticket.state,
                        action=action, actor=actor, note=note, at=now)
    session.add(event)
    return event


def create_ticket(session: Session, tenant_id: int, draft: TicketDraft, *, actor: str, now: datetime | None = None,
                  policy: SlaPolicy | None = None, call: Call | None = None, source: str = "hotline",
                  external_ref: str = "", created_by: int | None = None, note: str = "") -> Ticket:
    """Create a ticket in state ``created`` with its number, SLA deadline and attachments of the call."""
    now = now or utcnow()
    policy = policy or SlaPolicy()
    tenant = session.get(Tenant, tenant_id)
    attachments: dict = {"draft": draft.model_dump()}
    if call is not None:
        attachments["recording_ids"] = list(session.scalars(
            select(Recording.id).where(Recording.call_id == call.id).order_by(Recording.id)))
        attachments["transcript_segment_ids"] = list(session.scalars(
            select(TranscriptSegment.id).where(TranscriptSegment.call_id == call.id, TranscriptSegment.is_final)
            .order_by(TranscriptSegment.start_ms)))
    ticket = Ticket(
        tenant_id=tenant_id, number=next_number(session, tenant, now), call_id=call.id if call else None,
        state="created", category=draft.category, request_type=draft.request_type, caller_name=draft.caller_name,
        phone=draft.phone or (call.caller_number if call else ""), address=draft.address,
        incident_address=draft.incident_address, summary=draft.summary, respondent=draft.respondent,
        district=draft.district or (call.district if call else ""), kb_entry_ids=list(draft.kb_entry_ids),
        due_at=policy.deadline(now, draft.category), source=source, external_ref=external_ref,
        attachments=attachments, sync={}, created_by=created_by, created_at=now, updated_at=now,
    )
    session.add(ticket)
    session.flush()
    _event(session, ticket, "create", "", actor, note, now)
    return ticket


def create_from_hangup(session: Session, call: Call, draft: TicketDraft | None, *, confirmed: bool, actor: str,
                       auto_create: bool = False, now: datetime | None = None, policy: SlaPolicy | None = None,
                       created_by: int | None = None) -> Ticket:
    """The ticket of a finished call, from the draft the agent confirmed (or edited) in the desk.

    Without the agent's confirmation a ticket is created only when the call is configured for fully automatic
    creation (``auto_create``); one call yields at most one ticket.
    """
    if draft is None or not (confirmed or auto_create):
        raise AppError("draft_not_confirmed", "工单草稿尚未经话务员确认，不能创建工单", 409)
    existing = session.scalar(select(Ticket).where(Ticket.tenant_id == call.tenant_id, Ticket.call_id == call.id))
    if existing is not None:
        raise AppError("ticket_exists", f"该通话已生成工单 {existing.number}", 409, {"number": existing.number})
    return create_ticket(session, call.tenant_id, draft, actor=actor, now=now, policy=policy, call=call,
                         source="hotline" if confirmed else "auto", created_by=created_by,
                         note="话务员确认草稿" if confirmed else "通话配置为自动建单")


# ---------------------------------------------------------------- state machine
def allowed_actions(state: str) -> list[str]:
    return [name for name, t in TRANSITIONS.items() if state in t.sources]


def transition(session: Session, ticket: Ticket, action: str, *, actor: str, now: datetime | None = None,
               department: str = "", reason: str = "", result: str = "", satisfaction: int | None = None,
               note: str = "", policy: SlaPolicy | None = None) -> TicketEvent:
    """Apply one lifecycle action, or raise ``AppError('illegal_transition')`` and change nothing."""
    now = now or utcnow()
    spec = TRANSITIONS.get(action)
    if spec is None:
        raise AppError("unknown_action", f"未知的工单操作：{action}", 422)
    if ticket.state not in spec.sources:
        allowed = "、".join(TRANSITIONS[a].label for a in allowed_actions(ticket.state)) or "无"
        raise AppError("illegal_transition",
                       f"工单 {ticket.number} 当前状态为「{STATE_LABELS.get(ticket.state, ticket.state)}」，"
                       f"不能执行「{spec.label}」操作（当前可执行：{allowed}）", 409,
                       {"state": ticket.state, "action": action, "allowed": allowed_actions(ticket.state)})
    given = {"department": department.strip(), "reason": reason.strip(), "result": result.strip(),
             "satisfaction": satisfaction}
    missing = [_REQUIRED_LABELS[f] for f in spec.requires if given[f] in ("", None)]
    if missing:
        raise AppError("missing_field", f"「{spec.label}」操作需要填写：{'、'.join(missing)}", 422)
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise AppError("invalid_satisfaction", "满意度须为 1–5 的整数", 422)

    source = ticket.state
    ticket.state = spec.target
    if action in ("dispatch", "redispatch"):
        ticket.department = given["department"]
    elif action == "complete":
        ticket.result = given["result"]
        ticket.completed_at = now
    elif action == "callback":
        ticket.satisfaction = satisfaction
    elif action == "close":
        ticket.closed_at = now
    elif action == "reopen":
        policy = policy or SlaPolicy()
        ticket.reopen_count += 1
        ticket.completed_at = ticket.closed_at = ticket.satisfaction = None
        ticket.escalation_level = 0
        ticket.supervised = False
        ticket.due_at = policy.deadline(now, ticket.category)
    ticket.updated_at = now
    text = "；".join(x for x in (given["department"], given["reason"], given["result"],
                                 f"满意度 {satisfaction}" if satisfaction is not None else "", note.strip()) if x)
    return _event(session, ticket, action, source, actor, text, now)


def history(session: Session, ticket: Ticket) -> list[TicketEvent]:
    return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                .order_by(TicketEvent.at, TicketEvent.id)))


# ---------------------------------------------------------------- SLA timers and supervision
SUPERVISION_LEVELS = {1: ("remind", "督办提醒：办理时限即将到期"), 2: ("overdue", "超期督办：已超过办理时限"),
                      3: ("escalate", "升级督办：超期未办结，已上报值班长")}


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite returns naive UTC


def sla_level(ticket: Ticket, now: datetime, policy: SlaPolicy) -> int:
    """0 on time, 1 deadline near, 2 overdue, 3 overdue past the escalation window; open tickets only."""
    if ticket.state not in OPEN_STATES or ticket.due_at is None:
        return 0
    due = as_utc(ticket.due_at)
    if now >= due + timedelta(hours=policy.escalate_after_hours):
        return 3
    if now >= due:
        return 2
    remind_within_s = round(policy.hours_for(ticket.category) * (1 - policy.remind_fraction) * 3600)
    if round(policy.hours_between(now, due) * 3600) <= remind_within_s:
        return 1
    return 0


def sla_status(ticket: Ticket, now: datetime, policy: SlaPolicy) -> dict:
    """The timer shown next to a ticket: deadline, seconds left (negative when overdue) and supervision level."""
    due = as_utc(ticket.due_at) if ticket.due_at else None
    finished = as_utc(ticket.completed_at) if ticket.completed_at else None
    return {"due_at": due.isoformat() if due else None,
            "remaining_s": int((due - now).total_seconds()) if due and ticket.state in OPEN_STATES else None,
            "level": sla_level(ticket, now, policy),
            "on_time": (finished <= due) if (finished and due) else None}


def supervise(session: Session, tenant_id: int, *, now: datetime | None = None, policy: SlaPolicy | None = None,
              actor: str = "system") -> list[tuple[Ticket, int]]:
    """Raise reminders and escalations for open tickets whose deadline nears or has passed.

    Each level is raised once per ticket (until the ticket is reopened), as a same-state TicketEvent; returns the
    tickets whose level went up, for notifying agents and supervisors.
    """
    now = now or utcnow()
    policy = policy or SlaPolicy()
    raised = []
    tickets = session.scalars(select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.state.in_(OPEN_STATES),
                                                   Ticket.due_at.is_not(None)).order_by(Ticket.id))
    for ticket in tickets:
        level = sla_level(ticket, now, policy)
        if level <= ticket.escalation_level:
            continue
        ticket.escalation_level = level
        ticket.supervised = ticket.supervised or level >= 2
        action, text = SUPERVISION_LEVELS[level]
        _event(session, ticket, action, ticket.state, actor, text, now)
        raised.append((ticket, level))
    session.flush()
    return raised


def load_policy(settings, session: Session, tenant_id: int) -> SlaPolicy:
    """The tenant's SLA policy: the deployment's category rules and supervision thresholds (``HOTLINE_TICKET_SLA``
    as JSON; empty = the defaults above) with the tenant's SLA days, working-days rule and time zone
    (:mod:`domain.tenant_settings`)."""
    policy = SlaPolicy.model_validate_json(settings.ticket_sla) if settings.ticket_sla else SlaPolicy()
    own = tenant_settings.get(session, tenant_id)
    policy = policy.model_copy(update={"default_hours": own.time.sla_days * 24,
                                       "working_days_only": own.time.working_days_only})
    policy._zone = own.zone
    return policy

