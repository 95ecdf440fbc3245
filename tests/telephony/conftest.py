"""Telephony fixtures: a real database, a bridge worker process and pjsua2 test UAs on 127.0.0.1.

Every SIP process is started by a fixture and killed by it, even when a test fails.
"""
from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from domain.db import make_db_engine, session_scope, upgrade
from domain.models import Agent, SkillGroup, Tenant
from telephony.flow import CallFlowParams
from telephony.peer import Peer, WorkerProc

SIP_PORTS = range(21000, 29800, 2)  # below RTP_BASES; each pair is SIP + a spare
RTP_BASES = range(30000, 60000, 400)  # a UA or worker takes up to 400 RTP ports above its base
_ports = itertools.islice(itertools.cycle(SIP_PORTS), (os.getpid() * 40) % len(SIP_PORTS), None)
_rtp = itertools.islice(itertools.cycle(RTP_BASES), os.getpid() % len(RTP_BASES), None)

# Short, fast-moving parameters so each call-flow state is reached in seconds.
TEST_FLOW = CallFlowParams(ivr_timeout_s=2.0, ivr_retries=0, agent_ring_timeout_s=3.0, max_queue_wait_s=8.0,
                           position_every_s=30.0, acd_poll_s=0.1)


def _next_free(ports, size: int, what: str) -> int:
    """The next port of the cycle ``ports`` (``size`` long) that is free for UDP on loopback."""
    for port in itertools.islice(ports, size):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free {what}")


def free_port() -> int:
    """A UDP port (SIP) that is free on loopback; the allocator wraps round its range, never past it."""
    return _next_free(_ports, len(SIP_PORTS), "SIP port")


def rtp_base() -> int:
    """The first port of a free 400-port RTP block.

    Wraps round RTP_BASES: counting upwards without bound ran past 65535 after a few dozen SIP processes
    (depending on the pytest PID), and every call placed after that had no media transport.
    """
    return _next_free(_rtp, len(RTP_BASES), "RTP block")


def speechlike(seed: int, seconds: float = 30.0, sr: int = 8000) -> np.ndarray:
    """Band-limited noise with a syllable-rate envelope: distinct per seed, easy to correlate after G.711."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * sr))
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sr)
    spec[(f < 200) | (f > 3200)] = 0
    x = np.fft.irfft(spec, len(x))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * np.arange(len(x)) / sr + rng.uniform(0, 6))
    x = x * env
    return (x / np.abs(x).max() * 0.5 * 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    sf.write(path, pcm, 8000, subtype="PCM_16")
    return path


def _best_corr(ref: np.ndarray, rec: np.ndarray) -> float:
    n = 1 << int(np.ceil(np.log2(len(ref) + len(rec))))
    xc = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(rec, n)), n)
    lag = int(np.argmax(np.abs(xc)))
    if lag > n // 2:
        lag -= n
    if lag < 0 or lag + len(rec) > len(ref):
        return 0.0
    return float(abs(np.corrcoef(ref[lag : lag + len(rec)], rec)[0, 1]))


def read_wav(path: str | Path, timeout: float = 3.0) -> np.ndarray:
    """A UA's received-audio WAV, once pjmedia has closed it (ports are removed asynchronously by the clock thread)."""
    deadline = time.monotonic() + timeout
    while True:
        with sf.SoundFile(path) as f:
            if f.frames > 0 and (f.frames * 2 + 44 >= Path(path).stat().st_size or time.monotonic() > deadline):
                return f.read(dtype="int16")
        if time.monotonic() > deadline:
            return np.zeros(0, dtype=np.int16)
        time.sleep(0.1)


