"""Scoring in the running system: the tenant's active scorecard and published KB, scored and stored.

- ``score_and_store``: any transcript → ``QAResult`` (+ items, evidence, sampling).
- ``score_stored_call``: a call already in the database (segments, CDR, ticket).
- ``PostCallScorer``: a per-call processor for ``serving.consumers.CallProcessorHost`` that scores
  100 % of calls automatically after hang-up.
- ``RecordingScoring``: uploaded recordings scored as Ray tasks (``qa.batch``), each stored before it is
  reported scored, with a status the QA pages poll.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.call_events import Event, TranscriptComplete, TranscriptFinal
from domain.models import Call, KnowledgeEntry, QAResult, Recording, Ticket, TranscriptSegment
from qa import scorecard as sc
from qa.answers import KBEntry, Retrieve
from qa.review import SamplingRule, store_result
from qa.scoring import Embed, score_call

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from domain.settings import Settings
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


UPLOADS = "recordings/uploads"  # under the data directory: uploaded recordings, kept as received


@dataclass
class _Upload:
    tenant_id: int
    state: str  # queued | storing | failed (scored is read from the database)
    submitted: float
    error: str | None = None


class RecordingScoring:
    """Uploaded recordings scored on the cluster: the file and its ``Recording`` row are durable before the
    upload is acknowledged; ASR and diarization run as a Ray task (``qa.batch``, any node); the result is
    scored against the tenant's active scorecard and KB index here and committed before the status says so.

    An upload not yet scored when the server stopped is submitted again when this starts (its file is kept)."""

    def __init__(self, settings: Settings, engine: Engine, indexes: TenantIndexes):
        from knowledge.live import TenantLexicons

        self._settings, self._engine, self._indexes = settings, engine, indexes
        self._lexicons = TenantLexicons()
        self._jobs: dict[int, _Upload] = {}
        self._pending: dict = {}  # Ray object ref -> (recording id, batch job)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="recording-scoring", daemon=True)
        self._thread.start()
        self._resume()

    def upload(self, tenant_id: int, data: bytes, suffix: str) -> int:
        """Store the upload (fsynced file, ``Recording`` row) and submit it; returns the recording id."""
        digest = hashlib.sha256(data).hexdigest()
        folder = self._settings.data_dir / UPLOADS / str(tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{digest}{suffix}"
        tmp = path.with_suffix(path.suffix + ".part")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        from domain.db import session_scope

        with session_scope(self._engine) as session:
            row = Recording(tenant_id=tenant_id, path=str(path), sha256=digest)
            session.add(row)
            session.flush()
            recording_id = row.id
        self._submit(tenant_id, recording_id, data, suffix)
        return recording_id

    def status(self, session: Session, tenant_id: int, recording_id: int) -> dict | None:
        """The upload's scoring state (None: no such upload of this tenant)."""
        row = session.scalar(select(Recording).where(Recording.id == recording_id, Recording.tenant_id == tenant_id))
        if row is None:
            return None
        result_id = session.scalar(select(QAResult.id).where(QAResult.recording_id == recording_id,
                                                              QAResult.superseded_at.is_(None)).limit(1))
        out = {"recording_id": recording_id, "state": "scored" if result_id else "failed", "result_id": result_id,
               "error": None if result_id else "评分未完成，录音文件无法读取，请重新上传", "queued_ahead": 0, "elapsed_s": None, "duration_ms": row.duration_ms or None}
        with self._lock:
            job = self._jobs.get(recording_id)
            if result_id is None and job is not None:
                out.update(state=job.state, error=job.error, elapsed_s=round(time.time() - job.submitted, 1))
                out["queued_ahead"] = sum(1 for j in self._jobs.values()
                                          if j.state == "queued" and j.submitted < job.submitted)
        return out

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    # -- internals -------------------------------------------------------------------------------------------
    def _submit(self, tenant_id: int, recording_id: int, data: bytes, suffix: str) -> None:
        from domain.db import session_scope
        from qa import batch

        with session_scope(self._engine) as session:
            lexicon = self._lexicons.get(session, tenant_id)
        job = batch.Job(str(recording_id), data, suffix)
        refs = batch.submit([job], self._settings, lexicon=lexicon)
        with self._lock:
            self._jobs[recording_id] = _Upload(tenant_id, "queued", time.time())
            self._pending.update({ref: (recording_id, j) for ref, j in refs.items()})
        self._wake.set()

    def _resume(self) -> None:
        from domain.db import session_scope

        root = str(self._settings.data_dir / UPLOADS)
        with session_scope(self._engine) as session:
            scored = select(QAResult.recording_id).where(QAResult.recording_id.is_not(None))
            waiting = session.execute(select(Recording.id, Recording.tenant_id, Recording.path).where(
                Recording.call_id.is_(None), Recording.path.startswith(root), Recording.id.not_in(scored))).all()
        for recording_id, tenant_id, path in waiting:
            try:
                self._submit(tenant_id, recording_id, Path(path).read_bytes(), Path(path).suffix)
            except OSError as exc:
                log.error("upload %s cannot be scored again: %s", recording_id, exc)

    def _collect(self) -> None:
        import ray

        from qa import batch

        while not self._stop.is_set():
            with self._lock:
                refs = list(self._pending)
            if not refs:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            done, _ = ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in done:
                with self._lock:
                    recording_id, job = self._pending.pop(ref)
                    self._jobs[recording_id].state = "storing"
                self._store(recording_id, batch.outcome_of(ref, job))

    def _store(self, recording_id: int, outcome) -> None:
        from domain.db import session_scope

        upload = self._jobs[recording_id]
        error = outcome.error
        if error is None:
            try:
                with session_scope(self._engine) as session:
                    row = session.get(Recording, recording_id)
                    row.duration_ms, row.channels, row.sample_rate = (
                        outcome.metadata[k] for k in ("duration_ms", "channels", "sample_rate"))
                    score_and_store(session, upload.tenant_id, outcome.segments,
                                    {"duration_ms": outcome.metadata["duration_ms"]}, recording_id=recording_id,
                                    embed=self._indexes.embedder.queries,
                                    index=self._indexes.get(session, upload.tenant_id))
            except AppError as exc:
                error = exc.message
            except Exception as exc:  # noqa: BLE001 - reported on this upload; the others go on
                log.exception("storing the score of upload %s failed", recording_id)
                error = f"保存评分失败：{type(exc).__name__}"
        with self._lock:
            if error is None:
                del self._jobs[recording_id]  # scored: the database says so from now on
            else:
                upload.state, upload.error = "failed", error
        log.info("upload %s %s", recording_id, "scored" if error is None else f"failed: {error}")
