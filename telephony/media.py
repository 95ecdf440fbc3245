"""Media fork: per-leg 20 ms frames leave the pjmedia clock thread through a deque.

The clock thread only copies the frame bytes (a few microseconds) and appends a
tuple to a ``collections.deque`` (an atomic operation under the GIL); it never
waits on Python work.  A spool thread writes each leg's PCM durably to disk
(:mod:`domain.spool`, the format's one owner), and a sink thread delivers
call-state events.  At hang-up the spool becomes a stereo WAV (agent left,
caller right).

The live ASR reads the spool (``asr.follower``): with a sink that has
``reads_spool = True`` each call's spool stays on disk, marked ended, until the
ASR follower has transcribed it.  The spool is the ASR queue: when ASR falls
behind, audio waits on disk, never in memory.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from domain.call_events import CallState
from domain.spool import FRAME_MS, SAMPLE_RATE, CallSpool, close_spool, finalize_spool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubParams:
    """How often the hand-off threads wake.  Each wake costs a context switch; at 50
    frames per second per leg a longer interval moves more frames per wake."""

    spool_interval_s: float = 0.1  # spool thread: frames reach the page cache at most this late
    sink_interval_s: float = 0.05  # sink thread: call events reach the bus at most this late
    fsync_interval_s: float = 1.0  # spooled PCM is fsynced at least this often
    sink_nice: int = 10  # the sink thread, and threads it starts, yield the CPU to the media path


class MediaSink(Protocol):
    """Where call-state events go.  ``reads_spool``: the live ASR reads the spooled PCM, so each call's spool
    is kept (marked ended) until it is done; without it the spool is removed once the recording is made."""

    reads_spool: bool

    def on_call_event(self, event: CallState) -> None: ...


class NullSink:
    """Recording only: call events are discarded and spools removed (injected by the entry point otherwise)."""

    reads_spool = False

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


class FrameHub:
    """Frames from every fork port of one worker: clock thread -> spool thread -> sink thread."""

    def __init__(self, spool_root: Path, sink: MediaSink, tenant_id: int = 0, params: HubParams | None = None):
        self.params = params or HubParams()
        self.spool_root = spool_root
        self.sink = sink
        self.keep_spools = sink.reads_spool  # the live ASR reads the spool
        self.tenant_id = tenant_id
        self.inbox: deque = deque()  # (call_uuid, leg, seq, ts, pcm) appended by the clock thread
        self.outbox: deque = deque()  # CallState events, for the sink thread
        self.calls: dict[str, CallSpool] = {}
        self.frames_in = 0
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
        self.outbox.append(event)

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
            event = self.outbox.popleft()
            try:
                self.sink.on_call_event(event)
            except Exception:  # a failing consumer must not stop the media path
                log.exception("media sink failed")


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
