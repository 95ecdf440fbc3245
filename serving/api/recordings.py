"""Call recordings and stored transcripts for review (QA call view, supervisors); every playback is audited."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import audit
from domain.accounts import Principal
from domain.errors import not_found
from domain.models import Call, Recording, TranscriptSegment
from serving.api.deps import get_session, require_roles

router = APIRouter(tags=["recordings"])
LISTENERS = ("qa_reviewer", "supervisor", "admin")
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
