"""Ray Serve hosting: batching across legs, recovery from a killed replica, and the real engine remotely.

One Ray session for the module (ray init is slow on 2 cores)."""
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from asr.audio import float_to_pcm16, load_audio, resample
from asr.text import edit_distance, normalise_for_cer

from .conftest import REPO

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def echo_service(ray_session, asr_settings):
    from serving.asr_service import AsrService, ServiceParams

    params = ServiceParams(min_replicas=1, max_replicas=1, replica_cpus=0.25, max_batch_size=8, batch_wait_timeout_s=0.05)
    service = AsrService.start(asr_settings, params=params, engine_factory="tests.asr.fakes:slow_echo_engine",
                               app_name="asr-echo")
    yield service
    service.stop()


def _utterance(n_samples: int) -> bytes:
    return float_to_pcm16(np.full(n_samples, 0.1, np.float32))


def test_concurrent_legs_are_batched_and_matched(echo_service):
    legs = {f"call{i}:caller": [1600 * (i + 1) + 160 * k for k in range(3)] for i in range(6)}
    ids = {leg: [echo_service.submit(leg, _utterance(n), sample_rate=16000) for n in sizes] for leg, sizes in legs.items()}
    for leg, sizes in legs.items():
        results = echo_service.results(leg)
        assert [r.request_id for r in results] == ids[leg]
        assert [r.results[0].text for r in results] == [str(n) for n in sizes]
    assert echo_service.in_flight() == 0


def test_killed_replica_loses_nothing(echo_service):
    from ray import serve

    legs = {f"call{i}:agent": [3200 + 16 * i + k for k in range(4)] for i in range(4)}
    for leg, sizes in legs.items():
        for n in sizes:
            echo_service.submit(leg, _utterance(n), sample_rate=16000, prompt=f"前文{n}")
    time.sleep(0.15)  # the first batch is now being decoded
    replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::asr-echo#")]
    assert replicas
    for name in replicas:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    before = echo_service.resubmissions
    with ThreadPoolExecutor(4) as pool:
        collected = dict(zip(legs, pool.map(echo_service.results, legs)))
    for leg, sizes in legs.items():
        assert [r.results[0].text for r in collected[leg]] == [f"{n}:前文{n}" for n in sizes]  # prompt re-sent too
    assert echo_service.resubmissions > before
    assert serve.status().applications["asr-echo"].status == "RUNNING"


def test_real_engine_behind_ray(ray_session, asr_settings, mandarin_samples):
    from asr.streaming import LegStream
    from asr.vad import SileroVad
    from serving.asr_service import AsrService, RemoteEngine, ServiceParams

    service = AsrService.start(asr_settings, params=ServiceParams(min_replicas=1, max_replicas=2, replica_cpus=0.5),
                               app_name="asr-real")
    try:
        audio = load_audio(mandarin_samples / "wav" / "aishell1_BAC009S0764W0121.wav")
        engine = RemoteEngine(service)
        x = resample(audio.mono(), audio.sample_rate, 16000)
        text = "".join(r.text for r in engine.transcribe(x))
        assert edit_distance(normalise_for_cer("甚至出现交易几乎停滞的情况"), normalise_for_cer(text)) <= 2
        # the same engine drives a live leg
        from .fakes import frames

        padded = np.concatenate([np.zeros(8000, np.float32), x, np.zeros(16000, np.float32)])
        stream = LegStream(engine, SileroVad(16000), call_id="c", tenant_id=1, leg="caller", role="caller",
                           sample_rate=16000)
        events = [e for f in frames(padded, 16000) for e in stream.push(f)] + stream.flush()
        assert any(e.kind == "transcript.final" and "交易" in e.text for e in events)
    finally:
        service.stop()


def test_replicas_reserve_a_gpu_share_only_for_a_cuda_engine(tmp_path):
    from domain.settings import Settings
    from serving.asr_service import ServiceParams, replica_resources

    assert replica_resources(Settings(data_dir=tmp_path)) == {"num_cpus": 1.0, "num_gpus": 0}
    assert replica_resources(Settings(data_dir=tmp_path, asr_device="cuda")) == {"num_cpus": 1.0, "num_gpus": 0.5}
    held = replica_resources(Settings(data_dir=tmp_path), ServiceParams(node_resources=(("asr", 1),)))
    assert held == {"num_cpus": 1.0, "num_gpus": 0, "resources": {"asr": 1}}  # only on nodes started for speech
