"""Scoring in the running system: the tenant's active scorecard and published KB, scored and stored.

- ``score_and_store``: any transcript → ``QAResult`` (+ items, evidence, sampling).
- ``score_stored_call``: a call already in the database (segments, CDR, ticket).
- ``PostCallScorer``: a per-call processor for ``serving.consumers.CallProcessorHost`` that scores
  100 % of calls automatically after hang-up.
"""
from __future__ import annotations

import logging
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.events import Event, TranscriptComplete, TranscriptFinal
from domain.models import Call, KnowledgeEntry, KnowledgeVersion, QAResult, Ticket, TranscriptSegment
from qa import scorecard as sc
from qa.answers import KBEntry, Retrieve
from qa.review import SamplingRule, store_result
from qa.scoring import Embed, score_call

log = logging.getLogger("hotline.qa")


def active_scorecard(session: Session, tenant_id: int):
    """The tenant's active scorecard row; the default 12345 scorecard is stored on first use."""
    row = sc.active(session, tenant_id)
    return row if row is not None else sc.save(session, tenant_id, sc.default_scorecard())


def published_kb(session: Session, tenant_id: int) -> list[KBEntry]:
    rows = session.execute(
        select(KnowledgeEntry.id, KnowledgeEntry.external_id, KnowledgeVersion.title, KnowledgeVersion.body,
               KnowledgeVersion.department, KnowledgeVersion.category)
        .join(KnowledgeVersion, KnowledgeVersion.entry_id == KnowledgeEntry.id)
        .where(KnowledgeEntry.tenant_id == tenant_id, KnowledgeEntry.status == "published",
               KnowledgeVersion.version == KnowledgeEntry.published_version)).all()
    return [KBEntry(str(ext or eid), title, body, dept or "", cat or "") for eid, ext, title, body, dept, cat in rows]


def score_and_store(session: Session, tenant_id: int, segments: list, metadata: dict, *,
                    call_id: int | None = None, recording_id: int | None = None, agent_id: int | None = None,
                    embed: Embed | None = None, retrieve: Retrieve | None = None,
                    sampling: SamplingRule = SamplingRule(), rng: random.Random | None = None) -> QAResult:
    if not segments:
        raise AppError("empty_transcript", "没有可质检的转写内容", 422)
    card_row = active_scorecard(session, tenant_id)
    card = sc.from_row(card_row)
    kb = published_kb(session, tenant_id)
    result = score_call(segments, metadata, card, kb or None, embed=embed, retrieve=retrieve)
    return store_result(session, tenant_id, result, card_row.id, call_id=call_id, recording_id=recording_id,
                        agent_id=agent_id, sampling=sampling, rng=rng)


def call_metadata(session: Session, call: Call) -> dict:
    duration = (call.ended_at - (call.answered_at or call.started_at)).total_seconds() * 1000 if call.ended_at else 0
    ticket = session.scalar(select(Ticket.id).where(Ticket.call_id == call.id).limit(1))
    return {"duration_ms": round(duration), "hold_ms": call.hold_ms, "transfers": call.transfers,
            "ticket_created": ticket is not None}


def score_stored_call(session: Session, tenant_id: int, call_id: int, **kw) -> QAResult:
    call = session.get(Call, call_id)
    if call is None or call.tenant_id != tenant_id:
        raise AppError("not_found", "通话不存在", 404)
    segs = session.scalars(select(TranscriptSegment).where(TranscriptSegment.call_id == call_id,
                                                           TranscriptSegment.is_final.is_(True))).all()
    return score_and_store(session, tenant_id, list(segs), call_metadata(session, call), call_id=call.id,
                           agent_id=call.agent_id, **kw)


class PostCallScorer:
    """Collects a call's final transcript and scores it once it is complete (100 % of calls)."""

    def __init__(self, engine, *, embed: Embed | None = None, retrieve: Retrieve | None = None):
        self._engine = engine
        self._embed, self._retrieve = embed, retrieve
        self._finals: list[TranscriptFinal] = []

    def process(self, event: Event) -> list[Event]:
        if isinstance(event, TranscriptFinal):
            self._finals.append(event)
        elif isinstance(event, TranscriptComplete) and self._finals:
            self._score(event)
        return []

    def _score(self, event: TranscriptComplete) -> None:
        from domain.db import session_scope

        with session_scope(self._engine) as session:
            call = session.scalar(select(Call).where(Call.call_uuid == event.call_id))
            metadata = call_metadata(session, call) if call else {}
            score_and_store(session, event.tenant_id, self._finals, metadata, call_id=call.id if call else None,
                            agent_id=call.agent_id if call else None, embed=self._embed, retrieve=self._retrieve)
        log.info("scored call %s (%d segments)", event.call_id, len(self._finals))

    def close(self) -> list[Event]:
        return []
