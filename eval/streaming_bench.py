"""`hotline eval streaming`: live-leg behaviour under load.

Call channels from a synthetic-calls folder are replayed as simultaneous real-time
legs (8 kHz PCM16 written to call spools every 100 ms, paced by the wall clock) and
transcribed by the ASR followers of the live pipeline (``serving.pipeline.SpoolFollower``,
each a process with its own engine, one per core by default) with the real engine and VAD.  Measured per load step: the interval between
partials during speech, and end-of-utterance → final latency (from the reference
end of speech to the moment the final is returned).  The number of legs is
ramped until p95 latency exceeds the limit; ``legs_per_core`` is the largest
passing count divided by the cores the engine uses.  Wall-clock results depend on
other load on the machine (reported as ``load_average_1m_at_start``); ``cpu_cost``
measures the same pipeline in CPU seconds, which does not.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import typer


def _percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 3) if values else None


def _make_stream_factory(engine, lexicon):
    from asr.streaming import LegStream
    from asr.vad import SileroVad

    def make_stream(call_id: str, tenant_id: int, leg: str) -> LegStream:
        return LegStream(engine, SileroVad(8000), call_id=call_id, tenant_id=tenant_id, leg=leg, role=leg,
                         sample_rate=8000, lexicon=lexicon)

    return make_stream


def _lexicon(hotwords: bool):
    from asr.hotwords import LAIBIN_TERMS, Lexicon

    return Lexicon(LAIBIN_TERMS) if hotwords else None


class _EventLog:
    """A follower process's publisher: one JSON line per event, with the moment it came out.

    ``time.monotonic`` is the system's monotonic clock, so moments from several processes compare.
    """

    def __init__(self, fh) -> None:
        self.fh = fh

    def publish(self, event) -> None:
        self.fh.write(json.dumps([time.monotonic(), event.model_dump(mode="json")]) + "\n")
        self.fh.flush()


def _follower_process(spool: str, log_path: str, hotwords: bool, ready, stop) -> None:
    """One ASR follower in a process of its own, as deployed (``serving.pipeline.main``), with its own engine."""
    import numpy as np

    from asr.engines import create_engine
    from domain.settings import get_settings
    from asr.follower import FollowerParams, SpoolFollower

    settings = get_settings()
    engine = create_engine(settings)
    engine.transcribe(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))  # warm up the decoder
    with open(log_path, "w", encoding="utf-8") as fh:
        follower = SpoolFollower(Path(spool), _EventLog(fh), _make_stream_factory(engine, _lexicon(hotwords)),
                                 FollowerParams.for_settings(settings))
        ready.put(os.getpid())
        follower.run(stop)
        fh.write(json.dumps(["calls_done", follower.calls_done]) + "\n")


def _wait_ready(ready, procs) -> None:
    """Until every follower process has loaded its engine; a process that dies meanwhile is an error."""
    import queue

    started = 0
    while started < len(procs):
        try:
            ready.get(timeout=1)
            started += 1
        except queue.Empty:
            dead = [p.exitcode for p in procs if not p.is_alive()]
            if dead:
                raise RuntimeError(f"ASR 跟随进程启动失败（退出码 {dead}）")


class _LogReader:
    """Reads the follower processes' event logs as they grow."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.offsets = paths, [0] * len(paths)
        self.events: list[tuple[float, object]] = []
        self.calls_done: list[int] = []
        self.completed = 0  # legs whose TranscriptComplete came

    def read(self) -> None:
        from domain.call_events import TranscriptComplete, event_adapter

        for k, path in enumerate(self.paths):
            if not path.exists():
                continue
            with open(path, "rb") as fh:
                fh.seek(self.offsets[k])
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offsets[k] += len(complete)
            for line in complete.splitlines():
                at, body = json.loads(line)
                if at == "calls_done":
                    self.calls_done.append(body)
                else:
                    event = event_adapter.validate_python(body)
                    self.events.append((at, event))
                    self.completed += isinstance(event, TranscriptComplete)


