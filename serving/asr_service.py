"""Ray Serve hosting of the speech engines.

* ``AsrDeployment`` replicas each hold one engine; ``@serve.batch`` groups
  utterances from concurrent call legs into one engine batch.
* Replicas scale with load (``autoscaling_config``: ongoing requests per replica).
* ``AsrService`` is the client.  It keeps every submitted utterance's audio until
  its result arrives; when a replica dies mid-request the same audio is
  re-submitted to a live replica, so nothing a leg said is lost.
* A local Ray is started unless ``settings.ray_address`` names a cluster to join.

``RemoteEngine`` wraps the service in the ``AsrEngine`` interface, so a
``LegStream`` can decode on the cluster instead of in-process.
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from ray import serve

from asr.audio import float_to_pcm16, pcm16_to_float, resample
from asr.engines.base import EngineCapabilities, Recognised, transcribe_batch
from domain.settings import Settings

log = logging.getLogger("hotline.asr_service")
APP_NAME = "asr"


@dataclass(frozen=True)
class ServiceParams:
    max_batch_size: int = 8  # utterances decoded together by one replica
    batch_wait_timeout_s: float = 0.03  # how long a replica waits to fill a batch
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 4.0  # autoscaling: add replicas above this many requests per replica
    replica_cpus: float = 1.0
    replica_gpus: float = 0.5  # with HOTLINE_ASR_DEVICE=cuda: two replicas share a GPU, as two followers did best
    max_attempts: int = 4  # submissions of one utterance before giving up (replica deaths)
    request_timeout_s: float = 120.0


class AsrDeployment:
    """One replica: an engine plus a batching entry point (wrapped by ``serve.deployment`` in ``build_app``)."""

    def __init__(self, settings: dict, engine_factory: str | None, max_batch_size: int, batch_wait_timeout_s: float):
        import os

        self.pid = os.getpid()
        self.transcribe_batch.set_max_batch_size(max_batch_size)
        self.transcribe_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        config = Settings(**settings)
        if engine_factory:
            module, _, name = engine_factory.partition(":")
            self.engine = getattr(__import__(module, fromlist=[name]), name)(config)
        else:
            from asr.engines import create_engine

            self.engine = create_engine(config)

    async def transcribe(self, pcm: bytes, sample_rate: int, hotwords: tuple[str, ...] | None = None,
                         prompt: str | None = None) -> list[dict]:
        return await self.transcribe_batch((pcm, sample_rate, hotwords, prompt))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.03)
    async def transcribe_batch(self, requests: list[tuple[bytes, int, tuple | None, str | None]]) -> list[list[dict]]:
        audio = [resample(pcm16_to_float(pcm), sr, 16000) for pcm, sr, _, _ in requests]
        results: list[list[Recognised] | None] = [None] * len(requests)
        groups: dict[tuple | None, list[int]] = defaultdict(list)  # one batch per hot-word set
        for i, (_, _, hotwords, _) in enumerate(requests):
            groups[hotwords].append(i)
        for hotwords, idx in groups.items():
            words = list(hotwords) if hotwords else None
            prompts = [requests[i][3] for i in idx]
            for i, res in zip(idx, transcribe_batch(self.engine, [audio[i] for i in idx], hotwords=words,
                                                    prompts=prompts)):
                results[i] = res
        return [[asdict(r) for r in res] for res in results]

    def replica_pid(self) -> int:
        return self.pid


def replica_resources(settings: Settings, params: ServiceParams = ServiceParams()) -> dict:
    """What Ray reserves for one replica: a share of a GPU as well when Whisper runs on CUDA."""
    return {"num_cpus": params.replica_cpus, "num_gpus": params.replica_gpus if settings.asr_device == "cuda" else 0}


def build_app(settings: Settings, params: ServiceParams = ServiceParams(), engine_factory: str | None = None):
    deployment = serve.deployment(
        name="AsrDeployment",
        autoscaling_config={
            "min_replicas": params.min_replicas,
            "max_replicas": params.max_replicas,
            "target_ongoing_requests": params.target_ongoing_requests,
        },
        max_ongoing_requests=params.max_batch_size * 2,
        ray_actor_options=replica_resources(settings, params),
        health_check_period_s=2,
        health_check_timeout_s=10,
    )(AsrDeployment)
    return deployment.bind(
        settings.model_dump(mode="json"), engine_factory, params.max_batch_size, params.batch_wait_timeout_s
    )


@dataclass
class _Pending:
    pcm: bytes
    sample_rate: int
    hotwords: tuple[str, ...] | None
    prompt: str | None
    response: object
    attempts: int = 1


@dataclass
class LegResult:
    request_id: int
    results: list[Recognised] = field(default_factory=list)


class AsrService:
    """Client of the ASR deployment: submit utterances per leg, collect results in order."""

    def __init__(self, handle, params: ServiceParams, app_name: str = APP_NAME):
        self._handle = handle
        self.app_name = app_name
        self.params = params
        self._ids = itertools.count(1)
        self._pending: dict[str, dict[int, _Pending]] = defaultdict(dict)
        self._lock = threading.Lock()
        self.resubmissions = 0

    @classmethod
    def start(
        cls, settings: Settings, *, params: ServiceParams = ServiceParams(), engine_factory: str | None = None,
        runtime_env: dict | None = None, app_name: str = APP_NAME,
    ) -> AsrService:
        from domain.ray_cluster import connect

        connect(settings, runtime_env=runtime_env)
        handle = serve.run(build_app(settings, params, engine_factory), name=app_name, route_prefix=None)
        return cls(handle, params, app_name)

    def stop(self) -> None:
        serve.delete(self.app_name)

    # -- asynchronous, per leg ----------------------------------------------------------------
    def submit(self, leg_key: str, pcm: bytes, *, sample_rate: int = 8000, hotwords: list[str] | None = None,
               prompt: str | None = None) -> int:
        """Queue one utterance (PCM16 mono) of a leg, with the text said before it; returns its request id."""
        words = tuple(hotwords) if hotwords else None
        request_id = next(self._ids)
        response = self._handle.transcribe.remote(pcm, sample_rate, words, prompt)
        with self._lock:
            self._pending[leg_key][request_id] = _Pending(pcm, sample_rate, words, prompt, response)
        return request_id

    def results(self, leg_key: str) -> list[LegResult]:
        """Wait for all in-flight utterances of a leg; re-submits any lost to a dead replica."""
        with self._lock:
            pending = dict(self._pending[leg_key])
        out = []
        for request_id in sorted(pending):
            out.append(LegResult(request_id, self._wait(pending[request_id])))
            with self._lock:
                self._pending[leg_key].pop(request_id, None)
        with self._lock:
            if not self._pending[leg_key]:
                del self._pending[leg_key]
        return out

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    # -- synchronous ----------------------------------------------------------------------------
    def transcribe(self, pcm: bytes, *, sample_rate: int = 16000, hotwords: list[str] | None = None,
                   prompt: str | None = None) -> list[Recognised]:
        words = tuple(hotwords) if hotwords else None
        response = self._handle.transcribe.remote(pcm, sample_rate, words, prompt)
        return self._wait(_Pending(pcm, sample_rate, words, prompt, response))

    def _wait(self, pending: _Pending) -> list[Recognised]:
        while True:
            try:
                raw = pending.response.result(timeout_s=self.params.request_timeout_s)
                return [Recognised(**r) for r in raw]
            except Exception as exc:  # replica died / was killed / became unhealthy
                if pending.attempts >= self.params.max_attempts or not _is_replica_failure(exc):
                    raise
                pending.attempts += 1
                self.resubmissions += 1
                log.warning("ASR replica failed (%s); re-submitting %d bytes, attempt %d",
                            type(exc).__name__, len(pending.pcm), pending.attempts)
                pending.response = self._handle.transcribe.remote(pending.pcm, pending.sample_rate, pending.hotwords,
                                                                  pending.prompt)


def _is_replica_failure(exc: Exception) -> bool:
    from ray import exceptions

    return isinstance(exc, (exceptions.RayActorError, exceptions.ActorDiedError, exceptions.ActorUnavailableError,
                            exceptions.WorkerCrashedError, exceptions.NodeDiedError)) or "died" in str(exc).lower()


class RemoteEngine:
    """``AsrEngine`` backed by the Ray deployment (for ``LegStream`` in a bridge worker)."""

    capabilities = EngineCapabilities(streaming=False, partials=True, sample_rates=(16000,))

    def __init__(self, service: AsrService, name: str = "faster-whisper"):
        self.service, self.name = service, name

    def transcribe(self, samples_16k: np.ndarray, *, hotwords: list[str] | None = None, prompt: str | None = None):
        return self.service.transcribe(float_to_pcm16(samples_16k), sample_rate=16000, hotwords=hotwords,
                                       prompt=prompt)
