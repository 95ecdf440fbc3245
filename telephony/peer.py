"""Drive SIP processes from Python: a test UA (:mod:`telephony.ua`) or a bridge worker, each in its own process."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child only calls it


def die_with_parent(parent: int) -> None:
    """``preexec_fn`` of every child process (``partial(die_with_parent, os.getpid())``): the kernel sends it
    SIGTERM when the thread that started it goes away, so a killed parent leaves no worker, follower or proxy
    behind (``prctl(PR_SET_PDEATHSIG)``).  A parent that died before the call is noticed by the pid check."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


class Proc:
    """A child process that prints JSON lines; every parsed line is kept in ``events``.

    It runs in its own process group, so a Ctrl-C in the terminal reaches only the parent, which stops its
    children in order; it dies with the parent (:func:`die_with_parent`).
    """

    def __init__(self, argv: list[str], env: dict | None = None, log_path: Path | None = None):
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     cwd=REPO, env={**os.environ, **(env or {})}, text=True, bufsize=1,
                                     process_group=0, preexec_fn=partial(die_with_parent, os.getpid()))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()

    def wait_for(self, match: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if match(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._reader.is_alive():
                    raise TimeoutError(f"no matching event within {timeout}s; last events: {self.events[-5:]}")
                self.cond.wait(min(left, 0.2))

    def find(self, **fields) -> list[dict]:
        with self.cond:
            return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def close(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                self.send(op="quit")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


class Peer(Proc):
    """A test UA process (caller or agent softphone)."""

    def __init__(self, port: int, rtp_port: int, *, user: str = "ua", answer_wav: str = "", answer_delay: float = 0.3,
                 record_dir: Path | None = None, register: str = "", reject: int = 0, log_path: Path | None = None,
                 max_seconds: float = 3600, answer_wav_map: Path | None = None, wait: bool = True,
                 sip_passwords: dict[str, str] | None = None):
        """``sip_passwords``: digest password per user (passed in the environment, not on the command line)."""
        argv = [sys.executable, "-m", "telephony.ua", "--port", str(port), "--rtp-port", str(rtp_port), "--user", user,
                "--answer-delay", str(answer_delay), "--max-seconds", str(max_seconds)]
        if answer_wav:
            argv += ["--answer-wav", answer_wav]
        if record_dir:
            argv += ["--record-dir", str(record_dir)]
        if register:
            argv += ["--register", register]
        if reject:
            argv += ["--reject", str(reject)]
        if answer_wav_map:
            argv += ["--answer-wav-map", str(answer_wav_map)]
        env = {"HOTLINE_UA_SIP_PASSWORDS": json.dumps(sip_passwords)} if sip_passwords else None
        super().__init__(argv, env=env, log_path=log_path)
        self.port = port
        self.uri = f"sip:{user.split(',')[0]}@127.0.0.1:{port}"
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_for(lambda e: e.get("ev") == "ready", timeout)

    def call(self, key: str, to: str, **opts) -> None:
        self.send(op="call", id=key, to=to, **opts)

    def state(self, key: str, state: str, timeout: float = 10.0) -> dict:
        return self.wait_for(lambda e: e.get("ev") == "state" and e.get("id") == key and e.get("state") == state, timeout)

    def ended(self, key: str, timeout: float = 10.0) -> dict:
        return self.wait_for(lambda e: e.get("ev") == "ended" and e.get("id") == key, timeout)

    def incoming(self, n: int = 1, timeout: float = 10.0) -> dict:
        self.wait_for(lambda e: len(self.find(ev="incoming")) >= n, timeout)
        return self.find(ev="incoming")[n - 1]


class ServiceProc(Proc):
    """A long-running child that announces ``{"event": "ready"}`` and stops on SIGTERM."""

    ready_timeout = 60.0

    def wait_ready(self, timeout: float | None = None) -> None:
        self.wait_for(lambda e: e.get("event") == "ready", timeout or self.ready_timeout)

    def close(self, timeout: float = 8.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        super().close(timeout)


@dataclass(frozen=True)
class LiveWiring:
    """The live path's children as the entry point wires them (``serving.pipeline.start_live``): the command of a
    bridge worker that keeps its spools for the live ASR and publishes call events, the command of ASR follower
    ``index``, and the environment the followers need (the Ray cluster to join)."""

    worker_command: Sequence[str]
    follower_command: Callable[[int], list[str]]
    follower_env: dict[str, str]


RECORDING_WORKER = (sys.executable, "-m", "telephony.worker")  # records calls; no live ASR


class WorkerProc(ServiceProc):
    """A bridge worker process: ``command`` (default :data:`RECORDING_WORKER`) with the worker's options."""

    def __init__(self, name: str, sip_port: int, rtp_port: int, *, db_url: str, data_dir: Path, flow: str = "",
                 control_port: int = 0, command: Sequence[str] = RECORDING_WORKER, log_path: Path | None = None,
                 env: dict | None = None, wait: bool = True):
        argv = [*command, "--name", name, "--sip-port", str(sip_port),
                "--rtp-port", str(rtp_port), "--db", db_url, "--data-dir", str(data_dir), "--flow", flow,
                "--control-port", str(control_port)]
        super().__init__(argv, env=env, log_path=log_path)
        self.name, self.sip_port, self.control_port = name, sip_port, control_port
        self.uri = f"sip:12345@127.0.0.1:{sip_port}"
        if wait:
            self.wait_ready()


class AsrFollowerProc(ServiceProc):
    """A live ASR follower (``LiveWiring.follower_command``) transcribing the bridge spools under ``data_dir``."""

    ready_timeout = 180.0  # joins the Ray cluster and finds the ASR deployment

    def __init__(self, index: int, command: Sequence[str], *, db_url: str, data_dir: Path,
                 log_path: Path | None = None, env: dict | None = None):
        super().__init__([*command, "--db", db_url, "--data-dir", str(data_dir)], env=env, log_path=log_path)
        self.index = index
