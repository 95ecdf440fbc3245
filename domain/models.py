"""SQLAlchemy 2 tables of the hotline domain.

Every tenant-owned table carries ``tenant_id``; queries go through
:func:`domain.db.tenant_query` helpers so no query returns another tenant's rows.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A moment in time, stored as UTC and read back as an aware UTC ``datetime`` on every database (SQLite keeps
    no offset): so every ``isoformat()`` an API writes carries its offset, and the pages show it in the tenant's
    zone.  A naive value written is taken to be UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or not isinstance(value, datetime):
            return value
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return value
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict: JSON, list: JSON}


class TenantOwned:
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)


# ---------------------------------------------------------------- accounts
class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantSettingsRow(Base):
    """A tenant's own facts (lexicon, places, contract numbers, time zone …), validated by
    :class:`domain.tenant_settings.TenantSettings`; one row per tenant, absent = the defaults."""

    __tablename__ = "tenant_settings"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Role(Base):
    __tablename__ = "roles"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    label: Mapped[str] = mapped_column(String(64))


class User(TenantOwned, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # the password was set by someone else (account created, admin reset, demo loader): the UI asks for a new one
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthSession(TenantOwned, Base):
    """A browser session or an API bearer token (only its hash is stored)."""

    __tablename__ = "auth_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # cookie | bearer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# ---------------------------------------------------------------- agents and calls
class SkillGroup(TenantOwned, Base):
    __tablename__ = "skill_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    dtmf: Mapped[str] = mapped_column(String(4), default="")


class Agent(TenantOwned, Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("tenant_id", "work_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    work_no: Mapped[str] = mapped_column(String(16))  # 工号
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    skills: Mapped[list] = mapped_column(JSON, default=list)
    sip_uri: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), default="signed_out")  # signed_out|ready|not_ready|busy|acw
    state_since: Mapped[datetime] = mapped_column(default=utcnow)
    hired_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class Queue(TenantOwned, Base):
    __tablename__ = "queues"
    id: Mapped[int] = mapped_column(primary_key=True)
    skill_group_id: Mapped[int] = mapped_column(ForeignKey("skill_groups.id"))
    name: Mapped[str] = mapped_column(String(100))
    max_wait_s: Mapped[int] = mapped_column(Integer, default=300)


class BlockedNumber(TenantOwned, Base):
    __tablename__ = "blocked_numbers"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(200), default="")


class Call(TenantOwned, Base):
    """A call detail record (CDR)."""

    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_uuid: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default="in")
    caller_number: Mapped[str] = mapped_column(String(32), index=True)
    dialled_number: Mapped[str] = mapped_column(String(32), default="12345")
    ivr_path: Mapped[str] = mapped_column(String(64), default="")
    skill_group: Mapped[str] = mapped_column(String(32), default="")
    queue_wait_ms: Mapped[int] = mapped_column(Integer, default=0)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    hangup_side: Mapped[str] = mapped_column(String(16), default="")  # caller|agent|system
    result: Mapped[str] = mapped_column(String(32), default="")  # answered|abandoned|abandoned_short|lost|blocked|out_of_hours
    lost_reason: Mapped[str] = mapped_column(String(200), default="")
    satisfaction: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hold_ms: Mapped[int] = mapped_column(Integer, default=0)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    district: Mapped[str] = mapped_column(String(32), default="")
    category: Mapped[str] = mapped_column(String(200), default="")  # the copilot's, until a ticket says otherwise
    legs: Mapped[list["CallLeg"]] = relationship(back_populates="call", cascade="all, delete-orphan")


class CallLeg(TenantOwned, Base):
    __tablename__ = "call_legs"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    leg: Mapped[str] = mapped_column(String(16))  # caller|agent
    remote_uri: Mapped[str] = mapped_column(String(200), default="")
    frames_received: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    call: Mapped[Call] = relationship(back_populates="legs")


class Recording(TenantOwned, Base):
    __tablename__ = "recordings"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True, nullable=True)
    path: Mapped[str] = mapped_column(String(500))
    sample_rate: Mapped[int] = mapped_column(Integer, default=8000)
    channels: Mapped[int] = mapped_column(Integer, default=2)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TranscriptSegment(TenantOwned, Base):
    __tablename__ = "transcript_segments"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True, nullable=True)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), nullable=True)
    leg: Mapped[str] = mapped_column(String(16))
    speaker_role: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    is_final: Mapped[bool] = mapped_column(Boolean, default=True)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    engine: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentMessage(TenantOwned, Base):
    __tablename__ = "agent_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    from_agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    to_agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceOutage(TenantOwned, Base):
    """Recorded outages of the call system or the lines (KPI 1 and 2)."""

    __tablename__ = "service_outages"
    id: Mapped[int] = mapped_column(primary_key=True)
    system: Mapped[str] = mapped_column(String(16))  # call_system|line
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column()
    force_majeure: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(String(200), default="")


# ---------------------------------------------------------------- tickets
class Ticket(TenantOwned, Base):
    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(24), default="created", index=True)
    category: Mapped[str] = mapped_column(String(200), default="")
    request_type: Mapped[str] = mapped_column(String(8), default="咨询")
    caller_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    incident_address: Mapped[str] = mapped_column(String(300), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    respondent: Mapped[str] = mapped_column(String(200), default="")
    department: Mapped[str] = mapped_column(String(100), default="")
    district: Mapped[str] = mapped_column(String(32), default="")
    kb_entry_ids: Mapped[list] = mapped_column(JSON, default=list)
    due_at: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
    satisfaction: Mapped[int | None] = mapped_column(Integer, nullable=True)
    supervised: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)  # 0 none, 1 reminded, 2 overdue, 3 escalated
    source: Mapped[str] = mapped_column(String(16), default="hotline")  # hotline|auto|police110|provincial
    external_ref: Mapped[str] = mapped_column(String(64), default="", index=True)  # the other side's work-order id
    attachments: Mapped[dict] = mapped_column(JSON, default=dict)  # recording ids, transcript segment ids, draft
    sync: Mapped[dict] = mapped_column(JSON, default=dict)  # per channel: last applied inbound seq, outbound seq
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TicketCounter(TenantOwned, Base):
    """Per-tenant, per-day sequence behind readable ticket numbers (LB20261124-0001)."""

    __tablename__ = "ticket_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(String(8))
    last: Mapped[int] = mapped_column(Integer, default=0)


class TicketEvent(TenantOwned, Base):
    __tablename__ = "ticket_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(24), default="", index=True)
    actor: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SmsMessage(TenantOwned, Base):
    __tablename__ = "sms_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    phone: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), default="queued")  # queued|sent|delivered|failed|empty_number|suspended|abnormal_handset
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    gateway_id: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxMessage(TenantOwned, Base):
    """Outgoing integration messages (110 exchange, provincial platform), delivered at least once."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxReceipt(Base):
    """Idempotent receipt of inbound integration events."""

    __tablename__ = "inbox_receipts"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("channel", "event_id"),)


