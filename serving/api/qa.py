"""Call QA: scorecards (versioned per tenant), scoring uploads and stored calls, results with
evidence, the review queue (confirm/overturn per item), agent acknowledge/appeal, overturn rates."""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from domain import audit
from domain.accounts import Principal
from domain.errors import AppError, not_found
from domain.models import (Agent, Call, KnowledgeEntry, KnowledgeVersion, QAItemResult, QAResult, QAReview, Recording,
                           Scorecard, Ticket, TranscriptSegment)
from domain import tenant_settings
from domain.validation import ShortText
from qa import review, scorecard as sc
from qa.service import active_scorecard, score_and_store, score_stored_call
from serving.api.deps import get_session, knowledge_indexes, require_roles
from serving.api.recordings import AUDIO_TYPES
from serving.offload import run_heavy

router = APIRouter(prefix="/api/qa", tags=["qa"])

REVIEWERS = ("qa_reviewer", "supervisor", "admin")
READERS = ("qa_reviewer", "supervisor", "admin", "evaluator")
EDITORS = ("qa_reviewer", "admin")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".amr"}


def _asr_engine(app):
    """The ASR engine for uploaded recordings (offline: accuracy over latency), built from the app's settings on
    first use."""
    from asr.engines import create_asr_engine

    if getattr(app.state, "qa_asr_engine", None) is None:
        app.state.qa_asr_engine = create_asr_engine(app.state.settings, offline=True)
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


def _result_out(r: QAResult, verdicts: dict[int, str] | None = None) -> dict:
    """A result in a list; its failed items are those still failed after review (an overturned item is not)."""
    verdicts = review.latest_verdicts(Session.object_session(r), [i.id for i in r.items]) if verdicts is None \
        else verdicts
    return {"id": r.id, "call_id": r.call_id, "agent_id": r.agent_id, "score": r.score, "sampled": r.sampled,
            "review_state": r.review_state, "agent_state": r.agent_state,
            "serious_service_violation": r.serious_service_violation,
            "serious_answer_error": r.serious_answer_error, "created_at": r.created_at.isoformat(),
            "version": r.version,
            "failed_items": [i.item_name for i in r.items if not review.effective_pass(i, verdicts.get(i.id))]}


def _results_out(session: Session, rows: list[QAResult]) -> list[dict]:
    verdicts = review.latest_verdicts(session, [i.id for r in rows for i in r.items])
    return [_result_out(r, verdicts) for r in rows]


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


def _needs_review(item: dict) -> bool:
    return any(isinstance(e, dict) and e.get("needs_review") for e in item["evidence"])


def _kb_entries(session: Session, tenant_id: int, ids: set[str]) -> dict[str, dict]:
    """The entries that answer-accuracy evidence cites (by external id, or the entry id where it has none, as
    ``qa.service.published_kb`` names them): title and the answer a reviewer compares against (the published
    version, else the latest)."""
    numeric = {int(i) for i in ids if i.isdigit()}
    entries = session.scalars(select(KnowledgeEntry).where(
        KnowledgeEntry.tenant_id == tenant_id,
        or_(KnowledgeEntry.external_id.in_(ids), KnowledgeEntry.id.in_(numeric)))).all() if ids else []
    out = {}
    for entry in entries:
        version = session.scalar(select(KnowledgeVersion).where(
            KnowledgeVersion.entry_id == entry.id,
            KnowledgeVersion.version == (entry.published_version or entry.current_version)))
        key = entry.external_id if entry.external_id in ids else str(entry.id)
        if version is not None and key in ids:
            out[key] = {"id": entry.id, "title": version.title, "body": version.body, "version": version.version,
                        "status": entry.status}
    return out


def _detail(session: Session, tenant_id: int, result_id: int) -> dict:
    """A result for reading: items still failed and items a person must decide (需人工复核) first; each item's
    evidence once; the knowledge entries that answer errors contradict under ``kb_entries``."""
    detail = review.result_detail(session, tenant_id, result_id)
    items = []
    for item in detail["items"]:
        seen, evidence = set(), []
        for ev in item["evidence"]:
            key = json.dumps(ev, sort_keys=True, ensure_ascii=False) if not isinstance(ev, dict) else \
                (ev.get("start_ms"), ev.get("text") or ev.get("note"), ev.get("kb_entry_id"))
            if key not in seen:
                seen.add(key)
                evidence.append(ev)
        items.append({**item, "evidence": evidence, "needs_review": False})
        items[-1]["needs_review"] = _needs_review(items[-1])
    items.sort(key=lambda i: (i["effective_passed"] and not i["needs_review"], i["effective_passed"]))
    cited = {str(ev["kb_entry_id"]) for i in items for ev in i["evidence"]
             if isinstance(ev, dict) and ev.get("kb_entry_id") not in (None, "")}
    return {**detail, "items": items, "kb_entries": _kb_entries(session, tenant_id, cited)}


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
    return _detail(session, tenant_id, row.id)


