"""Database side of the bridge: block list, IVR menu, global queue order, ACD claims and the CDR.

Agent state lives in the ``agents`` table so every worker process (and the
operations API) shares one view; claims are conditional UPDATEs, so two
workers can never take the same agent.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain.models import Agent, BlockedNumber, Call, CallLeg, Recording, SkillGroup, Tenant, utcnow

LIVE = ("in_progress", "ivr", "queued", "alerting", "talking")


def tenant_id(session: Session, code: str) -> int:
    row = session.scalar(select(Tenant).where(Tenant.code == code))
    if row is None:
        row = Tenant(code=code, name=code)
        session.add(row)
        session.flush()
    return row.id


def is_blocked(session: Session, tenant: int, number: str) -> bool:
    return session.scalar(
        select(BlockedNumber.id).where(BlockedNumber.tenant_id == tenant, BlockedNumber.number == number).limit(1)
    ) is not None


def skill_for_digit(session: Session, tenant: int, digit: str) -> str | None:
    return session.scalar(select(SkillGroup.code).where(SkillGroup.tenant_id == tenant, SkillGroup.dtmf == digit))


def skill_exists(session: Session, tenant: int, code: str) -> bool:
    return session.scalar(select(SkillGroup.id).where(SkillGroup.tenant_id == tenant, SkillGroup.code == code)) is not None


def create_call(session: Session, tenant: int, call_uuid: str, caller: str, dialled: str, direction: str = "in") -> int:
    row = Call(tenant_id=tenant, call_uuid=call_uuid, caller_number=caller[:32], dialled_number=dialled[:32],
               direction=direction, result="in_progress")
    session.add(row)
    session.flush()
    return row.id


def set_status(session: Session, call_id: int, status: str, **fields) -> None:
    session.execute(update(Call).where(Call.id == call_id).values(result=status, **fields))


def queue_position(session: Session, tenant: int, skill: str, call_id: int) -> int:
    """1-based position among live queued calls of the skill group, across all workers (arrival order)."""
    ids = session.scalars(
        select(Call.id).where(Call.tenant_id == tenant, Call.skill_group == skill, Call.result == "queued",
                              Call.ended_at.is_(None)).order_by(Call.id)
    ).all()
    return ids.index(call_id) + 1 if call_id in ids else 0


def _ready_clause(acw_s: float):
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=acw_s)
    return (Agent.state == "ready") | ((Agent.state == "acw") & (Agent.state_since <= cutoff))


def claim_agent(session: Session, tenant: int, skill: str, caller: str, acw_s: float,
                exclude: set[int] = frozenset()) -> Agent | None:
    """Longest-idle ready agent with the skill; the agent who last served this caller wins when free."""
    candidates = [
        a for a in session.scalars(
            select(Agent).where(Agent.tenant_id == tenant, _ready_clause(acw_s)).order_by(Agent.state_since, Agent.id)
        )
        if (skill in (a.skills or []) or not skill) and a.id not in exclude and a.sip_uri
    ]
    last = session.scalar(
        select(Call.agent_id).where(Call.tenant_id == tenant, Call.caller_number == caller, Call.agent_id.is_not(None),
                                    Call.result == "answered").order_by(Call.id.desc()).limit(1)
    )
    candidates.sort(key=lambda a: a.id != last)  # stable: repeat-caller agent first, then longest idle
    for agent in candidates:
        claimed = session.execute(
            update(Agent).where(Agent.id == agent.id, _ready_clause(acw_s)).values(state="busy", state_since=utcnow())
        ).rowcount
        if claimed:
            session.flush()
            return agent
    return None


def claim_agent_by_work_no(session: Session, tenant: int, work_no: str, acw_s: float) -> Agent | None:
    agent = session.scalar(select(Agent).where(Agent.tenant_id == tenant, Agent.work_no == work_no))
    if agent is None or not agent.sip_uri:
        return None
    claimed = session.execute(
        update(Agent).where(Agent.id == agent.id, _ready_clause(acw_s)).values(state="busy", state_since=utcnow())
    ).rowcount
    return agent if claimed else None


def claim_agent_for_callback(session: Session, tenant: int, work_no: str) -> Agent | None:
    """An agent places a callback from any signed-in, not-busy state."""
    agent = session.scalar(select(Agent).where(Agent.tenant_id == tenant, Agent.work_no == work_no))
    if agent is None or not agent.sip_uri:
        return None
    claimed = session.execute(
        update(Agent).where(Agent.id == agent.id, Agent.state.in_(("ready", "not_ready", "acw")))
        .values(state="busy", state_since=utcnow())
    ).rowcount
    return agent if claimed else None


def release_agent(session: Session, agent_id: int, state: str) -> None:
    """Leave ``busy`` (only if still busy: an agent who signed out meanwhile stays signed out)."""
    session.execute(update(Agent).where(Agent.id == agent_id, Agent.state == "busy").values(state=state, state_since=utcnow()))


def finish_call(session: Session, call_id: int, *, result: str, hangup_side: str, lost_reason: str, ivr_path: str,
                skill: str, queue_wait_ms: int, agent_id: int | None, answered_at: datetime | None,
                hold_ms: int, transfers: int, legs: list[dict]) -> None:
    call = session.get(Call, call_id)
    call.result, call.hangup_side, call.lost_reason = result, hangup_side, lost_reason[:200]
    call.ivr_path, call.skill_group, call.queue_wait_ms = ivr_path[:64], skill[:32], queue_wait_ms
    call.agent_id, call.answered_at, call.ended_at = agent_id, answered_at, utcnow()
    call.hold_ms, call.transfers = hold_ms, transfers
    for leg in legs:
        session.add(CallLeg(tenant_id=call.tenant_id, call_id=call_id, **leg))


def add_recording(session: Session, call_id: int, path: str, duration_ms: int, sha256: str) -> None:
    tenant = session.get(Call, call_id).tenant_id
    session.add(Recording(tenant_id=tenant, call_id=call_id, path=path, duration_ms=duration_ms, sha256=sha256))


def mark_orphans(session: Session, worker: str, reason: str) -> int:
    """Calls a dead worker left open: lost before an agent was assigned, otherwise answered and cut by the system."""
    n = 0
    for call in session.scalars(select(Call).where(Call.call_uuid.like(f"{worker}-%"), Call.ended_at.is_(None))):
        if call.result in LIVE:
            call.result = "answered" if call.answered_at else "lost"
            call.lost_reason = "" if call.answered_at else reason
            call.hangup_side = "system"
            call.ended_at = utcnow()
            if call.agent_id:
                release_agent(session, call.agent_id, "ready")
            n += 1
    return n
