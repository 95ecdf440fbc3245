"""Call QA: scorecards (versioned per tenant), scoring uploads and stored calls, results with
evidence, the review queue (confirm/overturn per item), agent acknowledge/appeal, overturn rates."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.accounts import Principal
from domain.errors import AppError, not_found
from domain.models import Agent, QAResult, Scorecard
from domain.validation import ShortText
from qa import review, scorecard as sc
from qa.service import active_scorecard, score_and_store, score_stored_call
from serving.api.deps import get_session, knowledge_indexes, require_roles
from serving.offload import run_heavy

router = APIRouter(prefix="/api/qa", tags=["qa"])

REVIEWERS = ("qa_reviewer", "supervisor", "admin")
READERS = ("qa_reviewer", "supervisor", "admin", "evaluator")
EDITORS = ("qa_reviewer", "admin")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".amr"}


def _asr_engine(app):
    """The ASR engine for uploaded recordings (offline: accuracy over latency), built from the app's settings on
    first use."""
    from asr.engines import create_engine

    if getattr(app.state, "qa_asr_engine", None) is None:
        app.state.qa_asr_engine = create_engine(app.state.settings, offline=True)
    return app.state.qa_asr_engine


def _lexicons(app):
    """Each tenant's hot words and KB phrases for transcribing its uploads, kept between requests and rebuilt
    when its published knowledge base changes."""
    from knowledge.live import TenantLexicons

    if getattr(app.state, "qa_lexicons", None) is None:
        app.state.qa_lexicons = TenantLexicons()
    return app.state.qa_lexicons


class ScorecardIn(BaseModel):
    definition: dict = Field(description="Scorecard definition (same shape as the YAML/JSON files).")


class ReviewIn(BaseModel):
    verdict: Literal["confirm", "overturn"]
    comment: ShortText = ""


class AgentIn(BaseModel):
    action: Literal["acknowledge", "appeal"]
    comment: ShortText = ""


class AppealIn(BaseModel):
    upheld: bool
    comment: ShortText


def _card_out(row: Scorecard) -> dict:
    return {"id": row.id, "name": row.name, "version": row.version, "active": row.active,
            "created_at": row.created_at.isoformat(), "definition": row.definition}


def _result_out(r: QAResult) -> dict:
    return {"id": r.id, "call_id": r.call_id, "agent_id": r.agent_id, "score": r.score, "sampled": r.sampled,
            "review_state": r.review_state, "agent_state": r.agent_state,
            "serious_service_violation": r.serious_service_violation,
            "serious_answer_error": r.serious_answer_error, "created_at": r.created_at.isoformat(),
            "version": r.version, "failed_items": [i.item_name for i in r.items if not i.passed]}


def _own_agent_id(session: Session, p: Principal) -> int | None:
    return session.scalar(select(Agent.id).where(Agent.tenant_id == p.tenant_id, Agent.user_id == p.user.id))


def _visible(session: Session, p: Principal, result_id: int) -> None:
    """Agents see only their own results."""
    if p.role != "agent":
        return
    row = session.get(QAResult, result_id)
    if row is None or row.tenant_id != p.tenant_id or row.agent_id != _own_agent_id(session, p):
        raise not_found("质检结果")


_EVIDENCE_LABELS = {"kb_entry_id", "error_type", "note", "role"}


def _for_evaluator(detail: dict) -> dict:
    """What evaluating the scoring needs, without what was said: no transcript, evidence reduced to its times,
    labels and numbers (quotes of the call removed)."""
    def strip(evidence: dict) -> dict:
        return {k: v for k, v in evidence.items() if k in _EVIDENCE_LABELS or isinstance(v, (int, float, bool))}

    items = [{**item, "evidence": [strip(e) for e in item["evidence"] if isinstance(e, dict)]}
             for item in detail["items"]]
    return {**detail, "transcript": [], "items": items}


# ------------------------------------------------------------------ scorecards
@router.get("/scorecards")
def list_scorecards(p: Principal = Depends(require_roles(*READERS)), session: Session = Depends(get_session, scope="function")):
    active_scorecard(session, p.tenant_id)
    rows = session.scalars(select(Scorecard).where(Scorecard.tenant_id == p.tenant_id)
                           .order_by(Scorecard.name, Scorecard.version.desc()))
    return [_card_out(r) for r in rows]


@router.post("/scorecards", status_code=201)
def create_scorecard(body: ScorecardIn, p: Principal = Depends(require_roles(*EDITORS)),
                     session: Session = Depends(get_session, scope="function")):
    try:
        card = sc.parse(body.definition)
    except sc.ScorecardError as exc:
        raise AppError("invalid_scorecard", str(exc), 422) from exc
    from domain import audit

    row = sc.save(session, p.tenant_id, card)
    audit.record(session, "qa.scorecard_saved", tenant_id=p.tenant_id, actor_id=p.user.id,
                 actor_name=p.user.username, entity="scorecard", entity_id=row.id,
                 after={"name": row.name, "version": row.version})
    return _card_out(row)


@router.post("/scorecards/{scorecard_id}/activate")
def activate_scorecard(scorecard_id: int, p: Principal = Depends(require_roles(*EDITORS)),
                       session: Session = Depends(get_session, scope="function")):
    row = session.get(Scorecard, scorecard_id)
    if row is None or row.tenant_id != p.tenant_id:
        raise not_found("评分表")
    for other in session.scalars(select(Scorecard).where(Scorecard.tenant_id == p.tenant_id)):
        other.active = other.id == row.id
    from domain import audit

    audit.record(session, "qa.scorecard_activated", tenant_id=p.tenant_id, actor_id=p.user.id,
                 actor_name=p.user.username, entity="scorecard", entity_id=row.id)
    return _card_out(row)


# ------------------------------------------------------------------ scoring
@router.post("/score", status_code=201)
async def score_upload(request: Request, file: UploadFile = File(...),
                       p: Principal = Depends(require_roles(*REVIEWERS)),
                       session: Session = Depends(get_session, scope="function")):
    """Score an uploaded recording (stereo split by channel, mono diarized) or a transcript JSON.

    Only the upload is read on the event loop; decoding, diarization, Whisper and embedding run in the app's
    upload pool (serving.offload), so other requests and the agents' WebSockets are served meanwhile."""
    limit = request.app.state.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise AppError("too_large", "上传文件过大", 413)
    if not data:
        raise AppError("empty_upload", "上传文件为空", 422)
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES and suffix != ".json":
        raise AppError("bad_file_type", "只支持录音文件（wav/flac/mp3…）或转写 JSON", 415)
    return await run_heavy(request.app, _score_upload, request.app, session, p.tenant_id, data, suffix)


