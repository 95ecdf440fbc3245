"""Call recordings and stored transcripts for review (QA call view, supervisors); every playback is audited.

Recordings uploaded for scoring (``POST /api/recordings``) are acknowledged once stored and scored on the Ray
cluster (``qa.service.RecordingScoring``); ``GET /api/recordings/{id}/scoring`` is the progress a page polls."""
from __future__ import annotations

import threading
from pathlib import Path

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import audit
from domain.accounts import Principal
from domain.errors import AppError, not_found
from domain.models import Call, Recording, TranscriptSegment
from qa.batch import AUDIO_SUFFIXES
from serving.api.deps import get_session, require_roles

router = APIRouter(tags=["recordings"])
LISTENERS = ("qa_reviewer", "supervisor", "admin")
SCORERS = ("qa_reviewer", "supervisor", "admin")
_STARTING = threading.Lock()  # one RecordingScoring per app, whichever request comes first
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
               ".opus": "audio/ogg", ".m4a": "audio/mp4"}


@router.get("/api/recordings/{recording_id}/audio")
def recording_audio(recording_id: int, principal: Principal = Depends(require_roles(*LISTENERS)),
                    session: Session = Depends(get_session, scope="function")) -> FileResponse:
    row = session.scalar(select(Recording).where(Recording.id == recording_id,
                                                 Recording.tenant_id == principal.tenant_id))
    if row is None or not Path(row.path).is_file():
        raise not_found("录音文件")
    audit.record(session, "recording.play", tenant_id=principal.tenant_id, actor_id=principal.user.id,
                 actor_name=principal.user.username, entity="recording", entity_id=row.id,
                 ip=session.info.get("ip", ""))
    path = Path(row.path)
    return FileResponse(path, media_type=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))


@router.get("/api/calls/{call_id}/transcript")
def call_transcript(call_id: int, principal: Principal = Depends(require_roles(*LISTENERS)),
                    session: Session = Depends(get_session, scope="function")) -> dict:
    call = session.scalar(select(Call).where(Call.id == call_id, Call.tenant_id == principal.tenant_id))
    if call is None:
        raise not_found("通话")
    segments = session.scalars(select(TranscriptSegment).where(
        TranscriptSegment.call_id == call.id, TranscriptSegment.is_final.is_(True)).order_by(TranscriptSegment.start_ms))
    recording = session.scalar(select(Recording.id).where(Recording.call_id == call.id).order_by(Recording.id))
    return {"call_id": call.id, "call_uuid": call.call_uuid, "recording_id": recording,
            "segments": [{"leg": s.leg, "role": s.speaker_role, "start_ms": s.start_ms, "end_ms": s.end_ms,
                          "text": s.text} for s in segments]}


def recording_scoring(app):
    """The app's scoring of uploaded recordings, started on first use (it resumes uploads left unscored)."""
    from qa.service import RecordingScoring
    from serving.api.deps import knowledge_indexes

    with _STARTING:
        if getattr(app.state, "recording_scoring", None) is None:
            app.state.recording_scoring = RecordingScoring(app.state.settings, app.state.engine,
                                                           knowledge_indexes(app))
    return app.state.recording_scoring


@router.post("/api/recordings", status_code=202)
async def upload_recording(request: Request, file: UploadFile = File(...),
                           principal: Principal = Depends(require_roles(*SCORERS))) -> dict:
    """Store a recording (stereo split by channel, mono diarized) and score it on the cluster; answered once the
    file and its row are durable, with the status to poll."""
    from serving.offload import run_heavy

    settings = request.app.state.settings
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise AppError("too_large", "上传文件过大", 413)
    if not data:
        raise AppError("empty_upload", "上传文件为空", 422)
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise AppError("bad_file_type", f"只支持录音文件（{'/'.join(s[1:] for s in AUDIO_SUFFIXES)}）", 415)
    recording_id = await run_heavy(request.app, lambda: recording_scoring(request.app).upload(
        principal.tenant_id, data, suffix))
    return {"recording_id": recording_id, "state": "queued",
            "status_url": f"/api/recordings/{recording_id}/scoring"}


@router.get("/api/recordings/{recording_id}/scoring")
def recording_scoring_status(request: Request, recording_id: int,
                             principal: Principal = Depends(require_roles(*SCORERS)),
                             session: Session = Depends(get_session, scope="function")) -> dict:
    """queued (waiting for or running on a Ray worker; ``queued_ahead`` uploads before it), storing, scored
    (``result_id``) or failed (``error``, in Chinese)."""
    status = recording_scoring(request.app).status(session, principal.tenant_id, recording_id)
    if status is None:
        raise not_found("录音")
    return status