def peak_correlation(ref: np.ndarray, rec: np.ndarray, window: int = 8000) -> float:
    """Best 1 s window: does ``ref`` appear anywhere in ``rec``?"""
    ref = ref.astype(np.float64)
    rec = rec.astype(np.float64)
    scores = [_best_corr(ref, rec[i : i + window]) for i in range(0, len(rec) - window + 1, window // 2)
              if rec[i : i + window].std() > 200]
    return max(scores, default=0.0)


def correlation(ref: np.ndarray, rec: np.ndarray, window: int = 4000) -> float:
    """Median, over 0.5 s windows of ``rec`` that carry sound, of the best-lag Pearson correlation with ``ref``.

    Windowed because jitter buffers may add or drop a frame now and then, which shifts later audio.
    """
    ref = ref.astype(np.float64)
    rec = rec.astype(np.float64)
    scores = [
        _best_corr(ref, rec[i : i + window])
        for i in range(0, len(rec) - window + 1, window)
        if rec[i : i + window].std() > 200
    ]
    return float(np.median(scores)) if scores else 0.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A migrated SQLite DB with a tenant, two skill groups, short tone prompts and one bridge worker."""
    root = tmp_path_factory.mktemp("lab")
    url = f"sqlite:///{root / 'hotline.db'}"
    upgrade(url)
    engine = make_db_engine(url)
    with session_scope(engine) as s:
        t = Tenant(code="laibin", name="来宾")
        s.add(t)
        s.flush()
        s.add_all([SkillGroup(tenant_id=t.id, code="general", name="综合咨询", dtmf="1"),
                   SkillGroup(tenant_id=t.id, code="enterprise", name="企业服务", dtmf="2")])
    prompts = root / "prompts"
    prompts.mkdir()
    tone = (np.sin(2 * np.pi * 440 * np.arange(4000) / 8000) * 3000).astype(np.int16)  # 0.5 s
    for name in ["welcome", "menu", "invalid", "closed", "blocked", "queue", "busy", "transfer", "hold_music"]:
        write_wav(prompts / f"{name}.wav", tone)
    for n in range(1, 11):
        write_wav(prompts / f"position_{n}.wav", tone)
    audio = root / "audio"
    audio.mkdir()
    lab = Lab(root, url, engine, audio)
    lab.worker = lab.start_worker("w1", TEST_FLOW)
    yield lab
    lab.close()
    engine.dispose()


class Lab:
    def __init__(self, root: Path, url: str, engine, audio: Path):
        self.root, self.url, self.engine, self.audio = root, url, engine, audio
        self.procs: list = []
        self.caller_pcm = speechlike(1)
        self.agent_pcm = speechlike(2)
        self.caller_wav = write_wav(audio / "caller.wav", self.caller_pcm)
        self.agent_wav = write_wav(audio / "agent.wav", self.agent_pcm)

    def start_worker(self, name: str, flow: CallFlowParams, control: bool = False, gateway: str = "") -> WorkerProc:
        w = WorkerProc(name, free_port(), rtp_base(), db_url=self.url, data_dir=self.root, flow=flow.model_dump_json(),
                       control_port=free_port() if control else 0, log_path=self.root / f"{name}.log",
                       env={"HOTLINE_TELEPHONY_GATEWAY": gateway} if gateway else None)
        self.procs.append(w)
        return w

    def peer(self, user: str, **kw) -> Peer:
        p = Peer(free_port(), rtp_base(), user=user, log_path=self.root / f"ua-{user}.log", **kw)
        self.procs.append(p)
        return p

    def agent(self, work_no: str, skills=("general",), state: str = "ready", **kw) -> tuple[int, Peer]:
        """An agent row plus its softphone UA (auto-answers playing the agent signal)."""
        kw.setdefault("answer_wav", str(self.agent_wav))
        kw.setdefault("record_dir", self.root / f"rx-{work_no}")
        ua = self.peer(work_no, **kw)
        with session_scope(self.engine) as s:
            tenant = s.query(Tenant).filter_by(code="laibin").one()
            row = s.query(Agent).filter_by(work_no=work_no).one_or_none()
            if row is None:
                row = Agent(tenant_id=tenant.id, work_no=work_no, name=f"坐席{work_no}")
                s.add(row)
            row.skills, row.sip_uri, row.state = list(skills), ua.uri, state
            s.flush()
            return row.id, ua

    def set_states(self, state: str) -> None:
        with session_scope(self.engine) as s:
            for a in s.query(Agent):
                a.state = state

    def close(self) -> None:
        for p in reversed(self.procs):
            p.close()
        self.procs.clear()


@pytest.fixture
def peers(lab):
    """Closes the UAs a test started (the worker lives for the module)."""
    before = len(lab.procs)
    lab.set_states("signed_out")
    yield lab
    for p in lab.procs[before:]:
        p.close()
    del lab.procs[before:]