def _run_step(followers: int, hotwords: bool, legs: list[tuple[str, object, list[tuple[float, float]]]],
              seconds: float) -> dict:
    """``legs`` replayed in real time into call spools, transcribed by ``followers`` ASR follower processes.

    This is the deployed path (serving/pipeline.py): a writer appends each leg's 20 ms frames to its spool
    file every 100 ms, as the bridge's FrameHub does, and SpoolFollowers, each a process with its own engine,
    tail the spools (finals first, partials rationed per pass).
    """
    import multiprocessing
    import tempfile

    from asr.audio import float_to_pcm16
    from domain.call_events import TranscriptFinal, TranscriptPartial
    from asr.follower import PRESENCE_SUFFIX
    from domain.spool import ENDED_MARKER

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="hotline-streaming-") as tmp:
        root, logs = Path(tmp) / "spool", Path(tmp) / "events"
        root.mkdir()
        logs.mkdir()
        ready, stop = ctx.Queue(), ctx.Event()
        paths = [logs / f"follower-{k}.jsonl" for k in range(followers)]
        procs = [ctx.Process(target=_follower_process, args=(str(root), str(path), hotwords, ready, stop), daemon=True)
                 for path in paths]
        for proc in procs:
            proc.start()
        _wait_ready(ready, procs)
        presence = root.parent / f"{root.name}{PRESENCE_SUFFIX}"
        deadline = time.monotonic() + 60
        while len(list(presence.glob("[!.]*"))) < followers and time.monotonic() < deadline:
            time.sleep(0.05)  # each follower announced itself: the calls are shared out from the first one
        files, pcm = [], []
        for leg_id, samples, _ in legs:
            d = root / leg_id
            d.mkdir()
            files.append(open(d / "caller.pcm", "wb"))
            pcm.append(float_to_pcm16(samples[: int(seconds * 8000)]))
            (d / "meta.json").write_text(json.dumps({"call_uuid": leg_id, "tenant_id": 1}))
        reader = _LogReader(paths)
        t0 = time.monotonic()
        step_bytes, k, lag = 1600, 0, 0.0  # 100 ms of 8 kHz PCM16 per write
        while k * step_bytes < max(len(x) for x in pcm):
            due = t0 + (k + 1) * 0.1
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            lag = max(lag, time.monotonic() - due)
            for fh, data in zip(files, pcm):
                fh.write(data[k * step_bytes : (k + 1) * step_bytes])
                fh.flush()
            k += 1
        for fh, (leg_id, *_) in zip(files, legs):
            fh.close()
            (root / leg_id / ENDED_MARKER).write_text("{}")
        deadline = time.monotonic() + 10 * seconds
        while time.monotonic() < deadline:
            reader.read()
            if reader.completed >= len(legs):
                break
            time.sleep(0.2)
        stop.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        reader.read()

    turns = {leg_id: leg_turns for leg_id, _, leg_turns in legs}
    latencies, intervals, last_emit = [], [], {}
    finals = partials = 0
    for at, ev in sorted(reader.events, key=lambda x: x[0]):
        if at > t0 + seconds + 0.05 and isinstance(ev, TranscriptFinal) and ev.end_ms >= seconds * 1000 - 600:
            continue  # the utterance cut off by the end of the replay: finalised by the hang-up, not an endpoint
        if isinstance(ev, TranscriptPartial):
            partials += 1
            intervals.append(at - last_emit.get(ev.call_id, t0 + ev.start_ms / 1000))
            last_emit[ev.call_id] = at
        elif isinstance(ev, TranscriptFinal):
            finals += 1
            last_emit.pop(ev.call_id, None)
            # the reference end of speech inside this final (else the detected end)
            ends = [e for s, e in turns[ev.call_id] if ev.start_ms / 1000 - 0.3 <= e <= ev.end_ms / 1000 + 0.3]
            speech_end = max(ends) if ends else ev.end_ms / 1000
            latencies.append(at - (t0 + speech_end))
    return {
        "legs": len(legs),
        "followers": followers,
        "legs_per_follower": sorted(reader.calls_done, reverse=True),
        "finals": finals,
        "partials": partials,
        "final_latency_p50_s": _percentile(latencies, 50),
        "final_latency_p95_s": _percentile(latencies, 95),
        "partial_interval_p50_s": _percentile(intervals, 50),
        "partial_interval_p95_s": _percentile(intervals, 95),
        "partial_interval_max_s": round(max(intervals), 3) if intervals else None,
        "worst_write_lag_s": round(lag, 3),
    }


