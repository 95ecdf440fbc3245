"""Supervisor: N bridge worker processes (own SIP port, RTP range, control port each), the live ASR
followers that transcribe their spools (``serving.pipeline``), optionally Kamailio in front.

A worker that dies is restarted on the same ports; its unfinished calls are
closed in the CDR (lost before an agent, or cut by the system after) and its
spooled recordings are finished by the replacement.  A dead ASR follower is restarted too and
resumes the spools it had not finished.  Kamailio's dispatcher
probes workers with OPTIONS, so new calls route around a dead one meanwhile.
The registry (``<data_dir>/telephony/workers.json``) tells the operations API
which control port owns which call (call ids start with the worker name).

Run: ``hotline telephony up --workers 18 --kamailio``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from domain.db import make_engine, session_scope
from telephony import store
from telephony.prompts import Prompts
from telephony.peer import AsrFollowerProc, WorkerProc

log = logging.getLogger("telephony.supervisor")

KAMAILIO_CFG = Path(__file__).resolve().parents[1] / "deploy" / "kamailio" / "kamailio.cfg"
RTP_PORTS_PER_WORKER = 40  # 4 calls x (RTP + RTCP) with room for re-INVITEs


@dataclass
class WorkerSpec:
    name: str
    sip_port: int
    rtp_port: int
    control_port: int
    pid: int = 0
    restarts: int = 0


def registry_path(data_dir: Path) -> Path:
    return Path(data_dir) / "telephony" / "workers.json"


def read_registry(data_dir: Path) -> list[WorkerSpec]:
    path = registry_path(data_dir)
    if not path.exists():
        return []
    return [WorkerSpec(**w) for w in json.loads(path.read_text())["workers"]]


def kamailio_modules() -> str:
    for d in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules"):
        if Path(d, "dispatcher.so").exists():
            return d
    raise RuntimeError("Kamailio 模块目录未找到（apt-get install kamailio）")


class Supervisor:
    def __init__(self, workers: int, *, db_url: str, data_dir: Path, sip_port: int = 5070, rtp_port: int = 40000,
                 control_port: int = 0, flow: str = "", sink: str = "", proxy_port: int = 0, prefix: str = "w",
                 env: dict | None = None, asr_followers: int = 0):
        self.db_url, self.data_dir, self.flow, self.sink = db_url, Path(data_dir), flow, sink
        self.env = env
        control_port = control_port or sip_port + 1000
        self.specs = [WorkerSpec(f"{prefix}{i + 1}", sip_port + 2 * i, rtp_port + RTP_PORTS_PER_WORKER * i, control_port + i)
                      for i in range(workers)]
        self.procs: dict[str, WorkerProc] = {}
        self.n_followers = asr_followers
        self.followers: dict[int, AsrFollowerProc] = {}
        self.proxy_port = proxy_port
        self.kamailio: subprocess.Popen | None = None
        self.run_dir = self.data_dir / "telephony"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(db_url)

    # ------------------------------------------------------------ workers
    def _spawn(self, spec: WorkerSpec) -> WorkerProc:
        proc = WorkerProc(spec.name, spec.sip_port, spec.rtp_port, db_url=self.db_url, data_dir=self.data_dir,
                          flow=self.flow, control_port=spec.control_port, sink=self.sink,
                          log_path=self.run_dir / f"{spec.name}.log", wait=False, env=self.env)
        spec.pid = proc.proc.pid
        self.procs[spec.name] = proc
        return proc

    def _spawn_follower(self, index: int) -> AsrFollowerProc:
        proc = AsrFollowerProc(index, db_url=self.db_url, data_dir=self.data_dir,
                               log_path=self.run_dir / f"asr-follower-{index}.log", env=self.env)
        self.followers[index] = proc
        return proc

    def start(self) -> "Supervisor":
        Prompts(self.data_dir / "prompts").prepare()  # once, before N workers would race to synthesise them
        # Start in waves of one worker per core: model loading (ASR sink) is CPU-bound, and 18 workers
        # loading at once on 2 cores would each take minutes.
        wave = max(os.cpu_count() or 1, 1)
        for i in range(0, len(self.specs), wave):
            for proc in [self._spawn(spec) for spec in self.specs[i : i + wave]]:
                proc.wait_ready(timeout=180)
        for proc in [self._spawn_follower(i) for i in range(self.n_followers)]:
            proc.wait_ready()
        self._write_registry()
        if self.proxy_port:
            self._start_kamailio()
        return self

    def _write_registry(self) -> None:
        tmp = registry_path(self.data_dir).with_suffix(".tmp")
        tmp.write_text(json.dumps({"workers": [asdict(s) for s in self.specs], "proxy_port": self.proxy_port}))
        os.replace(tmp, registry_path(self.data_dir))

    def check(self) -> list[str]:
        """Restart dead workers; returns the names restarted."""
        restarted = []
        for spec in self.specs:
            proc = self.procs[spec.name]
            if proc.proc.poll() is None:
                continue
            log.error("worker %s (pid %s) exited with %s; restarting", spec.name, spec.pid, proc.proc.returncode)
            proc.close()
            with session_scope(self.engine) as s:
                store.mark_orphans(s, spec.name, "worker_died")
            spec.restarts += 1
            self._spawn(spec).wait_ready(timeout=180)
            restarted.append(spec.name)
        for index, proc in list(self.followers.items()):
            if proc.proc.poll() is not None:
                log.error("ASR follower %d exited with %s; restarting", index, proc.proc.returncode)
                proc.close()
                self._spawn_follower(index)
                restarted.append(f"asr{index}")
        if restarted:
            self._write_registry()
        return restarted

    def kill(self, name: str) -> None:
        """Hard-kill one worker (for failover drills and tests)."""
        self.procs[name].proc.kill()
        self.procs[name].proc.wait()

    # ------------------------------------------------------------ Kamailio
    def _start_kamailio(self) -> None:
        if not shutil.which("kamailio"):
            raise RuntimeError("未安装 Kamailio（apt-get install kamailio）")
        ds = self.run_dir / "dispatcher.list"
        ds.write_text("".join(f"1 sip:127.0.0.1:{s.sip_port} 0 0 name={s.name}\n" for s in self.specs))
        krun = self.run_dir / "kamailio-run"
        krun.mkdir(exist_ok=True)
        self.kamailio = subprocess.Popen(
            ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-L", kamailio_modules(), "-Y", str(krun),
             "-m", "64", "-M", "8", "-A", f"LISTEN=udp:127.0.0.1:{self.proxy_port}", "-A", f'DS_LIST="{ds}"'],
            stdout=subprocess.DEVNULL, stderr=open(self.run_dir / "kamailio.log", "ab"), start_new_session=True)
        time.sleep(1.0)
        if self.kamailio.poll() is not None:
            raise RuntimeError(f"Kamailio 启动失败，见 {self.run_dir / 'kamailio.log'}")

    # ------------------------------------------------------------ lifecycle
    def run_forever(self, interval: float = 1.0) -> None:
        try:
            while True:
                self.check()
                time.sleep(interval)
        finally:
            self.stop()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.proc.poll() is None:
                proc.proc.terminate()
        for proc in list(self.procs.values()) + list(self.followers.values()):
            proc.close()
        if self.kamailio is not None and self.kamailio.poll() is None:
            self.kamailio.terminate()
            try:
                self.kamailio.wait(5)
            except subprocess.TimeoutExpired:
                self.kamailio.kill()
                self.kamailio.wait()
        self.engine.dispose()