@router.post("/calls/{call_id}/score", status_code=201)
def score_call_endpoint(request: Request, call_id: int, p: Principal = Depends(require_roles(*REVIEWERS)),
                        session: Session = Depends(get_session, scope="function")):
    indexes = knowledge_indexes(request.app)
    row = score_stored_call(session, p.tenant_id, call_id, embed=indexes.embedder.queries,
                            index=indexes.get(session, p.tenant_id))
    return _detail(session, p.tenant_id, row.id)


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
    return _results_out(session, list(session.scalars(q.order_by(QAResult.id.desc()).limit(limit))))


@router.get("/results/{result_id}")
def get_result(result_id: int, p: Principal = Depends(require_roles(*READERS, "agent")),
               session: Session = Depends(get_session, scope="function")):
    _visible(session, p, result_id)
    detail = _detail(session, p.tenant_id, result_id)
    return _for_evaluator(detail) if p.role == "evaluator" else detail


@router.get("/queue")
def queue(limit: int = Query(50, ge=1, le=500), p: Principal = Depends(require_roles(*REVIEWERS)),
          session: Session = Depends(get_session, scope="function")):
    return _results_out(session, review.review_queue(session, p.tenant_id, limit))


@router.post("/items/{item_id}/review")
def review_item(item_id: int, body: ReviewIn, p: Principal = Depends(require_roles(*REVIEWERS)),
                session: Session = Depends(get_session, scope="function")):
    rv = review.review_item(session, p.tenant_id, item_id, p.user.id, body.verdict, body.comment)
    return {"id": rv.id, "verdict": rv.verdict, "comment": rv.comment}


@router.post("/results/{result_id}/finish")
def finish(result_id: int, p: Principal = Depends(require_roles(*REVIEWERS)), session: Session = Depends(get_session, scope="function")):
    review.finish_review(session, p.tenant_id, result_id, p.user.id)
    return _detail(session, p.tenant_id, result_id)


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


# ------------------------------------------------------------------ every call, scored or not
def _latest_verdict():
    return (select(QAReview.verdict).where(QAReview.item_result_id == QAItemResult.id)
            .order_by(QAReview.id.desc()).limit(1).correlate(QAItemResult).scalar_subquery())


def _effectively_failed():
    """An item still failed after review: failed and not overturned, or passed and overturned."""
    verdict = _latest_verdict()
    return or_(and_(QAItemResult.passed.is_(False), func.coalesce(verdict, "") != "overturn"),
               and_(QAItemResult.passed.is_(True), verdict == "overturn"))


@router.get("/calls")
def list_calls(date_from: date | None = None, date_to: date | None = None, agent_id: int | None = None,
               category: str = Query("", max_length=200), score_min: float | None = Query(None, ge=0, le=100),
               score_max: float | None = Query(None, ge=0, le=100), item: str = Query("", max_length=100),
               q: str = Query("", max_length=100), scored: Literal["all", "scored", "unscored"] = "all",
               review_state: Literal["auto", "queued", "reviewed"] | None = None,
               offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200),
               p: Principal = Depends(require_roles(*REVIEWERS)),
               session: Session = Depends(get_session, scope="function")) -> dict:
    """Every answered call of the tenant (not only the sampled ones), one row per call with its current QA result
    and the versions before it. Filters: local calendar days, agent, ticket category (a prefix), score range, an
    item still failed after review (code or name), words of the transcript, scored or not, review state.  A call
without a ticket has the category the copilot found during it."""
    if date_from and date_to and date_from > date_to:
        raise AppError("bad_range", "开始日期不能晚于结束日期", 422)
    if score_min is not None and score_max is not None and score_min > score_max:
        raise AppError("bad_range", "最低分不能高于最高分", 422)
    current = and_(QAResult.call_id == Call.id, QAResult.superseded_at.is_(None))
    stmt = (select(Call, QAResult).outerjoin(QAResult, current)
            .where(Call.tenant_id == p.tenant_id, or_(Call.answered_at.is_not(None), QAResult.id.is_not(None))))
    tz = tenant_settings.zone(session, p.tenant_id)
    if date_from:
        stmt = stmt.where(Call.started_at >= tenant_settings.day_bounds(date_from, date_from, tz)[0])
    if date_to:
        stmt = stmt.where(Call.started_at < tenant_settings.day_bounds(date_to, date_to + timedelta(days=1), tz)[1])
    if agent_id is not None:
        stmt = stmt.where(Call.agent_id == agent_id)
    if category.strip():  # the ticket's category, else the copilot's (a call nobody made a ticket for)
        prefix = category.strip()
        ticketed = exists().where(Ticket.call_id == Call.id, Ticket.tenant_id == p.tenant_id)
        stmt = stmt.where(or_(exists().where(Ticket.call_id == Call.id, Ticket.tenant_id == p.tenant_id,
                                             Ticket.category.startswith(prefix, autoescape=True)),
                              and_(~ticketed, Call.category.startswith(prefix, autoescape=True))))
    if score_min is not None:
        stmt = stmt.where(QAResult.score >= score_min)
    if score_max is not None:
        stmt = stmt.where(QAResult.score <= score_max)
    if item.strip():
        stmt = stmt.where(exists().where(QAItemResult.result_id == QAResult.id,
                                         or_(QAItemResult.item_code == item.strip(),
                                             QAItemResult.item_name == item.strip()),
                                         _effectively_failed()))
    if q.strip():
        stmt = stmt.where(or_(Call.call_uuid == q.strip(), exists().where(
            TranscriptSegment.call_id == Call.id, TranscriptSegment.tenant_id == p.tenant_id,
            TranscriptSegment.text.contains(q.strip(), autoescape=True))))
    if scored == "scored":
        stmt = stmt.where(QAResult.id.is_not(None))
    elif scored == "unscored":
        stmt = stmt.where(QAResult.id.is_(None))
    if review_state:
        stmt = stmt.where(QAResult.review_state == review_state)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.execute(stmt.order_by(Call.started_at.desc(), Call.id.desc()).offset(offset).limit(limit)).all()
    return {"total": total, "items": _calls_out(session, p.tenant_id, rows, tz)}


