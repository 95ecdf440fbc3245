"""Uploaded recordings → role-labelled transcript segments for scoring.

Stereo PBX recordings are split by channel (left agent, right caller); mono recordings are
diarized (CAM++ embeddings + clustering) and roles assigned from what each speaker says.
Uses the ASR helper's public API: ``asr.audio.load_audio``, ``asr.engines.create_engine``,
``asr.diarization.diarize`` / ``assign_roles``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr.audio import Audio, resample
from asr.diarization import DiarizationParams, Turn, assign_roles, diarize
from asr.engines.base import transcribe_batch


@dataclass
class Transcription:
    segments: list[dict]  # {role, start_ms, end_ms, text}
    turns: list[Turn]  # diarization output (speaker labels before role mapping)
    mode: str  # stereo | mono
    audio_seconds: float


def _turn_audio(audio: Audio, turn: Turn, channel: int | None) -> np.ndarray:
    x = audio.samples[channel] if channel is not None else audio.mono()
    a, b = turn.start_ms * audio.sample_rate // 1000, turn.end_ms * audio.sample_rate // 1000
    return resample(np.ascontiguousarray(x[a:b]), audio.sample_rate, 16000)


def transcribe_recording(audio: Audio, engine, *, lexicon=None, params: DiarizationParams = DiarizationParams(),
                         batch: int = 8) -> Transcription:
    turns = diarize(audio, params)
    stereo = bool(turns) and {t.speaker for t in turns} <= set(params.channel_map)
    channel_of = {name: i for i, name in enumerate(params.channel_map)}
    clips = [_turn_audio(audio, t, channel_of[t.speaker] if stereo else None) for t in turns]
    hotwords = lexicon.prompt_terms() if lexicon else None
    texts: dict[int, str] = {}
    for lo in range(0, len(clips), batch):
        for j, recs in enumerate(transcribe_batch(engine, clips[lo:lo + batch], hotwords=hotwords)):
            text = "".join(r.text for r in recs).strip()
            if text:
                texts[lo + j] = lexicon.correct(text) if lexicon else text
    roles = assign_roles(turns, texts)
    segments = [{"role": roles[t.speaker], "start_ms": t.start_ms, "end_ms": t.end_ms, "text": texts[i]}
                for i, t in enumerate(turns) if i in texts and roles.get(t.speaker) in ("agent", "caller")]
    return Transcription(segments, turns, "stereo" if stereo else "mono", audio.duration_s)
