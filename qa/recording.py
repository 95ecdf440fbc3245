"""Uploaded recordings → role-labelled transcript segments for scoring.

Stereo PBX recordings are split by channel (left agent, right caller); mono recordings are
diarized (CAM++ embeddings + clustering) and roles assigned from what each speaker says.
Uses the ASR helper's public API: ``asr.audio.load_audio``, ``asr.engines.create_asr_engine``,
``asr.diarization.diarize`` / ``assign_roles``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr.audio import Audio, resample
from asr.diarization import DiarizationParams, Turn, assign_roles, diarize
from asr.engines.base import PreviousTextParams, transcribe_batch


@dataclass
class Transcription:
    segments: list[dict]  # {role, start_ms, end_ms, text, confidence}
    turns: list[Turn]  # diarization output (speaker labels before role mapping)
    mode: str  # stereo | mono
    audio_seconds: float


def _asr_span(turns: list[Turn], i: int, stereo: bool, pad_ms: int) -> tuple[int, int]:
    """Turn ``i`` widened by ``pad_ms`` on each side, up to the nearest turn that shares its audio."""
    turn = turns[i]
    near = [u for j, u in enumerate(turns) if j != i and (not stereo or u.speaker == turn.speaker)]
    lo = max([u.end_ms for u in near if u.end_ms <= turn.start_ms], default=0)
    hi = min([u.start_ms for u in near if u.start_ms >= turn.end_ms], default=turn.end_ms + pad_ms)
    return max(lo, turn.start_ms - pad_ms), min(hi, turn.end_ms + pad_ms)


def _turn_audio(audio: Audio, span: tuple[int, int], channel: int | None) -> np.ndarray:
    x = audio.samples[channel] if channel is not None else audio.mono()
    a, b = span[0] * audio.sample_rate // 1000, span[1] * audio.sample_rate // 1000
    return resample(np.ascontiguousarray(x[a:b]), audio.sample_rate, 16000)


def transcribe_recording(audio: Audio, engine, *, lexicon=None, params: DiarizationParams = DiarizationParams(),
                         previous_text: PreviousTextParams = PreviousTextParams()) -> Transcription:
    """Each turn is decoded in time order after the text of the conversation so far (both parties: the caller's
    question is context for the agent's answer), as Whisper transcribes long audio; see docs/speech.md."""
    turns = diarize(audio, params)
    stereo = bool(turns) and {t.speaker for t in turns} <= set(params.channel_map)
    channel_of = {name: i for i, name in enumerate(params.channel_map)}
    hotwords = lexicon.prompt_terms() if lexicon else None
    texts: dict[int, str] = {}
    confidence: dict[int, float] = {}  # the least sure piece of each turn (0.0: the engine gives no score)
    previous = ""
    for i, turn in enumerate(turns):  # in time order
        clip = _turn_audio(audio, _asr_span(turns, i, stereo, params.asr_pad_ms),
                           channel_of[turn.speaker] if stereo else None)
        recs = transcribe_batch(engine, [clip], hotwords=hotwords, prompts=[previous or None])[0]
        text = "".join(r.text for r in recs).strip()
        if not text:
            continue
        texts[i] = lexicon.correct(text) if lexicon else text
        confidence[i] = min(r.confidence for r in recs) if engine.capabilities.confidence else 0.0
        previous = previous_text.extend(previous, texts[i], min(r.confidence for r in recs),
                                        scored=engine.capabilities.confidence)
    roles = assign_roles(turns, texts)
    segments = [{"role": roles[t.speaker], "start_ms": t.start_ms, "end_ms": t.end_ms, "text": texts[i],
                 "confidence": confidence[i]}
                for i, t in enumerate(turns) if i in texts and roles.get(t.speaker) in ("agent", "caller")]
    return Transcription(segments, turns, "stereo" if stereo else "mono", audio.duration_s)
