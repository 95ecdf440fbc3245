"""The call spool: each leg's 8 kHz PCM on disk as the bridge receives it, the live ASR's queue.

One owner for the format, imported by both sides: the bridge worker writes it (``telephony.media.FrameHub``
through :class:`CallSpool`), the live ASR follower (``asr.follower``) reads it (:class:`SpoolCall`).

``<spool root>/<call uuid>/``:

* ``<leg>.pcm``: the leg's PCM16 mono at :data:`SAMPLE_RATE`, 20 ms frames appended as they arrive (a silent
  frame pads a short one), fsynced at least once a second;
* ``meta.json``: ``call_uuid``, ``tenant_id`` and per leg the recording segments ``[offset_frames, byte_pos]``
  (where each stretch of frames sits on the call's time line), rewritten atomically;
* ``ended.json`` (:data:`ENDED_MARKER`): written durably once the call's stereo WAV is final.  No more audio
  will come; the reader finishes the call and removes the directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2
BYTES_PER_S = SAMPLE_RATE * 2
META = "meta.json"
ENDED_MARKER = "ended.json"


# -- writer (the bridge) -------------------------------------------------------------------------------------
@dataclass
class LegSpool:
    """One leg's raw PCM on disk plus the frame offset of each segment."""

    pcm: object  # open binary file
    segments: list = field(default_factory=list)  # [offset_frames, byte_pos]
    frames: int = 0
    bytes_written: int = 0


class CallSpool:
    """Durable per-call spool: ``<dir>/<leg>.pcm`` and ``meta.json``; finalised into a stereo WAV."""

    def __init__(self, directory: Path, call_uuid: str, t0: float, tenant_id: int = 0):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.call_uuid = call_uuid
        self.tenant_id = tenant_id
        self.t0 = t0
        self.legs: dict[str, LegSpool] = {}
        self._write_meta()

    def _write_meta(self) -> None:
        meta = {"call_uuid": self.call_uuid, "tenant_id": self.tenant_id,
                "segments": {k: v.segments for k, v in self.legs.items()}}
        tmp = self.dir / f"{META}.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.dir / META)

    def write(self, leg: str, new_segment: bool, ts: float, pcm: bytes) -> None:
        spool = self.legs.get(leg)
        if spool is None:
            spool = self.legs[leg] = LegSpool(open(self.dir / f"{leg}.pcm", "ab"))
        if new_segment or not spool.segments:
            offset = max(round((ts - self.t0) * 1000 / FRAME_MS), 0)
            last = spool.segments[-1] if spool.segments else None
            if last is not None:  # never overlap the previous segment
                offset = max(offset, last[0] + (spool.bytes_written - last[1]) // FRAME_BYTES)
            spool.segments.append([offset, spool.bytes_written])
            self._write_meta()
        if len(pcm) != FRAME_BYTES:
            pcm = (pcm + bytes(FRAME_BYTES))[:FRAME_BYTES]
        spool.pcm.write(pcm)
        spool.frames += 1
        spool.bytes_written += FRAME_BYTES

    def flush(self) -> None:
        for spool in self.legs.values():
            spool.pcm.flush()
            os.fsync(spool.pcm.fileno())

    def close(self) -> None:
        for spool in self.legs.values():
            spool.pcm.close()


@dataclass
class RecordingResult:
    path: Path
    duration_ms: int
    sha256: str
    frames: dict[str, int]


def close_spool(spool_dir: Path, keep: bool, info: dict) -> None:
    """Remove a finished spool, or (``keep``) durably mark it ended so the live ASR finishes it."""
    if not keep:
        shutil.rmtree(spool_dir)
        return
    marker = spool_dir / f"{ENDED_MARKER}.tmp"
    with open(marker, "w") as fh:
        json.dump(info, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(marker, spool_dir / ENDED_MARKER)


def finalize_spool(spool_dir: Path, wav_path: Path, keep: bool = False) -> RecordingResult:
    """Assemble a spool directory into a stereo 8 kHz WAV (agent left, caller right), fsync, then remove
    the spool, or with ``keep`` mark it ended for the live ASR (which removes it when done)."""
    meta = json.loads((spool_dir / META).read_text())
    channels = {"agent": 0, "caller": 1}
    placed: list[tuple[int, int, np.ndarray]] = []
    frames: dict[str, int] = {}
    total = 0
    for leg, segments in meta["segments"].items():
        raw = np.fromfile(spool_dir / f"{leg}.pcm", dtype="<i2")
        frames[leg] = len(raw) * 2 // FRAME_BYTES
        bounds = [s[1] // 2 for s in segments] + [len(raw)]
        for (offset, _), start, end in zip(segments, bounds, bounds[1:]):
            pos = offset * FRAME_BYTES // 2
            placed.append((channels[leg], pos, raw[start:end]))
            total = max(total, pos + end - start)
    audio = np.zeros((total, 2), dtype=np.int16)
    for ch, pos, samples in placed:
        audio[pos : pos + len(samples), ch] = samples
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav_path.with_suffix(".wav.tmp")
    sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, wav_path)
    digest = hashlib.sha256(wav_path.read_bytes()).hexdigest()
    close_spool(spool_dir, keep, {"wav": str(wav_path), "frames": frames})
    return RecordingResult(wav_path, total * 1000 // SAMPLE_RATE, digest, frames)


def is_unfinished(spool_dir: Path) -> bool:
    """A call spool whose bridge stopped before marking it ended (a crash): its recording still needs making."""
    return spool_dir.is_dir() and (spool_dir / META).exists() and not (spool_dir / ENDED_MARKER).exists()


# -- reader (the live ASR) -----------------------------------------------------------------------------------
class LegReader:
    """Reads one leg's PCM as it grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, path.stem
        self.fh = open(path, "rb")
        self.offset = 0

    def pending_bytes(self) -> int:
        return os.fstat(self.fh.fileno()).st_size - self.offset

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes more (whole samples)."""
        data = self.fh.read(n)
        self.offset += len(data)
        return data[: len(data) // 2 * 2]

    def close(self) -> None:
        self.fh.close()


class SpoolCall:
    """One call's spool as the reader sees it: identity from ``meta.json``, legs as they appear, the end mark.
    Raises ``OSError``/``ValueError``/``KeyError`` while the bridge is still creating it or when it is damaged."""

    def __init__(self, directory: Path) -> None:
        meta = json.loads((directory / META).read_text())
        self.dir, self.uuid, self.tenant_id = directory, meta["call_uuid"], int(meta.get("tenant_id", 0))

    @staticmethod
    def ready(directory: Path) -> bool:
        return (directory / META).exists()

    def ended(self) -> bool:
        """No more audio will come (checked before reading: the marker is written after the PCM is complete)."""
        return (self.dir / ENDED_MARKER).exists()

    def leg_paths(self) -> list[Path]:
        return sorted(self.dir.glob("*.pcm"))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
