"""Issue #26, item 14: SIGTERM to `hotline serve` stops every process of the system, in order, and loses
no recording or spool.

`hotline serve` runs as a subprocess on a temporary data dir with one bridge worker, one live ASR follower
and Kamailio (when installed); a real caller is in the IVR when the server gets SIGTERM.
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

from domain.db import make_engine, session_scope
from domain.models import Call, Recording
from telephony.control import control_token, worker_status
from telephony.media import ENDED_MARKER
from telephony.peer import Peer
from telephony.supervisor import read_registry
from tests.telephony.conftest import TEST_FLOW, free_port, rtp_base

pytestmark = pytest.mark.slow


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


def test_sigterm_stops_every_process_and_keeps_the_call_data(tmp_path, models_dir):
    data = tmp_path / "var"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    http_port, sip_port, proxy_port = _tcp_port(), free_port(), free_port()
    control_port = sip_port + 1000  # the supervisor's default
    assert _free(control_port, socket.SOCK_STREAM)
    flow = TEST_FLOW.model_copy(update={"ivr_timeout_s": 300.0})  # the caller stays in the IVR menu
    env = {**os.environ, "HOTLINE_DATA_DIR": str(data), "HOTLINE_DATABASE_URL": "", "HOTLINE_PORT": str(http_port),
           "HOTLINE_SIP_PORT": str(sip_port), "HOTLINE_RTP_PORT": str(rtp_base()),
           "HOTLINE_SIP_PROXY": f"127.0.0.1:{proxy_port}", "HOTLINE_BRIDGE_WORKERS": "1", "HOTLINE_ASR_FOLLOWERS": "1",
           "HOTLINE_TELEPHONY_FLOW": flow.model_dump_json(), "HOTLINE_EVENT_BUS": "memory"}
    hotline = Path(sys.executable).with_name("hotline")
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen([str(hotline), "serve", "--no-demo"], env=env, stdout=log, stderr=subprocess.STDOUT)
    caller = None
    system: set[int] = set()
    try:
        _wait("the bridge and the ASR follower", lambda: read_registry(data), 300, serve)
        _wait("the API", lambda: _ok(f"http://127.0.0.1:{http_port}/healthz"), 300, serve)  # converts e5 once
        kamailio = shutil.which("kamailio") is not None
        if kamailio:
            _wait("Kamailio", lambda: not _free(proxy_port, socket.SOCK_DGRAM), 30, serve)
        token = control_token(data)

        caller = Peer(free_port(), rtp_base(), user="13500000001", log_path=tmp_path / "ua.log")
        caller.call("c1", f"sip:12345@127.0.0.1:{sip_port}", wav=str(_speech(tmp_path)), **{"from": "13500000001"})
        caller.state("c1", "CONFIRMED", timeout=20)
        [conv] = _wait("the call in the IVR",
                       lambda: worker_status(control_port, token)["result"]["conversations"], 20, serve)
        spool = data / "recordings" / "spool" / conv["call_uuid"]
        _wait("caller audio in the spool", lambda: (spool / "caller.pcm").exists()
              and (spool / "caller.pcm").stat().st_size > 16000, 20, serve)

        system = _descendants(serve.pid)
        worker_pid = read_registry(data)[0].pid
        assert worker_pid in system and len(system) >= 2 + kamailio  # worker, follower (and Kamailio's processes)

        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=120)
        caller.ended("c1", timeout=10)  # the worker hung up on the caller before it went

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_running(p) for p in system):
            time.sleep(0.2)
        assert [p for p in system if _running(p)] == [], "processes left running after SIGTERM"
        assert _free(http_port, socket.SOCK_STREAM) and _free(control_port, socket.SOCK_STREAM)
        assert _free(sip_port, socket.SOCK_DGRAM) and (not kamailio or _free(proxy_port, socket.SOCK_DGRAM))
        assert not (data / "telephony" / "workers.json").exists()
        assert "Fatal Python error" not in (data / "telephony" / "w1.log").read_text()  # it went down cleanly

        # The call was closed in the CDR and its recording written; its spool waits, marked ended, for the
        # next start's follower, or the follower finished it before it stopped.
        engine = make_engine(f"sqlite:///{data / 'hotline.db'}")
        with session_scope(engine) as s:
            call = s.query(Call).filter_by(call_uuid=conv["call_uuid"]).one()
            assert call.ended_at is not None and call.lost_reason == "worker_shutdown"
            [rec] = s.query(Recording).filter_by(call_id=call.id).all()
            assert Path(rec.path).stat().st_size > 16000 and rec.duration_ms >= 1000
        engine.dispose()
        assert not spool.exists() or (spool / ENDED_MARKER).exists() and (spool / "caller.pcm").stat().st_size > 16000
    finally:
        if caller is not None:
            caller.close()
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        for pid in system:  # what the server left behind (the failure above says so)
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _speech(tmp_path: Path) -> Path:
    from tests.telephony.conftest import speechlike, write_wav

    return write_wav(tmp_path / "caller.wav", speechlike(11, 20))
