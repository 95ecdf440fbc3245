"""Scoring in the running system: the tenant's active scorecard and published KB, scored and stored.

- ``score_and_store``: any transcript → ``QAResult`` (+ items, evidence, sampling).
- ``score_stored_call``: a call already in the database (segments, CDR, ticket).
- ``PostCallScorer``: a per-call processor for ``serving.consumers.CallProcessorHost`` that scores
  100 % of calls automatically after hang-up.
"""
from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.call_events import Event, TranscriptComplete, TranscriptFinal
from domain.models import Call, KnowledgeEntry, QAResult, Ticket, TranscriptSegment
from qa import scorecard as sc
from qa.answers import KBEntry, Retrieve
from qa.review import SamplingRule, store_result
from qa.scoring import Embed, score_call

if TYPE_CHECKING:
    from knowledge.live import TenantIndexes
    from knowledge.retrieval import HybridIndex

log = logging.getLogger("hotline.qa")


def active_scorecard(session: Session, tenant_id: int):
    """The tenant's active scorecard row; the default 12345 scorecard is stored on first use."""
    row = sc.active(session, tenant_id)
    return row if row is not None else sc.save(session, tenant_id, sc.default_scorecard())


def _external_ids(session: Session, tenant_id: int) -> dict[int, str | None]:
    return dict(session.execute(select(KnowledgeEntry.id, KnowledgeEntry.external_id)
                                .where(KnowledgeEntry.tenant_id == tenant_id)).all())


def published_kb(session: Session, tenant_id: int) -> list[KBEntry]:
    """The tenant's live knowledge as the copilot suggests it (``knowledge.service.published_docs``): an entry
    being revised is checked against its published version; ids are external ids where an entry has one."""
    from knowledge.service import published_docs

    external = _external_ids(session, tenant_id)
    return [KBEntry(str(external.get(d.id) or d.id), d.title, d.body, d.department or "", d.category or "")
            for d in published_docs(session, tenant_id)]


def index_retriever(session: Session, tenant_id: int, index: HybridIndex) -> Retrieve:
    """The tenant's KB index as the answer checker's ``retrieve``, ranking with its ranker for ASR transcripts
    (what QA scores); ids as ``published_kb`` gives them (an entry's external id where it has one)."""
    external = _external_ids(session, tenant_id)

    def retrieve(query: str, k: int) -> list[tuple[str, float]]:
        return [(str(external.get(h.id) or h.id), h.score) for h in index.search(query, k, spoken=True).hits]

    return retrieve


def score_and_store(session: Session, tenant_id: int, segments: list, metadata: dict, *,
                    call_id: int | None = None, recording_id: int | None = None, agent_id: int | None = None,
                    embed: Embed | None = None, index: HybridIndex | None = None,
                    sampling: SamplingRule = SamplingRule(), rng: random.Random | None = None) -> QAResult:
    """``index``: the tenant's KB index, which finds the entries an answer is checked against; without one a
    character-bigram retriever over the published KB does (``qa.answers.LexicalRetriever``)."""
    if not segments:
        raise AppError("empty_transcript", "没有可质检的转写内容", 422)
    card_row = active_scorecard(session, tenant_id)
    card = sc.from_row(card_row)
    kb = published_kb(session, tenant_id)
    retrieve = index_retriever(session, tenant_id, index) if index is not None and kb else None
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

    def __init__(self, engine, *, embed: Embed | None = None, indexes: TenantIndexes | None = None):
        self._engine = engine
        self._embed, self._indexes = embed, indexes
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
            index = self._indexes.get(session, event.tenant_id) if self._indexes else None
            score_and_store(session, event.tenant_id, self._finals, metadata, call_id=call.id if call else None,
                            agent_id=call.agent_id if call else None, embed=self._embed, index=index)
        log.info("scored call %s (%d segments)", event.call_id, len(self._finals))

    def close(self) -> list[Event]:
        return []
