"""Live ASR on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``: separate raylets on this machine).

The follower (``asr.follower.SpoolFollower``) reads the spools and does VAD and endpointing here; its decodes go to
the Ray Serve ASR deployment (``serving.asr_service``), whose replicas are held to nodes offering a custom
resource.  Every test compares the transcript events with those of the same follower decoding in-process: the same
partials and finals, in the same order, none lost and none repeated."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from asr.audio import float_to_pcm16
from asr.follower import FollowerParams, SpoolFollower
from asr.streaming import LegStream
from asr.vad import SileroVad
from domain.call_events import TranscriptComplete, TranscriptFinal
from domain.settings import Settings
from domain.spool import ENDED_MARKER, FRAME_BYTES
from tests.asr.fakes import FakeEngine
from tests.conftest import REPO

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SECONDS = 12  # of the synthetic call, both legs
STEP_FRAMES = 5  # the spool grows by 100 ms per pass, as the bridge writes it


class Collect:
    def __init__(self):
        self.events = []

    def publish(self, event):
        self.events.append(event)

    def transcript(self):
        """What a consumer sees, without the wall-clock stamps."""
        return [(e.kind, e.call_id, e.leg, e.start_ms, e.end_ms, e.text) for e in self.events if hasattr(e, "text")]

    def finals(self):
        return [(e.call_id, e.leg, e.segment_id, e.text) for e in self.events if isinstance(e, TranscriptFinal)]

    def complete(self, calls):
        return sum(isinstance(e, TranscriptComplete) for e in self.events) >= calls


@pytest.fixture(scope="module")
def call_audio(shared_data):
    from asr.audio import load_audio

    audio = load_audio(shared_data / "synthetic_calls" / "audio" / "d001.flac")
    pcm = {leg: float_to_pcm16(audio.samples[ch, : SECONDS * 8000]) for leg, ch in (("agent", 0), ("caller", 1))}
    return {leg: [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)] for leg, data in pcm.items()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node without speech resources (Serve's controller runs there) and this process as the driver,
    joined through ``domain.ray_cluster.connect`` as ``hotline serve`` joins ``HOTLINE_RAY_ADDRESS``."""
    from ray import serve
    from ray.cluster_utils import Cluster

    from domain.ray_cluster import connect

    if ray.is_initialized():  # a local Ray an earlier test of this session left: connect() would keep it
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    settings = Settings(data_dir=tmp_path_factory.mktemp("ray"), ray_address=cluster.address)
    connect(settings, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield cluster, settings
    serve.shutdown()
    ray.shutdown()
    cluster.shutdown()


def start_service(settings, resource, engine="fake_engine", **params):
    from serving.asr_service import AsrService, ServiceParams

    params = ServiceParams(replica_cpus=0.1, node_resources=((resource, 1),), **params)
    return AsrService.start(settings, params=params, engine_factory=f"tests.ray.live_engines:{engine}",
                            app_name=f"asr-{resource}")


def follower(root, out, engine):
    def make_stream(call_id, tenant_id, leg):
        return LegStream(engine, SileroVad(8000), call_id=call_id, tenant_id=tenant_id, leg=leg, role=leg,
                         sample_rate=8000)

    return SpoolFollower(root, out, make_stream, FollowerParams(poll_interval_s=0.02))


def replay(root, calls, call_audio, f, out, *, between_steps=None):
    """The calls' spools grow by 100 ms per leg and pass of ``f``, as a bridge writes them, then end."""
    files = {}
    for name in calls:
        d = root / name
        d.mkdir(parents=True)
        (d / "meta.json").write_text(f'{{"call_uuid": "{name}", "tenant_id": 1}}')
        files[name] = {leg: open(d / f"{leg}.pcm", "wb") for leg in call_audio}
    steps = len(call_audio["caller"]) // STEP_FRAMES
    for step in range(steps):
        for legs in files.values():
            for leg, fh in legs.items():
                fh.write(b"".join(call_audio[leg][STEP_FRAMES * step : STEP_FRAMES * (step + 1)]))
                fh.flush()
        for _ in calls:  # one new call is claimed per pass
            f.poll()
        if between_steps:
            between_steps(step)
    for name, legs in files.items():
        for fh in legs.values():
            fh.close()
        (root / name / ENDED_MARKER).write_text("{}")
    deadline = time.monotonic() + 120
    while not out.complete(len(calls)):
        assert time.monotonic() < deadline, "the calls were not completed"
        f.poll()


def reference(tmp_path, calls, call_audio):
    out = Collect()
    replay(tmp_path / "reference", calls, call_audio, follower(tmp_path / "reference", out, FakeEngine()), out)
    return out


def replica_nodes(service, tries=30):
    """The Ray nodes the deployment's replicas answer from."""
    return {service._handle.where.remote().result(timeout_s=60)["node_id"] for _ in range(tries)}


def test_live_legs_are_decoded_by_replicas_on_another_node(cluster, call_audio, tmp_path):
    from serving.asr_service import RemoteEngine

    cluster, settings = cluster
    speech = cluster.add_node(num_cpus=1, resources={"asr-a": 1})
    service = start_service(settings, "asr-a", min_replicas=1, max_replicas=1)
    try:
        assert replica_nodes(service) == {speech.node_id}
        assert speech.node_id != ray.get_runtime_context().get_node_id()  # not the follower's node
        out = Collect()
        calls = ["w1-a", "w2-a"]
        replay(tmp_path / "spool", calls, call_audio, follower(tmp_path / "spool", out, RemoteEngine(service)), out)
        expected = reference(tmp_path, calls, call_audio)
        assert out.transcript() == expected.transcript()  # the same partials and finals, in the same order
        assert any(e[0] == "transcript.partial" for e in out.transcript()) and out.finals()
        assert len(out.finals()) == len(set(out.finals()))
    finally:
        service.stop()
        cluster.remove_node(speech)


def test_a_speech_node_killed_mid_call_loses_no_final(cluster, call_audio, tmp_path):
    """The only replica's node dies while utterances are in flight on it: they are re-submitted, Serve starts a
    replica on the other speech node, and the calls' transcripts come out whole."""
    from serving.asr_service import RemoteEngine

    cluster, settings = cluster
    doomed = cluster.add_node(num_cpus=1, resources={"asr-b": 1})
    service = start_service(settings, "asr-b", engine="slower_fake_engine", min_replicas=1, max_replicas=1)
    spare = cluster.add_node(num_cpus=1, resources={"asr-b": 1})  # free until the first node dies
    killed = threading.Event()

    def crash():
        """The machine goes down: its replica process and its Ray node (raylet, object store) with it."""
        os.kill(replica["pid"], signal.SIGKILL)
        cluster.remove_node(doomed, allow_graceful=False)
        killed.set()

    class KilledMidDecode(RemoteEngine):
        """Halfway through the calls, the node goes down while this decode is on it (the replica takes 0.6 s)."""

        decodes = 0

        def transcribe_many(self, utterances, **kw):
            self.decodes += 1
            if self.decodes == 12:
                threading.Timer(0.1, crash).start()
            return super().transcribe_many(utterances, **kw)

    try:
        replica = service._handle.where.remote().result(timeout_s=60)
        assert replica["node_id"] == doomed.node_id
        out = Collect()
        calls = ["w1-b", "w2-b"]
        replay(tmp_path / "spool", calls, call_audio, follower(tmp_path / "spool", out, KilledMidDecode(service)), out)
        assert killed.wait(60)
        assert service.resubmissions >= 1, "utterances in flight on the dead node were sent again"
        expected = reference(tmp_path, calls, call_audio)
        assert out.finals() == expected.finals()  # every final, once, in order
        assert replica_nodes(service, tries=5) == {spare.node_id}
    finally:
        service.stop()
        cluster.remove_node(spare)


def test_replicas_scale_with_load_onto_an_added_node(cluster, call_audio, tmp_path):
    """Load asks for a second replica; none fits until a speech node is added, and then it runs there."""
    from concurrent.futures import ThreadPoolExecutor

    from serving.asr_service import RemoteEngine

    cluster, settings = cluster
    first = cluster.add_node(num_cpus=1, resources={"asr-c": 1})
    service = start_service(settings, "asr-c", engine="slow_fake_engine", min_replicas=1, max_replicas=2,
                            target_ongoing_requests=1, upscale_delay_s=0.5, max_batch_size=1)
    added = None
    try:
        assert replica_nodes(service, tries=5) == {first.node_id}
        engine = RemoteEngine(service)
        stop = threading.Event()
        clip = float_to_pcm16(__import__("numpy").full(16000, 0.1, "float32"))

        def load():
            while not stop.is_set():
                service.transcribe(clip)

        with ThreadPoolExecutor(4) as pool:
            for _ in range(4):
                pool.submit(load)
            time.sleep(3)  # the autoscaler wants two replicas; the second has no node to run on
            added = cluster.add_node(num_cpus=1, resources={"asr-c": 1})
            deadline = time.monotonic() + 90
            nodes = set()
            while nodes != {first.node_id, added.node_id}:
                assert time.monotonic() < deadline, f"replicas on {nodes}"
                nodes = replica_nodes(service, tries=10)
            stop.set()
        out = Collect()  # and live legs decode across both
        replay(tmp_path / "spool", ["w1-c"], call_audio, follower(tmp_path / "spool", out, engine), out)
        assert out.finals() == reference(tmp_path, ["w1-c"], call_audio).finals()
    finally:
        service.stop()
        for node in (first, added):
            if node is not None:
                cluster.remove_node(node)
