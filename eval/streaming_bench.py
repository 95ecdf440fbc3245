"""`hotline eval streaming`: live-leg behaviour under load, on each audio set given.

Legs of each set (the channels of a synthetic-calls folder such as the shared calls or corpus/calls, or real
clips of a Kaldi folder put one after another through a G.711 channel) are first replayed one after another as
fast as possible: the CPU seconds per audio second (``cpu_cost``, which other load on the machine hardly moves),
and the CER of their finals.  The CPU per leg gives the rated load (``RATED_UTILISATION`` of a core).  Then legs
are replayed as simultaneous real-time legs (8 kHz PCM16 written to call spools every 100 ms, paced by the wall
clock) and transcribed by the ASR followers of the live pipeline (``asr.follower.SpoolFollower``, each a
process with its own engine, one per core by default) with the real engine and VAD.  Measured per load step
(``rated``: the rated load): the interval between partials during speech, the partials flagged late, and
end-of-utterance → final latency (from the reference end of speech to the moment the final is returned).  Steps
stop at the first whose p95 latency exceeds the limit; ``legs_per_core`` is the largest passing count divided
by the cores the engine uses.  Wall-clock results depend on other load on the machine (reported as
``load_average_1m_at_start`` for each step).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
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
    from asr.hotwords import Lexicon
    from demo import demo_settings

    return Lexicon(demo_settings().lexicon.base_terms) if hotwords else None  # the demo tenant's calls


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

    from asr.engines import create_asr_engine
    from domain.settings import get_settings
    from asr.follower import FollowerParams, SpoolFollower

    settings = get_settings()
    engine = create_asr_engine(settings)
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


def _run_step(followers: int, hotwords: bool, legs: list[Leg], seconds: float) -> dict:
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
        for leg in legs:
            d = root / leg.id
            d.mkdir()
            files.append(open(d / "caller.pcm", "wb"))
            pcm.append(float_to_pcm16(leg.samples[: int(seconds * 8000)]))
            (d / "meta.json").write_text(json.dumps({"call_uuid": leg.id, "tenant_id": 1}))
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
        for fh, leg in zip(files, legs):
            fh.close()
            (root / leg.id / ENDED_MARKER).write_text("{}")
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

    turns = {leg.id: leg.turns for leg in legs}
    latencies, intervals, last_emit = [], [], {}
    finals = partials = delayed = 0
    for at, ev in sorted(reader.events, key=lambda x: x[0]):
        if at > t0 + seconds + 0.05 and isinstance(ev, TranscriptFinal) and ev.end_ms >= seconds * 1000 - 600:
            continue  # the utterance cut off by the end of the replay: finalised by the hang-up, not an endpoint
        if isinstance(ev, TranscriptPartial):
            partials += 1
            delayed += ev.delayed
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
        "partials_delayed": delayed,  # flagged late (the decoder behind: partials thinned out, the desk shows 识别中)
        "final_latency_p50_s": _percentile(latencies, 50),
        "final_latency_p95_s": _percentile(latencies, 95),
        "partial_interval_p50_s": _percentile(intervals, 50),
        "partial_interval_p95_s": _percentile(intervals, 95),
        "partial_interval_max_s": round(max(intervals), 3) if intervals else None,
        "worst_write_lag_s": round(lag, 3),
    }


@dataclass
class Leg:
    """One leg replayed: 8 kHz audio and the reference speech in it (seconds from the leg's start).  ``ref`` is
    the text of the turns wholly inside the leg, said between ``ref_span`` (what finals are scored against)."""

    id: str
    samples: "object"  # np.ndarray, 8 kHz mono float32
    turns: list[tuple[float, float]]
    ref: str
    ref_span: tuple[float, float]


def cpu_cost(engine, lexicon, legs: list[Leg]) -> dict:
    """Process CPU seconds per second of leg audio, legs replayed one after another as fast as possible, and the
    CER of their finals (only finals within ``Leg.ref_span``, against ``Leg.ref``).

    Independent of other load on the machine (CPU time, not wall time): ``1 / cost`` is the number of
    legs one core can carry if decoding were perfectly spread out.
    """
    from asr.audio import float_to_pcm16
    from asr.text import edit_distance, normalise_for_cer
    from domain.call_events import AudioFrame, TranscriptFinal, TranscriptPartial

    audio_s = cpu = 0.0
    edits = chars = partials = 0
    for leg in legs:
        stream = _make_stream_factory(engine, lexicon)(leg.id, 1, "caller")
        pcm = float_to_pcm16(leg.samples)
        out = []
        started = time.process_time()
        for k in range(len(leg.samples) // 160):
            out += stream.push(AudioFrame(call_id=leg.id, leg="caller", sample_rate=8000, pcm=pcm[k * 320 : (k + 1) * 320], seq=k))
        out += stream.flush()
        cpu += time.process_time() - started
        audio_s += len(leg.samples) / 8000
        partials += sum(isinstance(e, TranscriptPartial) for e in out)
        lo, hi = leg.ref_span
        hyp = "".join(e.text for e in out if isinstance(e, TranscriptFinal)
                      and e.start_ms / 1000 >= lo - 0.5 and e.end_ms / 1000 <= hi + 1.0)
        ref = normalise_for_cer(leg.ref)
        edits += edit_distance(ref, normalise_for_cer(hyp))
        chars += len(ref)
    return {"legs": len(legs), "audio_seconds": round(audio_s, 1), "cpu_seconds": round(cpu, 1),
            "cpu_per_audio_second": round(cpu / audio_s, 4), "legs_per_core_cpu_bound": round(audio_s / cpu, 2),
            "partials": partials, "final_cer": round(edits / chars, 4) if chars else None, "ref_chars": chars}


def _call_legs(data: Path, count: int, seconds: float, offset_s: float) -> list[Leg]:
    """Caller and agent channels of successive calls, each from ``offset_s`` in."""
    from asr.audio import load_audio
    from qa.labelled_calls import audio_path

    calls = sorted((data / "refs").glob("*.json"))
    legs = []
    for i in range(count):
        ref = calls[(i // 2) % len(calls)]
        channel = 1 - i % 2  # caller first, then agent
        side = "right" if channel == 1 else "left"
        audio = load_audio(audio_path(data, {"id": ref.stem}))
        start = int(offset_s * audio.sample_rate)
        samples = audio.samples[channel][start : start + int(seconds * audio.sample_rate)]
        if audio.sample_rate != 8000:
            raise typer.BadParameter(f"通话录音须为 8000 Hz：{ref.stem}（{audio.sample_rate} Hz）")
        turns = [(t["start"] - offset_s, t["end"] - offset_s, t["text"])
                 for t in json.loads(ref.read_text(encoding="utf-8")) if t["channel"] == side and t["end"] > offset_s]
        inside = [t for t in turns if t[0] >= 0.3 and t[1] <= len(samples) / 8000]
        legs.append(Leg(f"{ref.stem}-{side}-{i}", samples, [(s, e) for s, e, _ in turns],
                        "".join(t for *_, t in inside),
                        (inside[0][0], inside[-1][1]) if inside else (0.0, 0.0)))
    return legs


def _clip_legs(data: Path, count: int, seconds: float) -> list[Leg]:
    """Real clips (a Kaldi folder) through a G.711 phone channel, one after another with pauses between them;
    leg ``i`` starts from clip ``i``."""
    import numpy as np

    from asr.audio import resample
    from eval.asr_bench import load_items

    items, _ = load_items(data, 8000)
    lead, gap = 1.0, 1.5
    legs = []
    for i in range(count):
        pieces, turns, texts, t, k = [np.zeros(int(lead * 8000), np.float32)], [], [], lead, i
        while t < seconds:
            item = items[k % len(items)]
            clip = resample(item.samples_16k, 16000, 8000)
            turns.append((t, t + len(clip) / 8000))
            if t + len(clip) / 8000 <= seconds:
                texts.append(item.reference)
            pieces += [clip, np.zeros(int(gap * 8000), np.float32)]
            t += len(clip) / 8000 + gap
            k += 1
        samples = np.concatenate(pieces)[: int(seconds * 8000)]
        legs.append(Leg(f"{data.name}-{i}", samples, turns, "".join(texts), (lead, turns[len(texts) - 1][1])))
    return legs


def load_legs(data: Path, count: int, seconds: float, offset_s: float = 5.0) -> list[Leg]:
    """``count`` legs of ``seconds``: channels of a synthetic-calls folder (``audio/`` and ``refs/``), or real
    clips of a Kaldi folder (``text`` and ``wav.scp``) put one after another."""
    if (data / "refs").is_dir() and (data / "audio").is_dir():
        return _call_legs(data, count, seconds, offset_s)
    if (data / "text").is_file() and (data / "wav.scp").is_file():
        return _clip_legs(data, count, seconds)
    raise typer.BadParameter(f"需要合成通话目录（audio/ 与 refs/）或 Kaldi 目录（text 与 wav.scp）：{data}")


# A leg's measured CPU per audio second sets the rated load: legs per core that keep a core this busy, so that
# finals rarely queue behind one another (the rest absorbs bursts of speech on many legs at once).
RATED_UTILISATION = 0.7


def _set_name(data: Path) -> str:
    return f"{data.parent.name}/{data.name}"


def _bench_set(engine, data: Path, *, steps: list[str], seconds: float, limit_p95_s: float, hotwords: bool,
               cpu_legs: int, followers: int, cores: int) -> dict:
    """One audio set: its CPU cost and final CER, the rated load they give, then the load steps (``rated``: the
    rated load) until one fails the latency limit."""
    import math

    cost = cpu_cost(engine, _lexicon(hotwords), load_legs(data, cpu_legs, seconds))
    rated_per_core = math.floor(10 * RATED_UTILISATION / cost["cpu_per_audio_second"]) / 10
    rated = max(1, int(rated_per_core * cores))
    results, best = [], 0
    for n in sorted({rated if s == "rated" else int(s) for s in steps}):
        load = round(os.getloadavg()[0], 2)
        step = _run_step(followers, hotwords, load_legs(data, n, seconds), seconds)
        step["load_average_1m_at_start"] = load
        step["passed"] = step["final_latency_p95_s"] is not None and step["final_latency_p95_s"] <= limit_p95_s
        results.append(step)
        if not step["passed"]:
            break
        best = n
    first = results[0] if results else {}
    at_rated = next((s for s in results if s["legs"] == rated), None)
    return {
        "data": str(data),
        "cpu_cost": cost,
        "final_cer": cost["final_cer"],
        "rated_legs_per_core": rated_per_core,
        "rated_legs": rated,
        "rated_load_passed": at_rated["passed"] if at_rated else None,
        "partial_interval_p95_s": first.get("partial_interval_p95_s"),
        "final_latency_p50_s": first.get("final_latency_p50_s"),
        "final_latency_p95_s": first.get("final_latency_p95_s"),
        "max_legs_passing": best,
        "legs_per_core": round(best / cores, 2),
        "steps": results,
    }


def run_streaming_bench(
    data: list[Path], *, steps: list[str], seconds: float, limit_p95_s: float = 1.5, hotwords: bool = True,
    cpu_legs: int = 2, followers: int = 0,
) -> dict:
    """Each audio set in ``data`` measured and reported on its own (``sets``); the rated load published is the
    lowest of theirs."""
    from asr.engines import create_asr_engine
    from domain.settings import get_settings
    from eval.asr_bench import whisper_window

    settings = get_settings()
    followers = followers or settings.live_asr_followers
    engine = create_asr_engine(settings)
    cores = followers * settings.asr_threads
    load_before = os.getloadavg()[0]
    sets = {_set_name(d): _bench_set(engine, d, steps=steps, seconds=seconds, limit_p95_s=limit_p95_s,
                                     hotwords=hotwords, cpu_legs=cpu_legs, followers=followers, cores=cores)
            for d in data}
    rated = min(sets.values(), key=lambda r: r["rated_legs_per_core"])
    return {
        "benchmark": "streaming",
        "engine": engine.name,
        "device": f"{settings.asr_device} ({settings.asr_compute_type})",
        "live_window": whisper_window(engine),
        "decodes_ahead_per_pass": settings.live_decodes_ahead,
        "hotwords": hotwords,
        "seconds_per_step": seconds,
        "followers": followers,
        "cores": cores,
        "latency_limit_p95_s": limit_p95_s,
        "rated_utilisation": RATED_UTILISATION,
        "rated_legs_per_core": rated["rated_legs_per_core"],
        "rated_legs": rated["rated_legs"],
        "legs_per_core": min(r["legs_per_core"] for r in sets.values()),
        "machine_cores": os.cpu_count(),
        "load_average_1m_at_start": round(load_before, 2),
        "sets": sets,
    }


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("streaming")
    def streaming_command(
        data: list[Path] = typer.Option(..., "--data", exists=True, file_okay=False,
                                        help="音频集目录（合成通话或 Kaldi 目录），可重复，各自单独报告"),
        steps: str = typer.Option("rated", "--steps", help="逐级增加的并发通道数（rated：按实测 CPU 算出的额定负载）"),
        seconds: float = typer.Option(40.0, "--seconds", help="每级实时回放的秒数"),
        limit: float = typer.Option(1.5, "--limit", help="p95 时延上限（秒）"),
        no_hotwords: bool = typer.Option(False, "--no-hotwords", help="关闭热词"),
        cpu_legs: int = typer.Option(2, "--cpu-legs", help="测 CPU 开销与识别准确率时顺序回放的通道数"),
        followers: int = typer.Option(0, "--followers", help="ASR 跟随进程数（0：按配置，默认每核一个）"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
    ) -> None:
        """实时流式识别：各音频集的部分结果间隔、句末到最终结果时延、识别准确率、额定与实测每核通道数。"""
        from domain.json_output import emit

        step_list = [s.strip() for s in steps.split(",") if s.strip()]
        if not step_list or any(s != "rated" and not (s.isdigit() and int(s) > 0) for s in step_list):
            raise typer.BadParameter(f"--steps 须为正整数或 rated，以逗号分隔：{steps}")
        emit(run_streaming_bench(data, steps=step_list, seconds=seconds, limit_p95_s=limit,
                                 hotwords=not no_hotwords, cpu_legs=cpu_legs, followers=followers), json_out)