def _score_upload(app, session: Session, tenant_id: int, data: bytes, suffix: str) -> dict:
    if suffix in AUDIO_SUFFIXES:
        from asr.audio import AudioError, load_audio
        from qa.recording import transcribe_recording

        try:
            audio = load_audio(data, max_seconds=app.state.settings.max_audio_seconds, max_rate=16000)
        except AudioError as exc:
            raise AppError("bad_audio", exc.message, exc.status) from exc
        lexicon = _lexicons(app).get(session, tenant_id)
        tr = transcribe_recording(audio, _asr_engine(app), lexicon=lexicon)
        segments, metadata = tr.segments, {"duration_ms": round(audio.duration_s * 1000)}
    else:
        try:
            payload = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AppError("bad_json", f"转写文件不是有效的 JSON：{exc}", 422) from exc
        segments = payload.get("segments", []) if isinstance(payload, dict) else payload
        metadata = payload.get("metadata", {}) if isinstance(payload, dict) else {}
    try:
        indexes = knowledge_indexes(app)
        row = score_and_store(session, tenant_id, segments, metadata, embed=indexes.embedder.queries,
                              index=indexes.get(session, tenant_id))
    except ValueError as exc:
        raise AppError("bad_transcript", f"转写内容无效：{exc}", 422) from exc
    return review.result_detail(session, tenant_id, row.id)


