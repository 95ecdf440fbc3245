"""Supervisor: N bridge worker processes (own SIP port, RTP range, control port each), the live ASR
followers that transcribe their spools (their commands injected by the entry point, ``LiveWiring``),
optionally Kamailio in front.

A worker that dies is restarted on the same ports; its unfinished calls are
closed in the CDR (lost before an agent, or cut by the system after) and its
spooled recordings are finished by the replacement.  A dead ASR follower is restarted too and
resumes the spools it had not finished.  Kamailio's dispatcher
probes workers with OPTIONS, so new calls route around a dead one meanwhile.
The registry (``<data_dir>/telephony/workers.json``) tells the operations API
which control port owns which call (call ids start with the worker name); the control channel's secret
is ``<data_dir>/telephony/control.token`` (``telephony.control``).

Shutdown (:meth:`Supervisor.stop`) goes in order, each step bounded: the workers stop taking calls, hang
up, finish their spools and end-of-call writes; then the ASR followers end their pass (their progress is on
disk: a spool not finished is resumed at the next start, no transcript is lost); then Kamailio.  What is
still running after its grace period is killed.  Every child also gets SIGTERM from the kernel when the
supervisor's thread dies (``telephony.peer.die_with_parent``), so a killed server leaves nothing behind.

Draining and rolling restarts (:meth:`Supervisor.drain`, :meth:`Supervisor.rolling_restart`): Kamailio's
dispatcher marks the worker disabled (``kamcmd dispatcher.set_state d``: no new INVITEs, no OPTIONS probes, while
the in-dialog requests of its calls still reach it), the worker finishes the calls it has, then it is stopped
(nothing left to hang up).  A rolling restart does that to one worker at a time, starts its replacement on the
same ports and re-enables it, then restarts the ASR followers one at a time (a follower's progress is on disk
and the others take over its calls meanwhile).  Other processes ask for these through request files in
``<data_dir>/telephony/requests/`` (``hotline telephony drain|resume|restart``), answered by the supervisor's
operations thread next to each request.

Run: ``hotline telephony up --workers 18 --kamailio``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from domain.db import make_db_engine, session_scope
from telephony import sipauth, store
from telephony.control import control_token, worker_status
from telephony.prompts import Prompts
from telephony.peer import AsrFollowerProc, LiveWiring, Proc, WorkerProc, die_with_parent

log = logging.getLogger("telephony.supervisor")

KAMAILIO_CFG = Path(__file__).resolve().parents[1] / "deploy" / "kamailio" / "kamailio.cfg"
SIP_REALM = "127.0.0.1"  # Kamailio listens here; agents register as sip:<work_no>@127.0.0.1 (the digest realm)
RTP_PORTS_PER_WORKER = 40  # 4 calls x (RTP + RTCP) with room for re-INVITEs


@dataclass
class WorkerSpec:
    name: str
    sip_port: int
    rtp_port: int
    control_port: int
    pid: int = 0
    restarts: int = 0
    state: str = "active"  # active | draining | drained (stopped by the operator, not restarted)


def registry_path(data_dir: Path) -> Path:
    return Path(data_dir) / "telephony" / "workers.json"


def read_registry(data_dir: Path) -> list[WorkerSpec]:
    path = registry_path(data_dir)
    if not path.exists():
        return []
    return [WorkerSpec(**w) for w in json.loads(path.read_text())["workers"]]


def ctl_socket(data_dir: Path) -> Path:
    """Kamailio's binrpc control socket (``kamcmd -s unix:<this>``)."""
    return Path(data_dir) / "telephony" / "kamailio-run" / "ctl.sock"


def request(data_dir: Path, op: str, wait_s: float, **args) -> dict:
    """Ask the running supervisor of ``data_dir`` to run ``op`` (drain, resume, restart) with ``args``; its answer
    within ``wait_s`` seconds."""
    if not registry_path(data_dir).exists():
        raise TimeoutError("话务系统未运行（没有工作进程注册表）：请先启动 hotline serve 或 hotline telephony up")
    requests = Path(data_dir) / "telephony" / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    rid = uuid.uuid4().hex
    tmp = requests / f"{rid}.tmp"
    tmp.write_text(json.dumps({"op": op, **args}))
    os.replace(tmp, requests / f"{rid}.json")
    answer = requests / f"{rid}.done"
    deadline = time.monotonic() + wait_s
    while not answer.exists():
        if time.monotonic() > deadline:
            (requests / f"{rid}.json").unlink(missing_ok=True)
            raise TimeoutError("话务监管进程未在时限内应答（hotline serve / hotline telephony up 是否在运行？）")
        time.sleep(0.2)
    result = json.loads(answer.read_text())
    answer.unlink()
    return result


