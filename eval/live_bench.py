"""`hotline eval live`: N concurrent conversations through real bridge workers (and Kamailio when installed).

Each conversation has a caller UA and an agent softphone UA (pjsua2, 4 calls
per UA process) playing the caller (right) and agent (left) channels of the
synthetic calls.  Reports calls completed/dropped, RTP packets sent and
received per leg, frames forked, recordings, transcript segments (with the
live ASR followers on, the default), ASR latency and backlog, CPU per leg, and
the workers used.  After hang-up it waits (``--drain-timeout``) until the ASR
followers have caught up: on two cores they lag real time at 35 calls.  ``--kill-worker`` kills one worker half-way and
checks that no call on the others drops and new calls still connect.  ``--rolling-restart`` starts a rolling restart
(``Supervisor.rolling_restart``: each worker drained, restarted, re-enabled; then each ASR follower restarted) once
every call is answered, and checks that no call drops and no final is lost.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import typer

from domain.json_output import emit


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("live")
    def live(
        calls: int = typer.Option(4, min=1, max=200, help="并发对话数"),
        duration: float = typer.Option(60.0, min=5, help="每通对话的通话时长（秒，坐席接听起算）"),
        data: Path = typer.Option(None, help="评测数据目录（含 synthetic_calls/，或其本身）"),
        json_out: Path = typer.Option(None, "--json", help="结果 JSON 输出路径"),
        workers: int = typer.Option(0, help="桥接工作进程数（默认 ceil(calls/2)）"),
        kamailio: bool = typer.Option(True, help="经 Kamailio 调度（已安装时）"),
        kill_worker: bool = typer.Option(False, help="中途杀掉一个工作进程，验证其他通话不掉线、新呼叫改走存活进程"),
        asr: bool = typer.Option(True, help="实时转写（ASR 跟读进程读桥接缓存）；--no-asr 只录音"),
        followers: int = typer.Option(0, help="ASR 跟读进程数（默认每核一个）"),
        workdir: Path = typer.Option(None, help="工作目录（默认临时目录，结束后删除）"),
        drain_timeout: float = typer.Option(1800.0, min=0, help="挂机后等待 ASR 积压处理完的最长秒数"),
        rolling_restart: bool = typer.Option(False, help="全部接通后滚动重启所有工作进程与 ASR 跟读进程，验证不掉线、不丢转写"),
    ) -> None:
        """实时压测：N 路并发真实 SIP 对话。"""
        emit(run_live(calls=calls, duration=duration, data=data, workers=workers, kamailio=kamailio,
                      kill_worker=kill_worker, asr=asr, followers=followers, workdir=workdir,
                      drain_timeout=drain_timeout, rolling_restart=rolling_restart), json_out)


def _dialogue_dir(data: Path | None) -> Path:
    from domain.errors import AppError

    base = Path(data) if data else Path(__file__).resolve().parents[2] / "shared" / "data"
    for d in (base, base / "synthetic_calls"):
        if (d / "audio").is_dir() and (d / "refs").is_dir():
            return d
    raise AppError("no_data", f"未找到合成通话数据（audio/ 与 refs/）：{base}", 2)


def _prepare_audio(src: Path, out: Path, n: int, seconds: float) -> list[dict]:
    """Per conversation: caller (right) and agent (left) mono WAVs of >= ``seconds``, and the expected segments."""
    import numpy as np
    import soundfile as sf

    ids = sorted(p.stem for p in (src / "audio").glob("*.flac"))
    plans = []
    for i in range(n):
        chans, expected, t = {"agent": [], "caller": []}, {"agent": 0, "caller": 0}, 0.0
        k = i
        while t < seconds:
            did = ids[k % len(ids)]
            audio, sr = sf.read(src / "audio" / f"{did}.flac", dtype="int16")
            for seg in json.loads((src / "refs" / f"{did}.json").read_text()):
                if t + seg["end"] <= seconds:
                    expected[seg["speaker"]] += 1
            chans["agent"].append(audio[:, 0])
            chans["caller"].append(audio[:, 1])
            t += len(audio) / sr
            k += 1
        plan = {"number": f"1390000{i:04d}", "expected": expected}
        for leg, parts in chans.items():
            path = out / f"{leg}{i}.wav"
            sf.write(path, np.concatenate(parts), 8000, subtype="PCM_16")
            plan[f"{leg}_wav"] = str(path)
        plans.append(plan)
    return plans


def _listen(root: Path, engine):
    """Serve the embedded event bus on ``root`` with the segment writer on it, as ``hotline serve`` does;
    collect (TranscriptFinal, arrival time), each leg's first-audio time, and per call the hang-up time
    and the arrival of its ``transcript.complete``."""
    import threading

    from domain.call_events import CallState, TranscriptComplete, TranscriptFinal
    from serving.consumers import SegmentWriter
    from serving.event_bus import LocalBus, authkey_for, socket_path

    bus = LocalBus()
    bus.serve_socket(socket_path(root), authkey_for(root))
    SegmentWriter(bus, engine).start()
    sub = bus.subscribe()
    finals: list = []
    leg_start: dict = {}
    ended: dict = {}
    complete: dict = {}

    def drain():
        while True:
            event = sub.get(timeout=1.0)
            if isinstance(event, TranscriptFinal):
                finals.append((event, time.time()))
            elif isinstance(event, TranscriptComplete):
                complete[event.call_id] = time.time()
            elif isinstance(event, CallState):  # the caller leg is forked from "ivr" on, the agent's from "talking"
                leg = {"ivr": "caller", "talking": "agent"}.get(event.state)
                if leg:
                    leg_start.setdefault((event.call_id, leg), event.ts)
                if event.state == "ended":
                    ended[event.call_id] = event.ts

    threading.Thread(target=drain, name="bench-events", daemon=True).start()
    return bus, finals, leg_start, (ended, complete)


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _follower_status(root: Path, index: int) -> dict:
    from serving.pipeline import follower_status_path

    try:
        return json.loads(follower_status_path(root, index).read_text())
    except (OSError, ValueError):
        return {}


def _asr_backlog_s(root: Path, n_followers: int) -> float:
    return sum(_follower_status(root, i).get("backlog_s", 0.0) for i in range(n_followers))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def run_live(*, calls: int, duration: float, data: Path | None, workers: int = 0, kamailio: bool = True,
             kill_worker: bool = False, asr: bool = True, followers: int = 0, workdir: Path | None = None,
             drain_timeout: float = 1800.0, rolling_restart: bool = False) -> dict:
    from sqlalchemy import select

    from domain.db import make_db_engine, session_scope, upgrade
    from domain.models import Agent, Call, CallLeg, Recording, SkillGroup, TranscriptSegment
    from telephony import store
    from telephony.control import worker_status
    from telephony.flow import CallFlowParams
    from telephony.peer import Peer
    from telephony.supervisor import Supervisor

    src = _dialogue_dir(data)
    own_dir = workdir is None
    root = Path(workdir or tempfile.mkdtemp(prefix="hotline-live-"))
    (root / "audio").mkdir(parents=True, exist_ok=True)
    plans = _prepare_audio(src, root / "audio", calls, duration + 15)
    url = f"sqlite:///{root / 'live.db'}"
    upgrade(url)
    engine = make_db_engine(url)
    with session_scope(engine) as s:
        tenant = store.tenant_id(s, "laibin")
        s.add(SkillGroup(tenant_id=tenant, code="general", name="综合咨询", dtmf="1"))
    use_kamailio = kamailio and shutil.which("kamailio") is not None
    n_workers = workers or max(1, math.ceil(calls / 2)) + (1 if kill_worker or rolling_restart else 0)
    flow = CallFlowParams(ivr_timeout_s=3, ivr_retries=0, max_queue_wait_s=120, agent_ring_timeout_s=10)
    base = 26000
    # Workers publish call events and the ASR followers transcripts on the event bus of the data dir;
    # this process serves that bus and timestamps every final transcript as it arrives.
    bus, finals, leg_start, (call_ended, call_complete) = _listen(root, engine) if asr else (None, [], {}, ({}, {}))
    n_followers = (followers or os.cpu_count() or 1) if asr else 0
    live = None
    if asr:  # the ASR followers decode on the Ray deployment, as under `hotline serve`
        from domain.settings import get_settings
        from serving.pipeline import start_live

        live = start_live(get_settings())
    sup = Supervisor(n_workers, db_url=url, data_dir=root, sip_port=base, rtp_port=42000,
                     control_port=base + 1000, flow=flow.model_dump_json(),
                     live=live,
                     proxy_port=base - 2 if use_kamailio else 0, prefix="lw", asr_followers=n_followers,
                     trunks="127.0.0.1",  # the caller UAs play the carrier trunk: no per-source call limit
                     env={"HOTLINE_DATA_DIR": str(root), "HOTLINE_DATABASE_URL": url, "HOTLINE_EVENT_BUS": "memory"})
    uas: list[Peer] = []
    restarted: dict = {}
    benchmark_over = threading.Event()
    result: dict = {"calls": calls, "duration_s": duration, "workers": n_workers, "asr_followers": n_followers,
                    "kamailio": use_kamailio}
    try:
        t_setup = time.monotonic()
        sup.start()
        wav_map = root / "agent_wavs.json"
        wav_map.write_text(json.dumps({p["number"]: p["agent_wav"] for p in plans}))
        agent_uas, caller_uas = [], []
        for j in range(math.ceil(calls / 4)):
            users = [f"{7000 + 4 * j + k}" for k in range(4)]
            agent_uas.append(Peer(base + 2000 + 2 * j, 50000 + 400 * j, user=",".join(users), answer_wav_map=wav_map,
                                  answer_delay=0.5, log_path=root / f"agent-ua{j}.log", wait=False))
            caller_uas.append(Peer(base + 3000 + 2 * j, 60000 + 400 * j, user="caller", log_path=root / f"caller-ua{j}.log",
                                   wait=False))
        uas = agent_uas + caller_uas
        for ua in uas:
            ua.wait_ready()
        with session_scope(engine) as s:
            for j, ua in enumerate(agent_uas):
                for k in range(4):
                    work_no = f"{7000 + 4 * j + k}"
                    s.add(Agent(tenant_id=tenant, work_no=work_no, name=f"压测坐席{work_no}", skills=["general"],
                                sip_uri=f"sip:{work_no}@127.0.0.1:{ua.port}", state="ready"))
        if use_kamailio:
            time.sleep(2.5)  # dispatcher probes mark the workers active
        result["setup_s"] = round(time.monotonic() - t_setup, 1)

        statuses = {w.name: worker_status(w.control_port, sup.control_token)["result"] for w in sup.specs}
        cpu0 = {n: st["bridge_cpu_seconds"] for n, st in statuses.items()}
        proc_cpu0 = {n: st["cpu_seconds"] for n, st in statuses.items()}
        ua_cpu0 = {ua.proc.pid: _proc_cpu(ua.proc.pid) for ua in uas}
        targets = [f"sip:12345@127.0.0.1:{sup.proxy_port}"] if use_kamailio else [
            f"sip:12345@127.0.0.1:{w.sip_port}" for w in sup.specs]
        for i, plan in enumerate(plans):
            caller_uas[i // 4].call(f"c{i}", targets[i % len(targets)], wav=plan["caller_wav"], dtmf="1",
                                    dtmf_after=0.5, **{"from": plan["number"]})
            time.sleep(0.2)

        def call_len(i: int) -> float:
            """Under a rolling restart the calls end one after another (the last after ``duration``), so each
            worker in turn is drained while calls still run on it and on the others."""
            return duration * (i + 1) / calls if rolling_restart else duration

        answered: dict[int, float] = {}
        hung: set[int] = set()
        max_backlog = 0
        killed = None
        restart = None
        deadline = time.monotonic() + duration + 90
        last_sample = 0.0
        while len(hung) < calls and time.monotonic() < deadline:
            now = time.monotonic()
            for i, plan in enumerate(plans):
                if i not in answered:
                    for aua in agent_uas:
                        inc = [e for e in aua.find(ev="incoming") if e.get("caller") == plan["number"]]
                        if inc and aua.find(ev="state", id=inc[-1]["id"], state="CONFIRMED"):
                            answered[i] = now
                            break
                elif i not in hung and now - answered[i] >= call_len(i):
                    caller_uas[i // 4].send(op="hangup", id=f"c{i}")
                    hung.add(i)
                if i not in hung and caller_uas[i // 4].find(ev="ended", id=f"c{i}"):
                    hung.add(i)  # ended early: counted as dropped below
            if now - last_sample > 5:
                last_sample = now
                max_backlog = max(max_backlog, _asr_backlog_s(root, n_followers))
            if kill_worker and killed is None and len(answered) == calls and now - min(answered.values()) > duration / 2:
                with session_scope(engine) as s:
                    first = s.scalar(select(Call.call_uuid).where(Call.caller_number == plans[0]["number"]))
                killed = first.split("-")[0]
                sup.kill(killed)
            if rolling_restart and restart is None and len(answered) == calls:
                def run_restart() -> None:
                    try:
                        restarted.update(sup.rolling_restart(duration + 120))
                    except Exception as exc:  # noqa: BLE001 - reported in the result
                        restarted["error"] = repr(exc)
                    benchmark_over.wait()  # the processes it started die with this thread (die_with_parent)

                restart = threading.Thread(target=run_restart, name="rolling-restart", daemon=True)
                restart.start()
            time.sleep(0.2)
        for i in range(calls):
            if i not in hung:
                caller_uas[i // 4].send(op="hangup", id=f"c{i}")
        time.sleep(3)

        survivors_ok = None
        if kill_worker and killed:
            probe = Peer(base + 3990, 63000, user="probe", log_path=root / "probe.log")
            uas.append(probe)
            probe.call("p1", targets[0] if use_kamailio else f"sip:12345@127.0.0.1:{sup.specs[-1].sip_port}",
                       **{"from": "13999999999"})
            try:
                probe.state("p1", "CONFIRMED", timeout=15)
                survivors_ok = True
            except TimeoutError:
                survivors_ok = False
            probe.send(op="hangup", id="p1")
            sup.check()

        # queued audio is never dropped: wait (bounded) until the followers have transcribed every spool
        t_drain = time.monotonic()
        if restart is not None:  # the followers restart after the workers: ASR meanwhile is part of this wait
            while not restarted and restart.is_alive() and time.monotonic() - t_drain < drain_timeout:
                time.sleep(1)
        spool = root / "recordings" / "spool"
        while asr and time.monotonic() - t_drain < drain_timeout and spool.exists() and any(spool.iterdir()):
            max_backlog = max(max_backlog, _asr_backlog_s(root, n_followers))
            time.sleep(2)
        result["asr_drain_s"] = round(time.monotonic() - t_drain, 1)  # ASR lag behind the last hang-up
        result["spools_left"] = sum(1 for _ in spool.iterdir()) if spool.exists() else 0
        time.sleep(2 if asr else 0)  # the last finals travel over the event bus

        statuses = {}
        for w in sup.specs:
            try:
                statuses[w.name] = worker_status(w.control_port, sup.control_token)["result"]
            except Exception:  # noqa: BLE001
                pass
        ua_cpu = sum(_proc_cpu(ua.proc.pid) - ua_cpu0.get(ua.proc.pid, 0.0) for ua in uas)

        # ---------------------------------------------------------------- tally
        caller_end = {i: (caller_uas[i // 4].find(ev="ended", id=f"c{i}") or [{}])[-1] for i in range(calls)}
        agent_end = {}
        for i, plan in enumerate(plans):
            for aua in agent_uas:
                inc = [e for e in aua.find(ev="incoming") if e.get("caller") == plan["number"]]
                if inc:
                    agent_end[i] = (aua.find(ev="ended", id=inc[-1]["id"]) or [{}])[-1]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with session_scope(engine) as s:
                open_calls = s.query(Call).filter(Call.ended_at.is_(None)).count()
                recs = s.query(Recording).count()
                stored = s.query(TranscriptSegment).count()
            if open_calls == 0 and recs >= len(answered) and stored >= sum(1 for f, _ in finals if f.text):
                break
            time.sleep(0.5)
        with session_scope(engine) as s:
            rows = {c.caller_number: c for c in s.scalars(select(Call))}
            legs = list(s.scalars(select(CallLeg)))
            recordings = {r.call_id: r for r in s.scalars(select(Recording))}
            segments = list(s.scalars(select(TranscriptSegment)))
            completed, dropped, dropped_detail = 0, 0, []
            for i, plan in enumerate(plans):
                call = rows.get(plan["number"])
                early = caller_end[i] and i in answered and caller_end[i].get("duration_s", 0) < call_len(i) - 5
                on_killed = call is not None and killed and call.call_uuid.startswith(f"{killed}-")
                if call is not None and call.result == "answered" and call.hangup_side == "caller" and not early:
                    completed += 1
                else:
                    dropped += 1
                    dropped_detail.append({"number": plan["number"], "result": call.result if call else None,
                                           "lost_reason": call.lost_reason if call else "", "on_killed_worker": bool(on_killed),
                                           "caller_sip_end": {k: caller_end[i].get(k) for k in ("code", "reason", "duration_s")}})
            frames_rx = {leg: sum(x.frames_received for x in legs if x.leg == leg) for leg in ("caller", "agent")}
            # a recording is complete when it covers the call from answer by the bridge to hang-up
            # (within 3 %: it starts with the caller's media, after SIP set-up, which takes seconds on a starved machine)
            coverage = {c.id: recordings[c.id].duration_ms / 1000 / max((c.ended_at - c.started_at).total_seconds(), 1e-3)
                        for c in rows.values() if c.result == "answered" and c.id in recordings and c.ended_at}
            rec_ok = sum(1 for v in coverage.values() if v >= 0.97)
            # final-transcript latency: arrival time minus the wall-clock end of the speech it covers
            latencies = [arrived - (leg_start[(f.call_id, f.leg)] + f.end_ms / 1000)
                         for f, arrived in finals if (f.call_id, f.leg) in leg_start]
            workers_used = sorted({c.call_uuid.split("-")[0] for c in rows.values()})
        complete_lags = [call_complete[c] - t for c, t in call_ended.items() if c in call_complete]
        ended = {role: {k: sum(st["ended_legs"][role][k] for st in statuses.values()) for k in
                        ("legs", "fork_frames", "rtp_rx_pkt", "rtp_rx_loss", "rtp_rx_discard", "rtp_tx_pkt")} for role in ("caller", "agent")}
        bridge_cpu = sum(st["bridge_cpu_seconds"] - cpu0.get(n, 0.0) for n, st in statuses.items() if n != killed)
        sink_cpu = sum(st["cpu_seconds"] - proc_cpu0.get(n, 0.0) for n, st in statuses.items() if n != killed) - bridge_cpu
        leg_seconds = sum(st["leg_seconds_done"] for st in statuses.values())
        asr_cpu = sum(_proc_cpu(p.proc.pid) for p in sup.followers.values())
        asr_audio = sum(_follower_status(root, i).get("audio_s_done", 0.0) for i in range(n_followers))
        result.update({
            "completed": completed,
            "dropped": dropped,
            "dropped_detail": dropped_detail[:20],
            "killed_worker": killed,
            "rolling_restart": restarted or None,
            "new_call_after_kill_connected": survivors_ok,
            "frames": {
                "caller": {"sent_by_ua": sum(e.get("tx_pkt", 0) for e in caller_end.values()),
                           "rtp_received_by_bridge": ended["caller"]["rtp_rx_pkt"],
                           "rtp_lost_at_bridge": ended["caller"]["rtp_rx_loss"],
                           "jitter_buffer_discards_at_bridge": ended["caller"]["rtp_rx_discard"],
                           "forked_frames": frames_rx["caller"]},
                "agent": {"sent_by_ua": sum(e.get("tx_pkt", 0) for e in agent_end.values()),
                          "rtp_received_by_bridge": ended["agent"]["rtp_rx_pkt"],
                          "rtp_lost_at_bridge": ended["agent"]["rtp_rx_loss"],
                          "jitter_buffer_discards_at_bridge": ended["agent"]["rtp_rx_discard"],
                          "forked_frames": frames_rx["agent"]},
                "lost_at_uas": sum(e.get("rx_loss", 0) for e in list(caller_end.values()) + list(agent_end.values())),
            },
            "recordings_complete": rec_ok,
            "recording_coverage_min": round(min(coverage.values()), 4) if coverage else None,
            "transcript_segments": {"expected": sum(p["expected"]["caller"] + p["expected"]["agent"] for p in plans),
                                    "finals_published": len(finals), "stored": len(segments)},
            # the live lag: end of each utterance (as endpointed) -> its final published (docs/deployment.md)
            "final_latency_s": {"p50": _pct(latencies, 0.5), "p95": _pct(latencies, 0.95)},
            # hang-up -> transcript.complete (the whole transcript stored, post-call QA can start), per call
            "transcript_complete": {"calls": len(call_complete), "lag_s": {
                "p50": _pct(complete_lags, 0.5), "p95": _pct(complete_lags, 0.95),
                "max": round(max(complete_lags), 1) if complete_lags else None}},
            "asr_backlog_s_max": round(max_backlog, 1),  # audio seconds waiting in the spools for ASR, summed over legs
            "cpu": {
                "bridge_seconds": round(bridge_cpu, 1),
                "bridge_leg_seconds": round(leg_seconds, 1),
                "bridge_core_pct_per_leg": round(100 * bridge_cpu / leg_seconds, 3) if leg_seconds else None,
                "sink_seconds": round(sink_cpu, 1),  # the worker's frame/event hand-off thread
                "asr_seconds": round(asr_cpu, 1),
                "asr_audio_seconds": round(asr_audio, 1),
                # the followers' CPU per second of leg audio (silence and hold included): reading, VAD and
                # endpointing on the bridge host.  Decoding runs on the Ray ASR replicas and is not in it; its cost
                # per leg is `hotline eval streaming`'s cpu_cost (docs/deployment.md)
                "follower_cpu_per_leg_second": round(asr_cpu / asr_audio, 4) if asr_audio else None,
                "test_uas_seconds": round(ua_cpu, 1),
                "machine_cores": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            },
            "bridge_workers_used": len(workers_used),
        })
        return result
    finally:
        for ua in uas:
            ua.close()
        sup.stop()
        benchmark_over.set()
        if bus is not None:
            bus.close()
        engine.dispose()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