@router.post("/calls/{call_id}/score", status_code=201)
def score_call_endpoint(request: Request, call_id: int, p: Principal = Depends(require_roles(*REVIEWERS)),
                        session: Session = Depends(get_session, scope="function")):
    indexes = knowledge_indexes(request.app)
    row = score_stored_call(session, p.tenant_id, call_id, embed=indexes.embedder.queries,
                            index=indexes.get(session, p.tenant_id))
    return review.result_detail(session, p.tenant_id, row.id)


# ------------------------------------------------------------------ results and review
@router.get("/results")
def list_results(state: str | None = Query(None, pattern="^(auto|queued|reviewed)$"),
                 agent_id: int | None = None, limit: int = Query(50, ge=1, le=500),
                 p: Principal = Depends(require_roles(*READERS, "agent")), session: Session = Depends(get_session, scope="function")):
    q = select(QAResult).where(QAResult.tenant_id == p.tenant_id, QAResult.superseded_at.is_(None))
    if p.role == "agent":
        agent_id = _own_agent_id(session, p)
        if agent_id is None:
            return []
    if agent_id is not None:
        q = q.where(QAResult.agent_id == agent_id)
    if state:
        q = q.where(QAResult.review_state == state)
    return [_result_out(r) for r in session.scalars(q.order_by(QAResult.id.desc()).limit(limit))]


@router.get("/results/{result_id}")
def get_result(result_id: int, p: Principal = Depends(require_roles(*READERS, "agent")),
               session: Session = Depends(get_session, scope="function")):
    _visible(session, p, result_id)
    detail = review.result_detail(session, p.tenant_id, result_id)
    return _for_evaluator(detail) if p.role == "evaluator" else detail


@router.get("/queue")
def queue(limit: int = Query(50, ge=1, le=500), p: Principal = Depends(require_roles(*REVIEWERS)),
          session: Session = Depends(get_session, scope="function")):
    return [_result_out(r) for r in review.review_queue(session, p.tenant_id, limit)]


@router.post("/items/{item_id}/review")
def review_item(item_id: int, body: ReviewIn, p: Principal = Depends(require_roles(*REVIEWERS)),
                session: Session = Depends(get_session, scope="function")):
    rv = review.review_item(session, p.tenant_id, item_id, p.user.id, body.verdict, body.comment)
    return {"id": rv.id, "verdict": rv.verdict, "comment": rv.comment}


@router.post("/results/{result_id}/finish")
def finish(result_id: int, p: Principal = Depends(require_roles(*REVIEWERS)), session: Session = Depends(get_session, scope="function")):
    review.finish_review(session, p.tenant_id, result_id, p.user.id)
    return review.result_detail(session, p.tenant_id, result_id)


@router.post("/results/{result_id}/agent")
def agent_response(result_id: int, body: AgentIn, p: Principal = Depends(require_roles("agent")),
                   session: Session = Depends(get_session, scope="function")):
    _visible(session, p, result_id)
    row = review.agent_respond(session, p.tenant_id, result_id, p.user.id, body.action, body.comment)
    return _result_out(row)


@router.post("/results/{result_id}/appeal")
def resolve_appeal(result_id: int, body: AppealIn, p: Principal = Depends(require_roles(*REVIEWERS)),
                   session: Session = Depends(get_session, scope="function")):
    return _result_out(review.resolve_appeal(session, p.tenant_id, result_id, p.user.id, body.upheld, body.comment))


@router.get("/overturn-rates")
def overturn_rates(p: Principal = Depends(require_roles(*READERS)), session: Session = Depends(get_session, scope="function")):
    return review.overturn_rates(session, p.tenant_id)
