"""One real call end to end: SIP → bridge → streaming ASR → bus → copilot and QA → database and WebSocket.

The system runs as it does under `hotline serve`: the API process (with the event bus and its
consumers, and the ASR deployed on a local Ray), a bridge worker process that spools each leg, and an ASR
follower process that reads the spools and decodes on Ray (the live speech pipeline); the caller
and the agent softphone are pjsua2 UAs playing the two channels of a synthetic 12345 call.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from domain.db import make_db_engine, session_scope, upgrade
from demo import seed_demo
from domain.models import Agent
from domain.settings import Settings
from knowledge.transfer import seed_demo_kb
from tests.telephony.conftest import TEST_FLOW, free_port, rtp_base
from serving.pipeline import start_live
from telephony.peer import AsrFollowerProc, Peer, WorkerProc

CALL_ID = "d001"  # a 咨询 call about 社保卡 with a standard greeting and closing
CALL_SECONDS = 45


class System:
    def __init__(self, root: Path, shared_data: Path):
        self.root = root
        self.url = f"sqlite:///{root / 'hotline.db'}"
        self.settings = Settings(data_dir=root, database_url=self.url)
        upgrade(self.url)
        self.engine = make_db_engine(self.url)
        with session_scope(self.engine) as s:
            seed_demo_kb(s, seed_demo(s, "laibin").id)
        self.procs: list = []
        self.ray = False
        audio, sr = sf.read(shared_data / "synthetic_calls" / "audio" / f"{CALL_ID}.flac", dtype="int16")
        assert sr == 8000
        audio = audio[: CALL_SECONDS * sr]
        self.agent_wav = root / "agent.wav"
        self.caller_wav = root / "caller.wav"
        sf.write(self.agent_wav, np.ascontiguousarray(audio[:, 0]), sr, subtype="PCM_16")
        sf.write(self.caller_wav, np.ascontiguousarray(audio[:, 1]), sr, subtype="PCM_16")

    def env(self) -> dict:
        return {"HOTLINE_DATA_DIR": str(self.root), "HOTLINE_DATABASE_URL": self.url}

    def start_worker(self) -> WorkerProc:
        live = start_live(self.settings)
        self.ray = True
        worker = WorkerProc("e2e", free_port(), rtp_base(), db_url=self.url, data_dir=self.root,
                            flow=TEST_FLOW.model_copy(update={"max_queue_wait_s": 30.0}).model_dump_json(),
                            command=live.worker_command, log_path=self.root / "worker.log",
                            env={**os.environ, **self.env()}, wait=False)
        follower = AsrFollowerProc(0, live.follower_command(0), db_url=self.url, data_dir=self.root,
                                   log_path=self.root / "asr.log", env={**self.env(), **live.follower_env})
        self.procs += [worker, follower]
        worker.wait_ready(timeout=180)
        follower.wait_ready()
        return worker

    def agent_phone(self, work_no: str) -> Peer:
        ua = Peer(free_port(), rtp_base(), user=work_no, answer_wav=str(self.agent_wav),
                  record_dir=self.root / f"rx-{work_no}", log_path=self.root / f"ua-{work_no}.log")
        self.procs.append(ua)
        with session_scope(self.engine) as s:
            agent = s.query(Agent).filter_by(work_no=work_no).one()
            agent.sip_uri, agent.state = ua.uri, "ready"
        return ua

    def caller_phone(self, number: str) -> Peer:
        ua = Peer(free_port(), rtp_base(), user=number, log_path=self.root / f"ua-{number}.log")
        self.procs.append(ua)
        return ua

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.close()
        if self.ray:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
        self.engine.dispose()


@pytest.fixture(scope="module")
def system(tmp_path_factory, shared_data):
    s = System(tmp_path_factory.mktemp("e2e"), shared_data)
    yield s
    s.close()
