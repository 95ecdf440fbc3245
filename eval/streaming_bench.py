"""`hotline eval streaming`: live-leg behaviour under load.

Call channels from a synthetic-calls folder are replayed as simultaneous real-time
legs (20 ms PCM16 frames at 8 kHz, paced by the wall clock) through ``LegStream``
with the real engine and VAD.  Measured per load step: the interval between
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
import threading
import time
from pathlib import Path
from typing import Optional

import typer


def _percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 3) if values else None


def _run_step(engine, lexicon, legs: list[tuple[str, object, list[tuple[float, float]]]], seconds: float) -> dict:
    from asr.audio import float_to_pcm16
    from asr.streaming import LegStream
    from asr.vad import SileroVad
    from domain.events import AudioFrame, TranscriptFinal, TranscriptPartial

    latencies: list[float] = []
    intervals: list[float] = []
    finals = partials = 0
    lag: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(legs) + 1)

    def leg_worker(index: int, leg_id: str, samples, turns):
        nonlocal finals, partials
        stream = LegStream(engine, SileroVad(8000), call_id=leg_id, tenant_id=1, leg="caller", role="caller",
                           sample_rate=8000, lexicon=lexicon)
        n_frames = int(seconds * 50)
        pcm = float_to_pcm16(samples[: n_frames * 160])
        utt_last_emit: float | None = None
        barrier.wait()
        t0 = time.perf_counter()
        local_lat, local_int, worst_lag = [], [], 0.0
        n_final = n_partial = 0
        for k in range(n_frames):
            due = t0 + (k + 1) * 0.02
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            worst_lag = max(worst_lag, now - due)
            frame = AudioFrame(call_id=leg_id, leg="caller", sample_rate=8000, pcm=pcm[k * 320 : (k + 1) * 320], seq=k)
            events = stream.push(frame)
            emitted = time.perf_counter()
            for ev in events:
                if isinstance(ev, TranscriptPartial):
                    n_partial += 1
                    start_wall = t0 + ev.start_ms / 1000
                    local_int.append(emitted - (utt_last_emit if utt_last_emit else start_wall))
                    utt_last_emit = emitted
                elif isinstance(ev, TranscriptFinal):
                    n_final += 1
                    utt_last_emit = None
                    # the reference end of speech inside this final (else the detected end)
                    ends = [e for s, e in turns if ev.start_ms / 1000 - 0.3 <= e <= ev.end_ms / 1000 + 0.3]
                    speech_end = max(ends) if ends else ev.end_ms / 1000
                    local_lat.append(emitted - (t0 + speech_end))
        with lock:
            latencies.extend(local_lat)
            intervals.extend(local_int)
            finals += n_final
            partials += n_partial
            lag.append(worst_lag)

    threads = [threading.Thread(target=leg_worker, args=(i, *leg), daemon=True) for i, leg in enumerate(legs)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    return {
        "legs": len(legs),
        "finals": finals,
        "partials": partials,
        "final_latency_p50_s": _percentile(latencies, 50),
        "final_latency_p95_s": _percentile(latencies, 95),
        "partial_interval_p50_s": _percentile(intervals, 50),
        "partial_interval_p95_s": _percentile(intervals, 95),
        "partial_interval_max_s": round(max(intervals), 3) if intervals else None,
        "worst_frame_lag_s": round(max(lag), 3) if lag else None,
    }


def cpu_cost(engine, lexicon, legs) -> dict:
    """Process CPU seconds per second of leg audio, legs replayed one after another as fast as possible.

    Independent of other load on the machine (CPU time, not wall time): ``1 / cost`` is the number of
    legs one core can carry if decoding were perfectly spread out.
    """
    from asr.audio import float_to_pcm16
    from asr.streaming import LegStream
    from asr.vad import SileroVad
    from domain.events import AudioFrame

    audio_s = cpu = 0.0
    for leg_id, samples, _ in legs:
        stream = LegStream(engine, SileroVad(8000), call_id=leg_id, tenant_id=1, leg="caller", role="caller",
                           sample_rate=8000, lexicon=lexicon)
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

    calls = sorted((data / "refs").glob("*.json"))
    if not calls:
        raise typer.BadParameter(f"需要合成通话目录（audio/ 与 refs/）：{data}")
    legs = []
    for i in range(count):
        ref = calls[(i // 2) % len(calls)]
        channel = 1 - i % 2  # caller first, then agent
        side = "right" if channel == 1 else "left"
        audio = load_audio(data / "audio" / f"{ref.stem}.flac")
        start = int(offset_s * audio.sample_rate)
        samples = audio.samples[channel][start : start + int(seconds * audio.sample_rate)]
        turns = [(t["start"] - offset_s, t["end"] - offset_s) for t in json.loads(ref.read_text(encoding="utf-8"))
                 if t["channel"] == side and t["end"] > offset_s]
        legs.append((f"{ref.stem}-{side}-{i}", samples, turns))
    return legs


def run_streaming_bench(
    data: Path, *, steps: list[int], seconds: float, limit_p95_s: float = 1.5, hotwords: bool = True,
    cpu_legs: int = 2,
) -> dict:
    from asr.engines import create_engine
    from asr.hotwords import LAIBIN_TERMS, Lexicon
    from domain.settings import get_settings

    settings = get_settings()
    engine = create_engine(settings)
    lexicon = Lexicon(LAIBIN_TERMS) if hotwords else None
    cores = settings.asr_threads
    load_before = os.getloadavg()[0]
    cost = cpu_cost(engine, lexicon, load_legs(data, cpu_legs, seconds))
    results, best = [], 0
    for n in steps:
        step = _run_step(engine, lexicon, load_legs(data, n, seconds), seconds)
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
        "hotwords": hotwords,
        "seconds_per_step": seconds,
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
        json_out: Optional[Path] = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
    ) -> None:
        """实时流式识别：部分结果间隔、句末到最终结果时延、每核可承载通道数。"""
        from eval.report import emit

        emit(run_streaming_bench(data, steps=[int(s) for s in steps.split(",")], seconds=seconds,
                                 limit_p95_s=limit, hotwords=not no_hotwords, cpu_legs=cpu_legs), json_out)
