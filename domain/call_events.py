"""Typed, versioned frames and events that flow through a call.

A call is a pipeline of small processors passing these frames (audio in,
partial and final transcripts, suggestions, alerts out).  Every event carries
``tenant_id``, ``call_id`` and a timestamp so it can cross process and machine
boundaries as JSON.
"""
from __future__ import annotations

import time
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter

SCHEMA_VERSION = 1

Leg = Literal["caller", "agent"]
Role = Literal["caller", "agent", "unknown"]


class Event(BaseModel):
    version: int = SCHEMA_VERSION
    tenant_id: int = 0
    call_id: str = ""
    ts: float = Field(default_factory=time.time)


class AudioFrame(Event):
    """20 ms of mono PCM16 little-endian audio from one leg."""

    kind: Literal["audio"] = "audio"
    leg: Leg
    sample_rate: int
    pcm: bytes
    seq: int = 0


class TranscriptPartial(Event):
    kind: Literal["transcript.partial"] = "transcript.partial"
    leg: Leg
    role: Role
    start_ms: int
    end_ms: int
    text: str
    engine: str = ""
    # The decoder is behind (partials thin out before finals slip): this partial came later than twice the leg's
    # partial interval, so the text may lag the speaker; the desk shows 识别中.
    delayed: bool = False


class TranscriptFinal(Event):
    kind: Literal["transcript.final"] = "transcript.final"
    leg: Leg
    role: Role
    start_ms: int
    end_ms: int
    text: str
    confidence: float = 0.0
    engine: str = ""
    segment_id: int | None = None


class TranscriptComplete(Event):
    """Every leg of an ended call is transcribed: no more finals will come (post-call QA starts here)."""

    kind: Literal["transcript.complete"] = "transcript.complete"
    segments: int = 0


class CallState(Event):
    kind: Literal["call.state"] = "call.state"
    state: Literal["ringing", "ivr", "queued", "alerting", "talking", "held", "ended"]
    caller: str = ""
    agent_id: int | None = None
    detail: dict = Field(default_factory=dict)


class KnowledgeHit(BaseModel):
    entry_id: int | str
    title: str
    answer: str
    score: float
    key_facts: list[str] = Field(default_factory=list)
    matched_spans: list[str] = Field(default_factory=list)
    trigger: str = ""  # what was said that brought this card up
    trigger_role: Literal["caller", "agent"] = "caller"  # who said it
    first_ms: int | None = None  # call time of that turn (the card stays from then on)


class Suggestion(Event):
    kind: Literal["copilot.suggestion"] = "copilot.suggestion"
    hits: list[KnowledgeHit] = Field(default_factory=list)
    no_good_match: bool = False
    category: str | None = None
    category_confidence: float = 0.0
    ticket_draft: dict = Field(default_factory=dict)
    source_segment_ts: float | None = None


class PoliceAlert(Event):
    kind: Literal["copilot.police_alert"] = "copilot.police_alert"
    reason: str
    evidence: str


class SensitiveFlag(Event):
    kind: Literal["copilot.sensitive"] = "copilot.sensitive"
    flag: Literal["self_harm", "media_threat", "group_petition"]
    evidence: str


class QAWarning(Event):
    kind: Literal["qa.warning"] = "qa.warning"
    item: str
    message: str
    resolved: bool = False  # the warned item is met after all (e.g. the agent read back): withdraw the warning


AnyEvent = Annotated[
    Union[TranscriptPartial, TranscriptFinal, TranscriptComplete, CallState, Suggestion, PoliceAlert, SensitiveFlag, QAWarning],
    Field(discriminator="kind"),
]
event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def parse_event(data: str | bytes | dict) -> Event:
    if isinstance(data, dict):
        return event_adapter.validate_python(data)
    return event_adapter.validate_json(data)