class ParkedEvent(TenantOwned, Base):
    """An inbound integration event that arrived ahead of its predecessors (out of order), kept until they come."""

    __tablename__ = "parked_events"
    __table_args__ = (UniqueConstraint("channel", "event_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(100))
    ref: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------- knowledge
class KnowledgeEntry(TenantOwned, Base):
    __tablename__ = "knowledge_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    kind: Mapped[str] = mapped_column(String(16), default="faq")  # faq|policy|announcement|department|service_item
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft|review|published|archived
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    suggested_count: Mapped[int] = mapped_column(Integer, default=0)
    used_count: Mapped[int] = mapped_column(Integer, default=0)
    unhelpful_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    versions: Mapped[list["KnowledgeVersion"]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", order_by="KnowledgeVersion.version"
    )


class KnowledgeVersion(TenantOwned, Base):
    __tablename__ = "knowledge_versions"
    __table_args__ = (UniqueConstraint("entry_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("knowledge_entries.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    department: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    effective_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    effective_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    source: Mapped[str] = mapped_column(String(300), default="")
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    entry: Mapped[KnowledgeEntry] = relationship(back_populates="versions")


class KnowledgeFeedback(TenantOwned, Base):
    __tablename__ = "knowledge_feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("knowledge_entries.id"), nullable=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(24))  # used|unhelpful|category_corrected
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------- QA and KPI
class Scorecard(TenantOwned, Base):
    __tablename__ = "scorecards"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    definition: Mapped[dict] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QAResult(TenantOwned, Base):
    """One score of a call.  Re-scoring a call adds a new version and supersedes the previous one: a call has at
    most one current result (``superseded_at`` is NULL), which is what the review queue and the KPI count."""

    __tablename__ = "qa_results"
    __table_args__ = (
        Index("uq_qa_results_current_call", "call_id", unique=True,
              sqlite_where=text("superseded_at IS NULL"), postgresql_where=text("superseded_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True, nullable=True)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), nullable=True)
    scorecard_id: Mapped[int] = mapped_column(ForeignKey("scorecards.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    serious_service_violation: Mapped[bool] = mapped_column(Boolean, default=False)
    serious_answer_error: Mapped[bool] = mapped_column(Boolean, default=False)
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    review_state: Mapped[str] = mapped_column(String(16), default="auto")  # auto|queued|reviewed
    agent_state: Mapped[str] = mapped_column(String(16), default="")  # acknowledged|appealed|appeal_upheld|appeal_rejected
    version: Mapped[int] = mapped_column(Integer, default=1)  # 1, 2, … per call
    superseded_at: Mapped[datetime | None] = mapped_column(nullable=True)  # when a re-score replaced it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    items: Mapped[list["QAItemResult"]] = relationship(back_populates="result", cascade="all, delete-orphan")


class QAItemResult(TenantOwned, Base):
    __tablename__ = "qa_item_results"
    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("qa_results.id"), index=True)
    item_code: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(100))
    passed: Mapped[bool] = mapped_column(Boolean)
    severity: Mapped[str] = mapped_column(String(16))  # serious|minor
    weight: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list] = mapped_column(JSON, default=list)  # [{start_ms,end_ms,text,kb_entry_id?}]
    result: Mapped[QAResult] = relationship(back_populates="items")


class QAReview(TenantOwned, Base):
    __tablename__ = "qa_reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_result_id: Mapped[int] = mapped_column(ForeignKey("qa_item_results.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(16))  # confirm|overturn
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class KpiMonth(TenantOwned, Base):
    __tablename__ = "kpi_months"
    __table_args__ = (UniqueConstraint("tenant_id", "month"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    manual: Mapped[dict] = mapped_column(JSON, default=dict)  # 表扬/惩罚, leavers, complaints
    computed: Mapped[dict] = mapped_column(JSON, default=dict)  # indicator-by-indicator working
    total_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    coefficient: Mapped[float | None] = mapped_column(Float, nullable=True)
    fee_cny: Mapped[float | None] = mapped_column(Float, nullable=True)
    computed_at: Mapped[datetime | None] = mapped_column(nullable=True)