def _calls_out(session: Session, tenant_id: int, rows: list, tz) -> list[dict]:
    call_ids = [call.id for call, _ in rows]
    results = [r for _, r in rows if r is not None]
    verdicts = review.latest_verdicts(session, [i.id for r in results for i in r.items])
    versions: dict[int, list[dict]] = {}
    for v in session.scalars(select(QAResult).where(QAResult.tenant_id == tenant_id, QAResult.call_id.in_(call_ids))
                             .order_by(QAResult.version)):
        versions.setdefault(v.call_id, []).append({"id": v.id, "version": v.version, "score": v.score,
                                                   "created_at": tenant_settings.isoformat(v.created_at, tz),
                                                   "current": v.superseded_at is None})
    categories = dict(session.execute(select(Ticket.call_id, Ticket.category).where(
        Ticket.tenant_id == tenant_id, Ticket.call_id.in_(call_ids)).order_by(Ticket.id)).all())
    recordings = dict(session.execute(select(Recording.call_id, func.min(Recording.id)).where(
        Recording.tenant_id == tenant_id, Recording.call_id.in_(call_ids)).group_by(Recording.call_id)).all())
    out = []
    for call, result in rows:
        row = {"call_id": call.id, "call_uuid": call.call_uuid,
               "started_at": tenant_settings.isoformat(call.started_at, tz),
               "duration_s": round((call.ended_at - (call.answered_at or call.started_at)).total_seconds())
               if call.ended_at else None,
               "agent_id": call.agent_id, "category": categories.get(call.id) or call.category,
               "recording_id": recordings.get(call.id), "versions": versions.get(call.id, []), "result": None}
        if result is not None:
            failed = [i for i in result.items if not review.effective_pass(i, verdicts.get(i.id))]
            row["result"] = {**_result_out(result, verdicts),
                             "needs_review": [i.item_name for i in result.items
                                              if any(isinstance(e, dict) and e.get("needs_review")
                                                     for e in i.evidence) and verdicts.get(i.id) is None],
                             "failed_codes": [i.item_code for i in failed]}
        out.append(row)
    return out


@router.get("/results/{result_id}/audio")
def result_audio(result_id: int, p: Principal = Depends(require_roles(*REVIEWERS, "agent")),
                 session: Session = Depends(get_session, scope="function")) -> FileResponse:
    """The recording of a scored call, for its reviewers and for the agent it scored (to listen before an appeal);
    every playback is audited."""
    _visible(session, p, result_id)
    result = session.get(QAResult, result_id)
    if result is None or result.tenant_id != p.tenant_id:
        raise not_found("质检结果")
    rec = session.scalar(select(Recording).where(Recording.tenant_id == p.tenant_id, or_(
        Recording.id == result.recording_id, Recording.call_id == result.call_id) if result.call_id else
        Recording.id == result.recording_id).order_by(Recording.id))
    if rec is None or not Path(rec.path).is_file():
        raise not_found("录音文件")
    audit.record(session, "recording.play", tenant_id=p.tenant_id, actor_id=p.user.id, actor_name=p.user.username,
                 entity="recording", entity_id=rec.id, ip=session.info.get("ip", ""))
    return FileResponse(rec.path, media_type=AUDIO_TYPES.get(Path(rec.path).suffix.lower(), "application/octet-stream"))
