"""Call-flow parameters and the pure rules of the CDR (no SIP, no database)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Result = Literal["answered", "abandoned", "abandoned_short", "lost", "blocked", "out_of_hours", "unanswered"]


class CallFlowParams(BaseModel):
    """Tunable thresholds of the bridge's call flow (set via HOTLINE_TELEPHONY_FLOW as JSON)."""

    ivr_timeout_s: float = Field(8.0, description="Seconds to wait for a menu key after the menu prompt ends.")
    ivr_retries: int = Field(2, description="Menu repetitions before routing to default_skill.")
    default_skill: str = Field("general", description="Skill group used when the caller presses nothing.")
    abandon_short_s: float = Field(20.0, description="Caller hang-ups before an agent answers within this many seconds are abandoned_short (excluded from KPI).")
    max_queue_wait_s: float = Field(300.0, description="Queue wait after which the call is released with the busy prompt (counted as lost).")
    position_every_s: float = Field(30.0, description="Interval between queue-position announcements.")
    agent_ring_timeout_s: float = Field(20.0, description="Ringing an agent longer than this puts the agent not-ready and re-queues the call.")
    acw_s: float = Field(0.0, description="After-call work seconds before the agent is offered calls again (0 = ready at once).")
    acd_poll_s: float = Field(0.2, description="How often queued calls look for a free agent.")
    db_retry_attempts: int = Field(12, description="Tries of a call's end-of-call write (CDR, recording) while the database is busy.")
    db_retry_max_s: float = Field(30.0, description="Longest wait between those tries (the wait doubles from 1 s).")
    conversations_per_worker: int = Field(2, description="Conversations a worker accepts (2 SIP calls each; pjsua2 wheel allows 4 calls per process).")



def classify_end(*, answered: bool, outbound: bool = False, blocked: bool, closed: bool, lost_reason: str, hangup_side: str,
                 seconds_before_answer: float, params: CallFlowParams) -> Result:
    """The CDR result of a call that just ended."""
    if blocked:
        return "blocked"
    if closed:
        return "out_of_hours"
    if answered:
        return "answered"
    if outbound:
        return "unanswered"
    if lost_reason or hangup_side == "system":
        return "lost"
    return "abandoned_short" if seconds_before_answer < params.abandon_short_s else "abandoned"


def sip_user(uri: str) -> str:
    """``"Foo" <sip:13800000000@1.2.3.4;x=y>`` -> ``13800000000``."""
    s = uri.split("<", 1)[-1].split(">", 1)[0]
    s = s.split(":", 1)[-1] if s.startswith(("sip:", "sips:", "tel:")) else s
    return s.split("@", 1)[0].split(";", 1)[0]
