"""Batch scoring on Ray: one task per call (decoding, diarization or channel split, ASR, and scoring where the
caller asks for it), spread over every core and node of the cluster ``domain.ray_cluster.connect`` joins.

- :func:`run` submits the tasks and yields an :class:`Outcome` per call in completion order; a call that fails
  comes back with a Chinese message and the others go on.
- :func:`track` is the command line's progress bar over those outcomes.
- The ASR engine and the sentence embedder are loaded once per Ray worker process (:func:`worker_engine`), not
  per task: a worker runs many calls one after another.

Callers: ``hotline qa score DIR``, ``hotline eval calls`` and the server's recording uploads
(``serving.api.recordings``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from domain.settings import Settings

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".amr")  # what a recording may be stored as
_ENGINES: dict[str, Any] = {}  # per worker process: settings JSON -> engine
_EMBEDDERS: dict[str, Any] = {}


@dataclass(frozen=True)
class Job:
    """One call: ``source`` is a path every node can read, or the recording's bytes with its ``suffix``."""

    key: str  # what reports and the progress bar call it (file name, call id)
    source: str | bytes
    suffix: str = ""


@dataclass(frozen=True)
class Scoring:
    """Score in the task too: ``score_call`` with this scorecard and KB (entries as ``qa.answers.load_kb`` reads)."""

    card: Any
    kb: list[dict] | None = None


@dataclass
class Outcome:
    key: str
    segments: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    result: dict | None = None  # the scored call (``ScoreResult.to_dict``) when the job asked for scoring
    mono_turns: list = field(default_factory=list)  # diarization of the mono mix, when asked for
    error: str | None = None  # why this call failed, in Chinese
    node_id: str = ""
    engine: str = ""  # the ASR engine that transcribed it
    audio_s: float = 0.0
    # CPU seconds (all threads of the task's worker process; loading the models is not counted)
    asr_cpu_s: float = 0.0  # decoding, ASR and diarization or channel split of the recording
    mono_cpu_s: float = 0.0  # diarization of the mono mix
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def worker_engine(settings: Settings):
    """This worker's offline ASR engine (as QA scoring transcribes recordings), loaded on its first call."""
    key = settings.model_dump_json()
    if key not in _ENGINES:
        from asr.engines import create_asr_engine

        _ENGINES[key] = create_asr_engine(settings, offline=True)
    return _ENGINES[key]


def worker_embedder(settings: Settings):
    """This worker's sentence embedder for semantic QA rules (the configured KB embedder's queries)."""
    key = settings.model_dump_json()
    if key not in _EMBEDDERS:
        from knowledge.embedding import configured_embedder

        _EMBEDDERS[key] = configured_embedder(settings).queries
    return _EMBEDDERS[key]


def _load(job: Job, settings: Settings):
    from asr.audio import load_audio

    if isinstance(job.source, bytes):
        return load_audio(job.source, max_seconds=settings.max_audio_seconds, max_rate=16000)
    return load_audio(Path(job.source))


def process_call(job: Job, settings: Settings, lexicon=None, scoring: Scoring | None = None,
                 mono_diarization: bool = False) -> Outcome:
    """What one Ray task does for one call."""
    import ray

    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    t0 = time.perf_counter()
    try:
        import torch

        torch.set_num_threads(settings.asr_threads)  # diarization gets the task's cores, as the ASR does
        engine = worker_engine(settings)
        embed = worker_embedder(settings) if scoring else None
        out = _process(job, settings, engine, lexicon, scoring, embed, mono_diarization)
    except Exception as exc:  # noqa: BLE001 - reported per call; the other calls go on
        return Outcome(job.key, error=failure_message(exc), node_id=node, wall_s=time.perf_counter() - t0)
    out.node_id, out.engine, out.wall_s = node, engine.name, time.perf_counter() - t0
    return out


def _process(job: Job, settings: Settings, engine, lexicon, scoring: Scoring | None, embed,
             mono_diarization: bool) -> Outcome:
    import numpy as np

    from asr.audio import Audio
    from asr.diarization import diarize
    from qa.recording import transcribe_recording

    c0 = time.process_time()
    audio = _load(job, settings)
    tr = transcribe_recording(audio, engine, lexicon=lexicon)
    out = Outcome(job.key, tr.segments, {"duration_ms": round(audio.duration_s * 1000), "source_mode": tr.mode,
                                    "channels": audio.channels, "sample_rate": audio.sample_rate},
                  audio_s=audio.duration_s, asr_cpu_s=time.process_time() - c0)
    if mono_diarization:
        c0 = time.process_time()
        mono = Audio(audio.samples.mean(axis=0, keepdims=True).astype(np.float32), audio.sample_rate)
        out.mono_turns = diarize(mono)
        out.mono_cpu_s = time.process_time() - c0
    if scoring is not None:
        from qa.scoring import score_call

        out.result = score_call(out.segments, out.metadata, scoring.card, scoring.kb, embed=embed).to_dict()
    return out


def failure_message(exc: BaseException) -> str:
    """A call's failure as a reviewer reads it (Chinese)."""
    from asr.audio import AudioError

    if isinstance(exc, AudioError):
        return exc.message
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return f"无法读取录音文件：{exc.filename or exc}"
    return f"处理失败（{type(exc).__name__}）：{exc}"


def submit(jobs: Iterable[Job], settings: Settings, *, lexicon=None, scoring: Scoring | None = None,
           mono_diarization: bool = False, num_cpus: int | None = None) -> dict:
    """One Ray task per job over the cluster (``num_cpus`` limits a local Ray): ``{object ref: job}``.

    Each task asks for ``asr_threads`` CPUs, so as many calls run at once as the cluster has cores for; a task
    lost with its node is retried by Ray on another node."""
    import ray

    from domain.ray_cluster import connect

    jobs = list(jobs)
    if not jobs:
        return {}
    connect(settings, num_cpus=num_cpus)
    task = ray.remote(process_call).options(num_cpus=settings.asr_threads, max_retries=2, retry_exceptions=False)
    shared = [ray.put(settings), ray.put(lexicon), ray.put(scoring)]
    return {task.remote(job, *shared, mono_diarization): job for job in jobs}


def outcome_of(ref, job: Job) -> Outcome:
    """A finished task's outcome; a task lost past its retries is that call's failure."""
    import ray
    from ray.exceptions import RayError

    try:
        return ray.get(ref)
    except RayError as exc:  # the worker or its node died past the retries
        return Outcome(job.key, error=f"计算节点失败，本通未完成：{type(exc).__name__}")


def run(jobs: Iterable[Job], settings: Settings, **kw) -> Iterator[Outcome]:
    """:func:`submit` the jobs and yield their outcomes in completion order."""
    import ray

    pending = submit(jobs, settings, **kw)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        yield outcome_of(done[0], pending.pop(done[0]))


def track(outcomes: Iterable[Outcome], total: int, description: str) -> Iterator[Outcome]:
    """A progress bar on stderr (stdout keeps the JSON) as outcomes arrive, counting the failures."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("失败 {task.fields[failed]}"),
               TimeElapsedColumn(), TextColumn("剩余"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=total == 0) as progress:
        bar = progress.add_task(description, total=total, failed=0)
        failed = 0
        for outcome in outcomes:
            failed += not outcome.ok
            progress.update(bar, advance=1, failed=failed)
            yield outcome


def cpu_count() -> int:
    """CPUs the connected cluster has (for per-core figures)."""
    import ray

    return int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
