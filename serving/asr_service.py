"""Ray Serve hosting of the speech engines.

* ``AsrDeployment`` replicas each hold one engine; ``@serve.batch`` groups
  utterances from concurrent call legs into one engine batch.
* Replicas scale with load (``autoscaling_config``: ongoing requests per replica), take a share of a GPU
  when Whisper runs on CUDA, and may be held to nodes that offer a custom resource
  (``ServiceParams.node_resources``, e.g. ``{"asr": 1}`` on the nodes started for speech).
* ``AsrService`` is the client.  It keeps every submitted utterance's audio until
  its result arrives; when a replica dies mid-request (its node went away, say) the same audio is
  re-submitted to a live replica, so nothing a leg said is lost.
* Ray is joined through ``domain.ray_cluster.connect``: the cluster of ``HOTLINE_RAY_ADDRESS``, else a
  local Ray.  ``hotline serve`` deploys the application (:meth:`AsrService.start`); the live ASR followers,
  other processes possibly on other hosts, find it by name (:meth:`AsrService.connect`).

``RemoteEngine`` wraps the service in the ``AsrEngine`` interface: the followers' ``LegStream``s decode on
the cluster, their finals and partials of one pass going out together (``transcribe_many``) so replicas
batch them with those of every other follower.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
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
    node_resources: tuple[tuple[str, float], ...] = ()  # custom Ray resources a replica needs, e.g. (("asr", 1),)
    upscale_delay_s: float = 5.0  # autoscaling: load above target this long adds replicas
    downscale_delay_s: float = 120.0  # load below target this long removes them


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
            from asr.engines import create_asr_engine

            self.engine = create_asr_engine(config)

    async def transcribe(self, pcm: bytes, sample_rate: int, hotwords: tuple[str, ...] | None = None,
                         prompt: str | None = None, partial: bool = False) -> list[dict]:
        return await self.transcribe_batch((pcm, sample_rate, hotwords, prompt, partial))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.03)
    async def transcribe_batch(self, requests: list[tuple[bytes, int, tuple | None, str | None, bool]]
                               ) -> list[list[dict]]:
        audio = [resample(pcm16_to_float(pcm), sr, 16000) for pcm, sr, *_ in requests]
        results: list[list[Recognised] | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = defaultdict(list)  # one batch per hot-word set and decoding
        for i, (_, _, hotwords, _, partial) in enumerate(requests):
            groups[hotwords, partial].append(i)
        for (hotwords, partial), idx in groups.items():
            words = list(hotwords) if hotwords else None
            prompts = [requests[i][3] for i in idx]
            for i, res in zip(idx, transcribe_batch(self.engine, [audio[i] for i in idx], hotwords=words,
                                                    prompts=prompts, partial=partial)):
                results[i] = res
        return [[asdict(r) for r in res] for res in results]

    def where(self) -> dict:
        """This replica's process and Ray node (operations: where the speech runs)."""
        import ray

        return {"pid": self.pid, "node_id": ray.get_runtime_context().get_node_id()}

    def capabilities(self) -> dict:
        return asdict(self.engine.capabilities)


def replica_resources(settings: Settings, params: ServiceParams = ServiceParams()) -> dict:
    """What Ray reserves for one replica: a share of a GPU as well when Whisper runs on CUDA, and the custom
    resources that hold it to the nodes meant for speech."""
    options = {"num_cpus": params.replica_cpus,
               "num_gpus": params.replica_gpus if settings.asr_device == "cuda" else 0}
    if params.node_resources:
        options["resources"] = dict(params.node_resources)
    return options


