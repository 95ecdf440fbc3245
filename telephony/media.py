"""Media fork: per-leg 20 ms frames leave the pjmedia clock thread through a deque.

The clock thread only copies the frame bytes (a few microseconds) and appends a
tuple to a ``collections.deque`` (an atomic operation under the GIL); it never
waits on Python work.  A spool thread writes each leg's PCM durably to disk,
and a sink thread delivers call-state events (and, to a sink that asks for
them, frames as :class:`domain.events.AudioFrame`).  At hang-up the spool
becomes a stereo WAV (agent left, caller right).

The live ASR reads the spool itself (``serving.pipeline``'s followers): a sink with
``reads_spool = True`` gets no frames, and each call's spool stays on disk,
marked ended, until the ASR follower has transcribed it.  The spool is the
ASR queue: when ASR falls behind, audio waits on disk, never in memory.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from domain.events import AudioFrame, CallState

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2


@dataclass(frozen=True)
class HubParams:
    """How often the hand-off threads wake.  Each wake costs a context switch; at 50
    frames per second per leg a longer interval moves more frames per wake."""

    spool_interval_s: float = 0.1  # spool thread: frames reach the page cache at most this late
    sink_interval_s: float = 0.05  # sink thread: added ASR latency at most this
    fsync_interval_s: float = 1.0  # spooled PCM is fsynced at least this often
    sink_nice: int = 10  # the sink (ASR) thread, and threads it starts, yield the CPU to the media path


class MediaSink(Protocol):
    """Where forked audio and call-state events go.  ``reads_spool`` (optional, default False): the
    sink's consumer reads the spooled PCM instead of frames, so spools are kept until it is done."""

    def on_audio(self, frame: AudioFrame) -> None: ...

    def on_call_event(self, event: CallState) -> None: ...


class NullSink:
    """Default sink: discards (the recording is still written)."""

    def on_audio(self, frame: AudioFrame) -> None:
        pass

    def on_call_event(self, event: CallState) -> None:
        pass


def byte_vector_reader():
    """Return a fast ``ByteVector -> bytes`` copier.

    SWIG iterates a ``std::vector<unsigned char>`` element by element (~200 µs
    per 20 ms frame, over 1 % of a core per leg).  libstdc++ lays a vector out
    as (begin, end, capacity) pointers, so ctypes can copy it in ~3 µs.  The
    fast path is verified against the slow one before it is used.
    """
    import pjsua2 as pj

    pair = ctypes.POINTER(ctypes.c_void_p * 2)

    def fast(vec) -> bytes:
        begin, end = ctypes.cast(int(vec.this), pair).contents
        if not begin or not end:
            return b""
        return ctypes.string_at(begin, end - begin)

    probe = pj.ByteVector(list(range(256)) + [7] * 64)
    try:
        if fast(probe) == bytes(probe):
            return fast
    except Exception:  # pragma: no cover - different C++ ABI
        pass
    return bytes


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
        tmp = self.dir / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.dir / "meta.json")

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


ENDED_MARKER = "ended.json"  # written into a kept spool once its WAV is final: no more audio will come