def kamailio_modules() -> str:
    for d in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules"):
        if Path(d, "dispatcher.so").exists():
            return d
    raise RuntimeError("Kamailio 模块目录未找到（apt-get install kamailio）")


class Supervisor:
    def __init__(self, workers: int, *, db_url: str, data_dir: Path, sip_port: int = 5070, rtp_port: int = 40000,
                 control_port: int = 0, flow: str = "", live: LiveWiring | None = None, proxy_port: int = 0,
                 prefix: str = "w", env: dict | None = None, asr_followers: int = 0, trunks: str | None = None):
        """``live``: the live ASR's wiring (the entry point's); without it the workers only record and
        ``asr_followers`` is ignored."""
        self.db_url, self.data_dir, self.flow, self.live = db_url, Path(data_dir), flow, live
        self.env = env
        control_port = control_port or sip_port + 1000
        self.specs = [WorkerSpec(f"{prefix}{i + 1}", sip_port + 2 * i, rtp_port + RTP_PORTS_PER_WORKER * i, control_port + i)
                      for i in range(workers)]
        self.procs: dict[str, WorkerProc] = {}
        self.n_followers = asr_followers if live else 0
        self.followers: dict[int, AsrFollowerProc] = {}
        self.proxy_port = proxy_port
        self.trunks = trunks  # carrier trunks Kamailio exempts from per-source limits; None = HOTLINE_SIP_TRUNKS
        self.kamailio: subprocess.Popen | None = None
        self.run_dir = self.data_dir / "telephony"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.control_token = control_token(self.data_dir)  # before the workers, which read it
        self.engine = make_db_engine(db_url)
        self._lock = threading.Lock()  # spawning vs. stopping
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    # ------------------------------------------------------------ workers
    def _spawn(self, spec: WorkerSpec) -> WorkerProc:
        proc = WorkerProc(spec.name, spec.sip_port, spec.rtp_port, db_url=self.db_url, data_dir=self.data_dir,
                          flow=self.flow, control_port=spec.control_port,
                          **({"command": self.live.worker_command} if self.live else {}),
                          log_path=self.run_dir / f"{spec.name}.log", wait=False, env=self.env)
        spec.pid = proc.proc.pid
        self.procs[spec.name] = proc
        return proc

    def _spawn_follower(self, index: int) -> AsrFollowerProc:
        proc = AsrFollowerProc(index, self.live.follower_command(index), db_url=self.db_url, data_dir=self.data_dir,
                               log_path=self.run_dir / f"asr-follower-{index}.log",
                               env={**(self.env or {}), **self.live.follower_env})
        self.followers[index] = proc
        return proc

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _started(self, spawn) -> list:
        """Run ``spawn`` (which starts processes) unless stopping; returns what it started."""
        with self._lock:
            return [] if self._stopping.is_set() else spawn()

    def _wait_ready(self, proc, timeout: float | None = None) -> bool:
        """Wait for a child's ready line; False when it died because the supervisor is stopping."""
        try:
            proc.wait_ready(timeout)
        except TimeoutError:
            if self._stopping.is_set():
                return False
            raise
        return True

    def start(self) -> "Supervisor":
        """Start everything; returns early (with what was started stopped by :meth:`stop`) when stopped meanwhile."""
        Prompts(self.data_dir / "prompts").prepare()  # once, before N workers would race to synthesise them
        # Start in waves of one worker per core: model loading (ASR sink) is CPU-bound, and 18 workers
        # loading at once on 2 cores would each take minutes.
        wave = max(os.cpu_count() or 1, 1)
        for i in range(0, len(self.specs), wave):
            batch = self.specs[i : i + wave]
            for proc in self._started(lambda batch=batch: [self._spawn(spec) for spec in batch]):
                if not self._wait_ready(proc, 180):
                    return self
        for proc in self._started(lambda: [self._spawn_follower(i) for i in range(self.n_followers)]):
            if not self._wait_ready(proc):
                return self
        self._write_registry()
        if self.proxy_port:
            self._started(lambda: [self._start_kamailio()])
        return self

    def _write_registry(self) -> None:
        tmp = registry_path(self.data_dir).with_suffix(f".{threading.get_ident()}.tmp")  # the ops thread writes too
        tmp.write_text(json.dumps({"workers": [asdict(s) for s in self.specs], "proxy_port": self.proxy_port}))
        os.replace(tmp, registry_path(self.data_dir))

    def check(self) -> list[str]:
        """Restart dead workers and followers (not while stopping); returns the names restarted."""
        restarted = []
        for spec in self.specs:
            proc = self.procs[spec.name]
            if proc.proc.poll() is None or spec.state != "active":
                continue
            with self._lock:
                if self._stopping.is_set():
                    return restarted
                log.error("worker %s (pid %s) exited with %s; restarting", spec.name, spec.pid, proc.proc.returncode)
                proc.close()
                with session_scope(self.engine) as s:
                    store.mark_orphans(s, spec.name, "worker_died")
                spec.restarts += 1
                new = self._spawn(spec)
            if not self._wait_ready(new, 180):
                return restarted
            restarted.append(spec.name)
        with self._lock:
            for index, proc in list(self.followers.items()):
                if proc.proc.poll() is not None and not self._stopping.is_set():
                    log.error("ASR follower %d exited with %s; restarting", index, proc.proc.returncode)
                    proc.close()
                    self._spawn_follower(index)
                    restarted.append(f"asr{index}")
        if restarted:
            self._write_registry()
        self.sync_sip_credentials()
        return restarted

    def kill(self, name: str) -> None:
        """Hard-kill one worker (for failover drills and tests)."""
        self.procs[name].proc.kill()
        self.procs[name].proc.wait()

    # ------------------------------------------------------------ drain and rolling restart
    def _dispatch(self, spec: WorkerSpec, state: str) -> None:
        """Set the worker's dispatcher state in Kamailio: "d" (disabled) or "a" (active)."""
        if not self.proxy_port:
            return
        done = subprocess.run(["kamcmd", "-s", f"unix:{ctl_socket(self.data_dir)}", "dispatcher.set_state", state,
                               "1", f"sip:127.0.0.1:{spec.sip_port}"], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"kamcmd dispatcher.set_state 失败：{done.stderr.strip() or done.stdout.strip()}")

    def _calls(self, spec: WorkerSpec) -> int:
        return len(worker_status(spec.control_port, self.control_token)["result"]["conversations"])

    def drain(self, name: str, timeout: float = 3600.0) -> dict:
        """Stop sending ``name`` new calls, wait for its calls to end, then stop it (it stays down until
        :meth:`resume`).  On timeout it keeps running, disabled, and ``TimeoutError`` is raised."""
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            raise KeyError(name)
        started = time.monotonic()
        spec.state = "draining"
        self._write_registry()
        self._dispatch(spec, "d")
        # an INVITE Kamailio routed just before the change may still arrive: idle twice, 1 s apart
        most, idle = 0, 0
        while idle < 2:
            if self._stopping.is_set():
                raise RuntimeError("supervisor stopping")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{name} 在 {timeout:.0f} 秒内仍有通话")
            calls = self._calls(spec)
            most = max(most, calls)
            idle = idle + 1 if calls == 0 else 0
            time.sleep(1.0)
        _stop_all([self.procs[name]], 40.0)  # no call left: it exits after its end-of-call writes
        spec.state = "drained"
        self._write_registry()
        log.info("worker %s drained (%d calls finished) in %.1f s", name, most, time.monotonic() - started)
        return {"worker": name, "calls_finished": most, "seconds": round(time.monotonic() - started, 1)}

    def resume(self, name: str) -> dict:
        """Start a drained worker again on its ports and send it calls."""
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            raise KeyError(name)
        if spec.state != "drained":
            raise ValueError(f"{name} 未处于已摘除状态（{spec.state}）")
        new = self._started(lambda: [self._spawn(spec)])
        if not new or not self._wait_ready(new[0], 180):
            raise RuntimeError("supervisor stopping")
        spec.restarts += 1
        self._dispatch(spec, "a")
        spec.state = "active"
        self._write_registry()
        return {"worker": name, "pid": spec.pid}

    def rolling_restart(self, timeout_per_worker: float = 3600.0) -> dict:
        """Drain, restart and re-enable each worker in turn, then restart the ASR followers one at a time."""
        started = time.monotonic()
        workers = []
        for spec in self.specs:
            if spec.state != "active":
                continue
            workers.append(self.drain(spec.name, timeout_per_worker))
            self.resume(spec.name)
        followers = []
        for index in sorted(self.followers):
            with self._lock:
                if self._stopping.is_set():
                    raise RuntimeError("supervisor stopping")
                _stop_all([self.followers[index]], 20.0)  # it ends its pass; its progress is on disk
                new = self._spawn_follower(index)
            if not self._wait_ready(new):
                raise RuntimeError("supervisor stopping")
            followers.append(index)
        return {"workers": workers, "followers": followers, "seconds": round(time.monotonic() - started, 1)}

    def _serve_requests(self) -> None:
        """Answer the requests of ``<data_dir>/telephony/requests``, oldest first, until stopping.  One long-lived
        thread: the processes it starts get SIGTERM when the thread that started them ends (``die_with_parent``)."""
        requests = self.run_dir / "requests"
        while not self._stopping.is_set():
            pending = sorted(requests.glob("*.json"), key=lambda p: p.stat().st_mtime) if requests.is_dir() else []
            if pending:
                self._answer(pending[0])
            else:
                self._stopping.wait(0.5)

    def _answer(self, path: Path) -> None:
        try:
            req = json.loads(path.read_text())
            path.unlink()
        except (OSError, ValueError):
            return
        op, worker = req.get("op"), req.get("worker", "")
        try:
            if op == "drain":
                result = self.drain(worker, float(req.get("timeout", 3600)))
            elif op == "resume":
                result = self.resume(worker)
            elif op == "restart":
                result = self.rolling_restart(float(req.get("timeout", 3600)))
            else:
                raise ValueError(f"未知操作 {op}")
            answer = {"ok": True, **result}
        except KeyError:
            answer = {"ok": False, "error": f"工作进程 {worker} 不存在"}
        except Exception as exc:  # noqa: BLE001 - the operator gets the reason, the supervisor keeps running
            log.exception("request %s failed", op)
            answer = {"ok": False, "error": str(exc)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(answer, ensure_ascii=False))
        os.replace(tmp, path.with_suffix(".done"))

    # ------------------------------------------------------------ Kamailio
    def sync_sip_credentials(self) -> bool:
        """Rewrite the agents' SIP credentials Kamailio checks (new agents, deactivated users); True if changed."""
        return bool(self.proxy_port) and sipauth.provision(self.engine, self.data_dir, SIP_REALM)

    def _trunks(self) -> list[str]:
        if self.trunks is not None:
            return sipauth.parse_trunks(self.trunks)
        from domain.settings import get_settings

        return sipauth.parse_trunks(get_settings().sip_trunks)

    def _start_kamailio(self) -> None:
        if not shutil.which("kamailio"):
            raise RuntimeError("未安装 Kamailio（apt-get install kamailio）")
        ds = self.run_dir / "dispatcher.list"
        ds.write_text("".join(f"1 sip:127.0.0.1:{s.sip_port} 0 0 name={s.name}\n" for s in self.specs))
        krun = self.run_dir / "kamailio-run"
        krun.mkdir(exist_ok=True)
        # Its own process group (it forks its workers), so a stop can kill the whole group.
        self.kamailio = subprocess.Popen(
            ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-L", kamailio_modules(), "-Y", str(krun),
             "-m", "64", "-M", "8", "-A", f"LISTEN=udp:127.0.0.1:{self.proxy_port}", "-A", f'DS_LIST="{ds}"',
             "-A", f'CTL_SOCKET="unix:{ctl_socket(self.data_dir)}"',
             *sipauth.kamailio_defines(self.engine, self.data_dir, realm=SIP_REALM, trunks=self._trunks())],
            stdout=subprocess.DEVNULL, stderr=open(self.run_dir / "kamailio.log", "ab"), start_new_session=True,
            preexec_fn=partial(die_with_parent, os.getpid()))
        time.sleep(1.0)
        if self.kamailio.poll() is not None:
            raise RuntimeError(f"Kamailio 启动失败，见 {self.run_dir / 'kamailio.log'}")

    # ------------------------------------------------------------ lifecycle
    def run_forever(self, interval: float = 1.0) -> None:
        """Restart what dies until :meth:`stop` (from any thread)."""
        threading.Thread(target=self._serve_requests, name="supervisor-ops", daemon=True).start()
        try:
            while not self._stopping.is_set():
                self.check()
                self._stopping.wait(interval)
        finally:
            self.stop()

    def stop(self, worker_grace_s: float = 40.0, follower_grace_s: float = 20.0, proxy_grace_s: float = 5.0) -> None:
        """Stop every child, in order, each step bounded by its grace period (see the module docstring).
        Safe from any thread and more than once: a second call waits for the first to finish."""
        with self._lock:  # no spawn in flight from here on, and none after
            first = not self._stopping.is_set()
            self._stopping.set()
        if not first:
            self._stopped.wait()
            return
        try:
            _stop_all(list(self.procs.values()), worker_grace_s)
            _stop_all(list(self.followers.values()), follower_grace_s)
            if self.kamailio is not None:
                _stop_group(self.kamailio, proxy_grace_s)
            registry_path(self.data_dir).unlink(missing_ok=True)  # no worker answers on those ports any more
            self.engine.dispose()
        finally:
            self._stopped.set()


def _stop_all(procs: list[Proc], grace_s: float) -> None:
    """SIGTERM to all at once, wait for all up to ``grace_s``, then SIGKILL whatever is left."""
    for proc in procs:
        if proc.proc.poll() is None:
            proc.proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            log.error("pid %s did not stop within %.0f s; killing it", proc.proc.pid, grace_s)
            proc.proc.kill()
            proc.proc.wait()
        proc.close()  # its log and pipes


def _stop_group(popen: subprocess.Popen, grace_s: float) -> None:
    """Stop a process that leads its own process group (Kamailio and the processes it forked)."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(popen.pid, signal.SIGKILL)  # its forked workers, whether the main process is gone or not
    except ProcessLookupError:
        pass
    popen.wait()