def build_app(settings: Settings, params: ServiceParams = ServiceParams(), engine_factory: str | None = None):
    deployment = serve.deployment(
        name="AsrDeployment",
        autoscaling_config={
            "min_replicas": params.min_replicas,
            "max_replicas": params.max_replicas,
            "target_ongoing_requests": params.target_ongoing_requests,
            "upscale_delay_s": params.upscale_delay_s,
            "downscale_delay_s": params.downscale_delay_s,
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
    partial: bool
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
        serve.start(proxy_location="Disabled")  # the handle is the only way in: no HTTP proxy on every node
        handle = serve.run(build_app(settings, params, engine_factory), name=app_name, route_prefix=None)
        return cls(handle, params, app_name)

    @classmethod
    def connect(cls, settings: Settings, *, params: ServiceParams = ServiceParams(), app_name: str = APP_NAME,
                wait_s: float = 120.0) -> AsrService:
        """The client of a deployment started elsewhere (a follower process joining ``hotline serve``'s Ray);
        waits up to ``wait_s`` for the application to run."""
        from domain.ray_cluster import connect

        connect(settings)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return cls(serve.get_app_handle(app_name), params, app_name)
            except Exception:  # noqa: BLE001 - not deployed (yet): RayServeException, or the controller starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    @property
    def address(self) -> str:
        """The Ray cluster's address, for processes that join it (``HOTLINE_RAY_ADDRESS``)."""
        import ray

        return ray.get_runtime_context().gcs_address

    def stop(self) -> None:
        serve.delete(self.app_name)

    def capabilities(self) -> dict:
        """The deployed engine's ``EngineCapabilities`` (as a dict)."""
        return self._handle.capabilities.remote().result(timeout_s=self.params.request_timeout_s)

    # -- asynchronous, per leg ----------------------------------------------------------------
    def submit(self, leg_key: str, pcm: bytes, *, sample_rate: int = 8000, hotwords: list[str] | None = None,
               prompt: str | None = None) -> int:
        """Queue one utterance (PCM16 mono) of a leg, with the text said before it; returns its request id."""
        request_id = next(self._ids)
        pending = self._send(pcm, sample_rate, hotwords, prompt, False)
        with self._lock:
            self._pending[leg_key][request_id] = pending
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
                   prompt: str | None = None, partial: bool = False) -> list[Recognised]:
        return self._wait(self._send(pcm, sample_rate, hotwords, prompt, partial))

    def transcribe_many(self, pcms: list[bytes], *, sample_rate: int = 16000, hotwords: list[str] | None = None,
                        prompts: list[str | None] | None = None, partial: bool = False) -> list[list[Recognised]]:
        """All sent at once (a replica batches them with other callers'), results in order."""
        prompts = prompts or [None] * len(pcms)
        pending = [self._send(pcm, sample_rate, hotwords, prompt, partial) for pcm, prompt in zip(pcms, prompts)]
        return [self._wait(p) for p in pending]

    def _send(self, pcm: bytes, sample_rate: int, hotwords: list[str] | None, prompt: str | None,
              partial: bool) -> _Pending:
        words = tuple(hotwords) if hotwords else None
        response = self._handle.transcribe.remote(pcm, sample_rate, words, prompt, partial)
        return _Pending(pcm, sample_rate, words, prompt, partial, response)

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
                                                                  pending.prompt, pending.partial)


def _is_replica_failure(exc: Exception) -> bool:
    from ray import exceptions

    return isinstance(exc, (exceptions.RayActorError, exceptions.ActorDiedError, exceptions.ActorUnavailableError,
                            exceptions.WorkerCrashedError, exceptions.NodeDiedError)) or "died" in str(exc).lower()


class RemoteEngine:
    """``AsrEngine`` backed by the Ray deployment (the live ASR followers' ``LegStream``s).  Its capabilities are
    the deployed engine's, read once from a replica."""

    def __init__(self, service: AsrService, name: str = "faster-whisper"):
        self.service, self.name = service, name
        self.capabilities = EngineCapabilities(**service.capabilities())

    def transcribe(self, samples_16k: np.ndarray, *, hotwords: list[str] | None = None, prompt: str | None = None,
                   partial: bool = False) -> list[Recognised]:
        return self.service.transcribe(float_to_pcm16(samples_16k), sample_rate=16000, hotwords=hotwords,
                                       prompt=prompt, partial=partial)

    def transcribe_many(self, utterances: list[np.ndarray], *, hotwords: list[str] | None = None,
                        prompts: list[str | None] | None = None, partial: bool = False) -> list[list[Recognised]]:
        return self.service.transcribe_many([float_to_pcm16(u) for u in utterances], sample_rate=16000,
                                            hotwords=hotwords, prompts=prompts, partial=partial)
