"""Issue #26, item 14: SIGTERM to `hotline serve` stops every process of the system, in order, and loses
no recording or spool; a supervisor killed outright leaves no process behind either.

`hotline serve` (or `hotline telephony up`) runs as a subprocess on a temporary data dir with one bridge worker,
one live ASR follower and Kamailio (when installed); a real caller is in the IVR and a benchmark started through
the API is running when the server gets SIGTERM.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from domain import accounts
from domain.db import make_db_engine, session_scope, upgrade
from domain.call_events import TranscriptFinal
from domain.models import Call, Recording, TranscriptSegment
from serving.consumers import SegmentWriter
from serving.event_bus import LocalBus
from telephony.control import control_token, worker_status
from domain.spool import ENDED_MARKER
from telephony.peer import Peer
from telephony.supervisor import read_registry
from tests.telephony.conftest import TEST_FLOW, free_port, rtp_base

pytestmark = pytest.mark.slow
KAMAILIO = shutil.which("kamailio") is not None
EVALUATOR_PASSWORD = "Kx9#vQ2!mZ7$pL"


def _children() -> dict[int, int]:
    """pid -> parent pid of every process on the host."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _free(port: int, kind: int) -> bool:
    """Nothing holds the port (a TCP port in TIME_WAIT from the test's own requests counts as free, as it
    does for every server that sets SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hotline serve exited with {proc.returncode} while waiting for {what}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class Ports:
    def __init__(self):
        self.http, self.sip, self.proxy = _tcp_port(), free_port(), free_port()
        self.control = self.sip + 1000  # the supervisor's default
        assert _free(self.control, socket.SOCK_STREAM)


def _start(tmp_path: Path, models_dir: Path, ports: Ports, *command: str) -> tuple[Path, subprocess.Popen]:
    """``hotline <command>`` on a fresh data dir: one bridge worker, one ASR follower, Kamailio when installed."""
    data = tmp_path / "var"
    data.mkdir(exist_ok=True)
    (data / "models").symlink_to(models_dir)
    flow = TEST_FLOW.model_copy(update={"ivr_timeout_s": 300.0})  # a caller stays in the IVR menu
    env = {**os.environ, "HOTLINE_DATA_DIR": str(data), "HOTLINE_DATABASE_URL": "", "HOTLINE_PORT": str(ports.http),
           "HOTLINE_SIP_PORT": str(ports.sip), "HOTLINE_RTP_PORT": str(rtp_base()),
           "HOTLINE_SIP_PROXY": f"127.0.0.1:{ports.proxy}", "HOTLINE_BRIDGE_WORKERS": "1", "HOTLINE_ASR_FOLLOWERS": "1",
           "HOTLINE_TELEPHONY_FLOW": flow.model_dump_json(), "HOTLINE_EVENT_BUS": "memory"}
    log = open(tmp_path / "hotline.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("hotline")), *command], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    try:
        _wait("the bridge and the ASR follower", lambda: read_registry(data), 300, proc)
        if KAMAILIO:
            _wait("Kamailio", lambda: not _free(ports.proxy, socket.SOCK_DGRAM), 30, proc)
    except BaseException:
        _kill_leftovers(proc, _descendants(proc.pid))
        raise
    return data, proc


def _left_running(system: set[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_running(p) for p in system):
        time.sleep(0.2)
    return [p for p in system if _running(p)]


def _kill_leftovers(proc: subprocess.Popen, system: set[int]) -> None:
    """What a failed test left behind."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in system:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_every_process_and_keeps_the_call_data(tmp_path, models_dir):
    ports = Ports()
    db = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    (tmp_path / "var").mkdir()
    upgrade(db)
    engine = make_db_engine(db)
    with session_scope(engine) as s:
        accounts.create_user(s, accounts.ensure_tenant(s, "laibin"), "bench", EVALUATOR_PASSWORD, "evaluator")
    data, serve = _start(tmp_path, models_dir, ports, "serve", "--no-demo")
    caller = None
    system: set[int] = set()
    try:
        api = f"http://127.0.0.1:{ports.http}"
        _wait("the API", lambda: _ok(f"{api}/healthz"), 300, serve)  # converts e5 once
        token = control_token(data)
        # A benchmark started from the browser runs as the server's child too.
        login = httpx.post(f"{api}/api/auth/login", json={"tenant": "laibin", "username": "bench", "mode": "bearer",
                                                          "password": EVALUATOR_PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        run = httpx.post(f"{api}/api/evaluations/runs", json={"benchmark": "sms-throughput",
                                                              "args": {"messages": 2000000}}, headers=auth)
        assert run.status_code == 201, run.text
        assert httpx.get(f"{api}/api/evaluations/runs/{run.json()['id']}", headers=auth).json()["state"] == "running"

        caller = Peer(free_port(), rtp_base(), user="13500000001", log_path=tmp_path / "ua.log")
        caller.call("c1", f"sip:12345@127.0.0.1:{ports.sip}", wav=str(_speech(tmp_path)), **{"from": "13500000001"})
        caller.state("c1", "CONFIRMED", timeout=20)
        [conv] = _wait("the call in the IVR",
                       lambda: worker_status(ports.control, token)["result"]["conversations"], 20, serve)
        spool = data / "recordings" / "spool" / conv["call_uuid"]
        _wait("caller audio in the spool", lambda: (spool / "caller.pcm").exists()
              and (spool / "caller.pcm").stat().st_size > 16000, 20, serve)

        system = _descendants(serve.pid)
        assert read_registry(data)[0].pid in system and len(system) >= 3 + KAMAILIO  # worker, follower, bench, Kamailio

        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=120)
        caller.ended("c1", timeout=10)  # the worker hung up on the caller before it went

        assert _left_running(system, 10) == [], "processes left running after SIGTERM"
        assert _free(ports.http, socket.SOCK_STREAM) and _free(ports.control, socket.SOCK_STREAM)
        assert _free(ports.sip, socket.SOCK_DGRAM) and (not KAMAILIO or _free(ports.proxy, socket.SOCK_DGRAM))
        assert not (data / "telephony" / "workers.json").exists()
        assert "Fatal Python error" not in (data / "telephony" / "w1.log").read_text()  # it went down cleanly

        # The call was closed in the CDR and its recording written; its spool waits, marked ended, for the
        # next start's follower, or the follower finished it before it stopped.
        with session_scope(engine) as s:
            call = s.query(Call).filter_by(call_uuid=conv["call_uuid"]).one()
            assert call.ended_at is not None and call.lost_reason == "worker_shutdown"
            [rec] = s.query(Recording).filter_by(call_id=call.id).all()
            assert Path(rec.path).stat().st_size > 16000 and rec.duration_ms >= 1000
        assert not spool.exists() or (spool / ENDED_MARKER).exists() and (spool / "caller.pcm").stat().st_size > 16000
    finally:
        if caller is not None:
            caller.close()
        _kill_leftovers(serve, system)
        engine.dispose()


def test_children_die_with_a_killed_supervisor(tmp_path, models_dir):
    """`hotline telephony up` killed outright (kill -9): the kernel stops its worker, follower, Kamailio and the
    local Ray it started for the live ASR (Ray's own fate sharing)."""
    ports = Ports()
    data, sup = _start(tmp_path, models_dir, ports, "telephony", "up", "--workers", "1")
    system: set[int] = set()
    try:
        system = _descendants(sup.pid)
        assert read_registry(data)[0].pid in system and len(system) >= 2 + KAMAILIO
        sup.kill()
        sup.wait()
        # The local Ray's agents notice their raylet's death within 2 s, then spend up to 60 s reporting it to the
        # GCS that died too (ray: publish_error_to_driver's fixed timeout) before they exit.
        assert _left_running(system, 90) == [], "processes left running after the supervisor was killed"
        assert _free(ports.control, socket.SOCK_STREAM) and _free(ports.sip, socket.SOCK_DGRAM)
        assert not KAMAILIO or _free(ports.proxy, socket.SOCK_DGRAM)
    finally:
        _kill_leftovers(sup, system)


def test_stopping_the_app_stores_the_transcript_finals_already_received(engine):
    """The server's shutdown stops the telephony first; the finals its followers published last are still
    queued when the consumers stop, and are stored, not dropped."""
    with session_scope(engine) as s:
        tenant_id = accounts.ensure_tenant(s, "laibin").id
    bus = LocalBus()
    writer = SegmentWriter(bus, engine).start()
    for i in range(300):
        bus.publish(TranscriptFinal(tenant_id=tenant_id, call_id="w1-0123456789abcdef", leg="caller", role="caller",
                                    start_ms=i * 1000, end_ms=i * 1000 + 800, text=f"第{i}句", confidence=0.9,
                                    engine="whisper"))
    writer.stop()
    with session_scope(engine) as s:
        texts = s.scalars(select(TranscriptSegment.text).order_by(TranscriptSegment.start_ms)).all()
    assert texts == [f"第{i}句" for i in range(300)]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _speech(tmp_path: Path) -> Path:
    from tests.telephony.conftest import speechlike, write_wav

    return write_wav(tmp_path / "caller.wav", speechlike(11, 20))
