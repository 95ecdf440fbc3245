"""The media fork without SIP: frames in, call events and a stereo recording out, nothing lost to a slow consumer."""
from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from domain.call_events import CallState
from domain.spool import FRAME_BYTES
from telephony.flow import CallFlowParams, classify_end, sip_user
from telephony.media import FrameHub, byte_vector_reader
from telephony.prompts import Prompts, wav_duration


class SlowSink:
    """Takes 0.5 s per call event (a bus that is down for a moment); records only."""

    reads_spool = False

    def __init__(self):
        self.events: list[CallState] = []

    def on_call_event(self, event: CallState) -> None:
        time.sleep(0.5)
        self.events.append(event)


def frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


def test_slow_consumer_loses_nothing_and_recording_is_stereo(tmp_path):
    sink = SlowSink()
    hub = FrameHub(tmp_path / "recordings" / "spool", sink, tenant_id=7)
    done = threading.Event()
    result = {}
    hub.open_call("w1-abc")
    t0 = time.monotonic()
    n = 200
    for seq in range(n):  # caller from t0; the agent joins 1 s (50 frames) later
        hub.inbox.append(("w1-abc", "caller", seq, t0 + seq * 0.02, frame(1000)))
        if seq >= 50:
            hub.inbox.append(("w1-abc", "agent", seq - 50, t0 + seq * 0.02, frame(-2000)))
    for state in ("talking", "ended"):
        hub.publish(CallState(call_id="w1-abc", state=state))
    hub.close_call("w1-abc", lambda rec: (result.update(rec=rec), done.set()))
    assert done.wait(10), "the recording does not wait for the slow sink"
    hub.stop()
    assert hub.frames_in == 2 * n - 50
    assert [e.state for e in sink.events] == ["talking", "ended"]  # every event, in order
    rec = result["rec"]
    audio, sr = sf.read(rec.path, dtype="int16")
    assert sr == 8000 and audio.shape == (n * 160, 2)
    assert (audio[:, 1] == 1000).all()  # caller right
    assert (audio[: 50 * 160, 0] == 0).all() and (audio[50 * 160 :, 0] == -2000).all()  # agent left, joined at 1 s
    assert rec.frames == {"caller": n, "agent": n - 50}
    assert not (tmp_path / "recordings" / "spool" / "w1-abc").exists()


def test_fast_byte_vector_copy_matches_swig():
    pj = pytest.importorskip("pjsua2")
    read = byte_vector_reader()
    vec = pj.ByteVector(list(range(256)) + [9] * 64)
    assert read is not bytes and read(vec) == bytes(vec)


def test_flow_rules():
    p = CallFlowParams()
    kw = dict(blocked=False, closed=False, lost_reason="", hangup_side="caller", params=p)
    assert classify_end(answered=False, seconds_before_answer=19.9, **kw) == "abandoned_short"
    assert classify_end(answered=False, seconds_before_answer=20.1, **kw) == "abandoned"
    assert classify_end(answered=True, seconds_before_answer=30, **kw) == "answered"
    assert classify_end(answered=False, seconds_before_answer=5, **{**kw, "lost_reason": "queue_timeout"}) == "lost"
    assert sip_user('"张三" <sip:13800000000@10.0.0.1:5060;transport=udp>') == "13800000000"
    assert sip_user("sip:12345@127.0.0.1") == "12345"


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng and sox needed")
def test_default_prompts_are_synthesised(tmp_path):
    prompts = Prompts(tmp_path)
    path = prompts.path("welcome")
    with sf.SoundFile(path) as f:
        assert (f.samplerate, f.channels) == (8000, 1)
    assert 1.0 < wav_duration(path) < 15
    assert 0.5 < wav_duration(prompts.position(3)) < 8
    assert wav_duration(prompts.path("hold_music")) == pytest.approx(8.0, abs=0.1)


class BusySink:
    """Burns CPU on every call event (serialising, a slow bus) and records its thread's nice value."""

    reads_spool = True

    def __init__(self):
        self.events = 0
        self.nice = None

    def on_call_event(self, event: CallState) -> None:
        import os

        self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        deadline = time.thread_time() + 0.01
        while time.thread_time() < deadline:
            pass
        self.events += 1


def test_sink_cpu_is_not_counted_as_bridge_cpu_and_the_sink_runs_niced(tmp_path):
    import os

    from telephony.media import HubParams
    from telephony.threadcpu import ThreadGroupClock, thread_ids

    sink = BusySink()
    hub = FrameHub(tmp_path / "spool", sink, params=HubParams(sink_nice=5))
    bridge = ThreadGroupClock(thread_ids() - {hub.sink_thread_id})
    before = bridge.seconds()
    hub.open_call("c1")
    for seq in range(50):  # 0.5 s of sink CPU
        hub.inbox.append(("c1", "caller", seq, time.monotonic(), frame(seq)))
        hub.publish(CallState(call_id="c1", state="talking"))
    deadline = time.monotonic() + 30
    while sink.events < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    hub.stop()
    assert sink.events == 50
    assert bridge.seconds() - before < 0.25  # the sink's 0.5 s is not the bridge's
    assert sink.nice == min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)


def test_end_of_call_write_waits_out_a_locked_database(tmp_path):
    """End-of-call writes go to the worker's database thread, which waits out a locked database."""
    import queue
    import sqlite3
    from types import SimpleNamespace

    from sqlalchemy import create_engine, text

    from domain.db import session_scope
    from telephony.worker import BridgeWorker

    path = tmp_path / "busy.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE cdr (call TEXT)"))
    worker = SimpleNamespace(params=CallFlowParams(), writes=queue.Queue(), db=lambda: session_scope(engine))
    writer = threading.Thread(target=BridgeWorker._write_loop, args=(worker,))
    writer.start()
    locker = sqlite3.connect(path)
    locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    for call in ("w1-a", "w1-b"):
        BridgeWorker.persist(worker, f"CDR of {call}", lambda s, call=call: s.execute(
            text("INSERT INTO cdr VALUES (:c)"), {"c": call}))
    time.sleep(1.5)  # the first try failed; the writer waits 1 s, then 2 s
    locker.rollback()
    worker.writes.put(None)
    writer.join(timeout=20)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT call FROM cdr")).scalars().all() == ["w1-a", "w1-b"]  # in order
    locker.close()
    engine.dispose()