def cpu_cost(engine, lexicon, legs) -> dict:
    """Process CPU seconds per second of leg audio, legs replayed one after another as fast as possible.

    Independent of other load on the machine (CPU time, not wall time): ``1 / cost`` is the number of
    legs one core can carry if decoding were perfectly spread out.
    """
    from asr.audio import float_to_pcm16
    from domain.call_events import AudioFrame

    audio_s = cpu = 0.0
    for leg_id, samples, _ in legs:
        stream = _make_stream_factory(engine, lexicon)(leg_id, 1, "caller")
        pcm = float_to_pcm16(samples)
        started = time.process_time()
        for k in range(len(samples) // 160):
            stream.push(AudioFrame(call_id=leg_id, leg="caller", sample_rate=8000, pcm=pcm[k * 320 : (k + 1) * 320], seq=k))
        stream.flush()
        cpu += time.process_time() - started
        audio_s += len(samples) / 8000
    return {"legs": len(legs), "audio_seconds": round(audio_s, 1), "cpu_seconds": round(cpu, 1),
            "cpu_per_audio_second": round(cpu / audio_s, 4), "legs_per_core_cpu_bound": round(audio_s / cpu, 2)}


def load_legs(data: Path, count: int, seconds: float, offset_s: float = 5.0):
    """``count`` legs: caller and agent channels of successive calls, each starting ``offset_s`` in."""
    from asr.audio import load_audio
    from qa.labelled_calls import audio_path

    calls = sorted((data / "refs").glob("*.json"))
    if not calls:
        raise typer.BadParameter(f"需要合成通话目录（audio/ 与 refs/）：{data}")
    legs = []
    for i in range(count):
        ref = calls[(i // 2) % len(calls)]
        channel = 1 - i % 2  # caller first, then agent
        side = "right" if channel == 1 else "left"
        audio = load_audio(audio_path(data, {"id": ref.stem}))
        start = int(offset_s * audio.sample_rate)
        samples = audio.samples[channel][start : start + int(seconds * audio.sample_rate)]
        turns = [(t["start"] - offset_s, t["end"] - offset_s) for t in json.loads(ref.read_text(encoding="utf-8"))
                 if t["channel"] == side and t["end"] > offset_s]
        legs.append((f"{ref.stem}-{side}-{i}", samples, turns))
    return legs


def run_streaming_bench(
    data: Path, *, steps: list[int], seconds: float, limit_p95_s: float = 1.5, hotwords: bool = True,
    cpu_legs: int = 2, followers: int = 0,
) -> dict:
    from asr.engines import create_engine
    from domain.settings import get_settings
    from eval.asr_bench import whisper_window

    settings = get_settings()
    followers = followers or settings.live_asr_followers
    engine = create_engine(settings)
    cores = followers * settings.asr_threads
    load_before = os.getloadavg()[0]
    cost = cpu_cost(engine, _lexicon(hotwords), load_legs(data, cpu_legs, seconds))
    results, best = [], 0
    for n in steps:
        step = _run_step(followers, hotwords, load_legs(data, n, seconds), seconds)
        step["passed"] = step["final_latency_p95_s"] is not None and step["final_latency_p95_s"] <= limit_p95_s
        results.append(step)
        if not step["passed"]:
            break
        best = n
    first = results[0]
    return {
        "benchmark": "streaming",
        "data": str(data),
        "engine": engine.name,
        "device": f"{settings.asr_device} ({settings.asr_compute_type})",
        "live_window": whisper_window(engine),
        "decodes_ahead_per_pass": settings.live_decodes_ahead,
        "hotwords": hotwords,
        "seconds_per_step": seconds,
        "followers": followers,
        "cores": cores,
        "latency_limit_p95_s": limit_p95_s,
        "partial_interval_p95_s": first["partial_interval_p95_s"],
        "final_latency_p50_s": first["final_latency_p50_s"],
        "final_latency_p95_s": first["final_latency_p95_s"],
        "max_legs_passing": best,
        "legs_per_core": round(best / cores, 2),
        "cpu_cost": cost,
        "machine_cores": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "steps": results,
    }


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("streaming")
    def streaming_command(
        data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="合成通话目录"),
        steps: str = typer.Option("1,4,8,12,16", "--steps", help="逐级增加的并发通道数"),
        seconds: float = typer.Option(40.0, "--seconds", help="每级实时回放的秒数"),
        limit: float = typer.Option(1.5, "--limit", help="p95 时延上限（秒）"),
        no_hotwords: bool = typer.Option(False, "--no-hotwords", help="关闭热词"),
        cpu_legs: int = typer.Option(2, "--cpu-legs", help="测 CPU 开销时顺序回放的通道数"),
        followers: int = typer.Option(0, "--followers", help="ASR 跟随进程数（0：按配置，默认每核一个）"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
    ) -> None:
        """实时流式识别：部分结果间隔、句末到最终结果时延、每核可承载通道数。"""
        from domain.json_output import emit

        emit(run_streaming_bench(data, steps=[int(s) for s in steps.split(",")], seconds=seconds,
                                 limit_p95_s=limit, hotwords=not no_hotwords, cpu_legs=cpu_legs,
                                 followers=followers), json_out)