def close_spool(spool_dir: Path, keep: bool, info: dict) -> None:
    """Remove a finished spool, or (``keep``) durably mark it ended so the ASR follower finishes it."""
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
    the spool, or with ``keep`` mark it ended for the ASR follower (which removes it when done)."""
    meta = json.loads((spool_dir / "meta.json").read_text())
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


class FrameHub:
    """Frames from every fork port of one worker: clock thread -> spool thread -> sink thread."""

    def __init__(self, spool_root: Path, sink: MediaSink, tenant_id: int = 0, params: HubParams | None = None):
        self.params = params or HubParams()
        self.spool_root = spool_root
        self.sink = sink
        self.keep_spools = bool(getattr(sink, "reads_spool", False))  # the consumer reads the spool, not frames
        self.tenant_id = tenant_id
        self.inbox: deque = deque()  # (call_uuid, leg, seq, ts, pcm) appended by the clock thread
        self.outbox: deque = deque()  # same tuples, for the sink thread
        self.calls: dict[str, CallSpool] = {}
        self.events: deque = deque()  # CallState events, delivered in order with the audio
        self.frames_in = 0
        self.frames_out = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._spool_loop, name="spool", daemon=True),
            threading.Thread(target=self._sink_loop, name="sink", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.sink_thread_id = self._threads[1].native_id

    # -- called from the worker's main thread
    def open_call(self, call_uuid: str) -> None:
        self.inbox.append(("open", call_uuid, time.monotonic()))

    def close_call(self, call_uuid: str, done: "callable") -> None:
        """Finalise after every frame already queued for this call is spooled; ``done(result)`` runs on the spool thread."""
        self.inbox.append(("close", call_uuid, done))

    def publish(self, event: CallState) -> None:
        self.outbox.append(("event", event))

    def backlog_frames(self) -> int:
        return len(self.inbox) + len(self.outbox)

    def stop(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.inbox or self.outbox) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        for t in self._threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.1))

    # -- threads
    def _spool_loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.is_set():
            if not self.inbox:
                time.sleep(self.params.spool_interval_s)
            while self.inbox:
                item = self.inbox.popleft()
                if item[0] == "open":
                    self.calls[item[1]] = CallSpool(self.spool_root / item[1], item[1], item[2], self.tenant_id)
                elif item[0] == "close":
                    self._close(item[1], item[2])
                else:
                    call_uuid, leg, seq, ts, pcm = item
                    spool = self.calls.get(call_uuid)
                    if spool is not None:
                        spool.write(leg, seq == 0, ts, pcm)
                    self.frames_in += 1
                    if not self.keep_spools:
                        self.outbox.append(item)
            if time.monotonic() - last_flush > self.params.fsync_interval_s:
                for spool in self.calls.values():
                    spool.flush()
                last_flush = time.monotonic()

    def _close(self, call_uuid: str, done) -> None:
        spool = self.calls.pop(call_uuid, None)
        result = None
        if spool is not None:
            spool.flush()
            spool.close()
            if spool.legs:
                wav = self.spool_root.parent / time.strftime("%Y/%m/%d") / f"{call_uuid}.wav"
                result = finalize_spool(spool.dir, wav, keep=self.keep_spools)
            else:  # no media reached the bridge
                close_spool(spool.dir, self.keep_spools, {"wav": None, "frames": {}})
        done(result)

    def _sink_loop(self) -> None:
        renice_thread(threading.get_native_id(), self.params.sink_nice)  # inherited by threads started from here
        while not self._stop.is_set():
            if not self.outbox:
                time.sleep(self.params.sink_interval_s)
                continue
            item = self.outbox.popleft()
            try:
                if item[0] == "event":
                    self.sink.on_call_event(item[1])
                    continue
                call_uuid, leg, seq, ts, pcm = item
                self.sink.on_audio(
                    AudioFrame.model_construct(
                        tenant_id=self.tenant_id, call_id=call_uuid, ts=ts, leg=leg,
                        sample_rate=SAMPLE_RATE, pcm=pcm or bytes(FRAME_BYTES), seq=seq,
                        kind="audio", version=1,
                    )
                )
                self.frames_out += 1
            except Exception:  # a failing consumer must not stop the media path
                import logging

                logging.getLogger(__name__).exception("media sink failed")


def renice_thread(tid: int, increment: int) -> None:
    """Lower one thread's scheduling priority (Linux nice is per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + increment, 19))
    except OSError:  # the thread has exited
        pass


@lru_cache
def _fork_class():
    import pjsua2 as pj

    read = byte_vector_reader()

    class LegFork(pj.AudioMediaPort):
        def __init__(self, inbox: deque, name: str):
            super().__init__()
            self.inbox = inbox
            self.target = None  # (call_uuid, leg, [frames]) or None while idle in the pool
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, FRAME_MS * 1000, 16)
            self.createPort(name, fmt)

        def onFrameReceived(self, frame):  # pjmedia clock thread: copy and hand off, nothing else
            t = self.target
            if t is None:
                return
            seq = t[2][0]
            t[2][0] = seq + 1
            self.inbox.append((t[0], t[1], seq, time.monotonic(), read(frame.buf)))

    return LegFork


class ForkPool:
    """Fork ports (``AudioMediaPort``) are reused and never destroyed while the endpoint runs.

    pjsua2's ``AudioMediaPort`` has no group lock, and pjmedia 2.15 removes
    conference ports asynchronously, so destroying one can let the clock
    thread call into freed memory.  A worker needs at most a handful of ports
    (4 calls), so it keeps them.  All methods run on the worker's main thread.
    """

    def __init__(self, hub: FrameHub):
        self.hub = hub
        self.idle: list = []
        self.ports: list = []

    def acquire(self, call_uuid: str, leg: str):
        if not self.idle:
            port = _fork_class()(self.hub.inbox, f"fork{len(self.ports)}")
            self.ports.append(port)
            self.idle.append(port)
        port = self.idle.pop()
        port.target = (call_uuid, leg, [0])  # a fresh counter: seq 0 starts a new recording segment
        return port

    def release(self, port) -> int:
        """Detach a port from its leg; returns the frames it forked for that leg."""
        t, port.target = port.target, None
        self.idle.append(port)
        return t[2][0] if t else 0

    def abandon(self) -> None:
        """At shutdown: let libDestroy free the ports (no Python-side destructor races the clock thread).  The
        Python objects stay referenced: the clock thread may call ``onFrameReceived`` until libDestroy has
        removed the ports, and a freed one crashed the worker on its way out."""
        for port in self.ports:
            port.target = None
            port.thisown = False
