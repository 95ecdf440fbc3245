"""Bridge worker: one process, one pjsua2 Endpoint, a B2BUA for up to two conversations.

The worker accepts calls (503 when full, so the dispatcher tries another
worker), runs the ACD poll over its queued conversations, executes control
commands, and owns the media fork (:mod:`telephony.conversation` has the
call flow itself).

Every SIP callback runs on the main thread (``Endpoint.libHandleEvents``);
media frames leave through :class:`telephony.media.FrameHub`.

Run: ``python -m telephony.worker --name w1 --sip-port 5070 --rtp-port 40000``.
"""
from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from pathlib import Path

import pjsua2 as pj
from sqlalchemy.exc import OperationalError

from domain.db import make_db_engine, session_scope
from domain.logs import configure_logging
from telephony import store
from telephony.conversation import Conversation, Detached, Leg, leg_totals
from telephony.flow import CallFlowParams, sip_user
from telephony.media import ForkPool, FrameHub, MediaSink, NullSink, renice_thread
from telephony.prompts import Prompts
from telephony.sip import MAX_CALLS, Scheduler, account_config, start_endpoint
from telephony.threadcpu import ThreadGroupClock, thread_ids

log = logging.getLogger("telephony.worker")
POLL_MS = 30  # SIP event poll; timers (IVR, queue, ring) fire with this granularity

class InboundAccount(pj.Account):
    def __init__(self, worker: "BridgeWorker"):
        super().__init__()
        self.w = worker

    def onIncomingCall(self, prm):
        try:
            self.w.incoming(prm)
        except Exception:  # the unanswered call is dropped with its Leg; the worker carries on
            log.exception("incoming call failed")


class BridgeWorker:
    def __init__(self, name: str, sip_port: int, rtp_port: int, *, db_url: str, data_dir: Path,
                 params: CallFlowParams, tenant_code: str, sink: MediaSink | None = None,
                 service_number: str = "12345", external_gateway: str = "", rtp_range: int = 40,
                 sink_threads: frozenset[int] = frozenset()):
        self.name, self.sip_port = name, sip_port
        self._sink_threads = set(sink_threads)  # threads of the sink and of the compute pools it uses
        self.params = params
        self.service_number = service_number
        self.external_gateway = external_gateway
        self.engine = make_db_engine(db_url)
        self.prompts = Prompts(data_dir / "prompts")
        with self.db() as s:
            self.tenant = store.tenant_id(s, tenant_code)
            recovered = store.mark_orphans(s, name, "worker_restart")
        if recovered:
            log.warning("marked %d calls of a previous %s run as ended", recovered, name)
        spool = data_dir / "recordings" / "spool"
        self.writes: queue.Queue = queue.Queue()  # end-of-call writes, done by the "db-writer" thread
        self._writer = threading.Thread(target=self._write_loop, name="db-writer", daemon=True)
        self._writer.start()
        self.hub = FrameHub(spool, sink or NullSink(), self.tenant)
        for tid in self._sink_threads:  # the hub renices its own sink thread
            renice_thread(tid, self.hub.params.sink_nice)
        self.forks = ForkPool(self.hub)
        self._recover_spools(spool)
        self.ep = start_endpoint(sip_port, user_agent=f"hotline-bridge/{name}")
        self.acc = InboundAccount(self)
        self.acc.create(account_config(service_number, sip_port, rtp_port, rtp_range))
        self.sched = Scheduler()
        self.convs: dict[str, Conversation] = {}
        self.detached: set[Leg] = set()  # legs kept alive until they disconnect (rejected, transferred away)
        self.commands: deque = deque()  # (fn, reply) posted by the control thread
        self.stats = {"calls": 0, "rejected_busy": 0, "cpu_start": time.process_time(), "t_start": time.monotonic(),
                      "leg_seconds": 0.0}
        self._stop = False

    def db(self):
        return session_scope(self.engine)

    def _recover_spools(self, spool_root: Path) -> None:
        """Finish recordings of calls a crashed run left in the spool (ended spools wait for the ASR follower)."""
        from domain.spool import finalize_spool, is_unfinished

        if not spool_root.exists():
            return
        for d in spool_root.iterdir():
            if d.name.startswith(f"{self.name}-") and is_unfinished(d):
                rec = finalize_spool(d, spool_root.parent / "recovered" / f"{d.name}.wav", keep=self.hub.keep_spools)
                with self.db() as s:
                    call = s.query(store.Call).filter_by(call_uuid=d.name).one_or_none()
                    if call is not None:
                        store.add_recording(s, call.id, str(rec.path), rec.duration_ms, rec.sha256)

    def external_uri(self, number: str) -> str:
        if number.startswith("sip:"):
            return number
        return f"sip:{number}@{self.external_gateway}"

    def calls_in_use(self) -> int:
        n = 0
        for c in self.convs.values():
            n += sum(1 for leg in (c.caller_leg, c.agent_leg, c.extra_leg) if leg is not None and not leg.ended)
        return n + len(self.detached)

    def incoming(self, prm) -> None:
        leg = Leg(Detached(self), "caller", self.acc, prm.callId)
        full = len(self.convs) >= self.params.conversations_per_worker or self.calls_in_use() + 2 > MAX_CALLS
        if full or self._stop:  # 503 lets the dispatcher try another worker; a stopping worker takes no new call
            self.stats["rejected_busy"] += 1
            leg.answer(Conversation._op(503))
            self.detached.add(leg)
            return
        info = leg.getInfo()
        conv = Conversation(self, leg, sip_user(info.remoteUri), sip_user(info.localUri))
        self.convs[conv.uuid] = conv
        self.stats["calls"] += 1
        conv.publish("ringing", dialled=conv.dialled)
        conv.on_incoming()

    def dial(self, conv: Conversation, role: str, uri: str, caller_id: str) -> Leg | None:
        if self.calls_in_use() >= MAX_CALLS:
            return None
        leg = Leg(conv, role, self.acc)
        op = pj.CallOpParam(True)
        hdr = pj.SipHeader()
        hdr.hName, hdr.hValue = "X-Hotline-Call", conv.uuid
        op.txOption.headers.append(hdr)
        hdr2 = pj.SipHeader()
        hdr2.hName, hdr2.hValue = "X-Hotline-Caller", caller_id
        op.txOption.headers.append(hdr2)
        try:
            leg.makeCall(uri, op)
        except pj.Error as exc:
            log.error("dial %s failed: %s", uri, exc.info())
            return None
        return leg

    def persist(self, what: str, write) -> None:
        """Queue a write a call's end depends on (CDR, recording row) for the worker's database thread, so
        SIP handling never waits on a commit (at a burst of hang-ups each one waits for the disk).  Any
        thread may call this; writes are done in order."""
        self.writes.put((what, write))

    def _write_loop(self) -> None:
        while True:
            item = self.writes.get()
            if item is None:
                return
            what, write = item
            for attempt in range(1, self.params.db_retry_attempts + 1):
                try:
                    with self.db() as s:
                        write(s)
                    break
                except OperationalError as exc:  # locked or unreachable: wait, then try again
                    delay = min(2.0 ** (attempt - 1), self.params.db_retry_max_s)
                    log.warning("%s: database busy (%s), try %d again in %.0f s", what, exc.orig, attempt + 1, delay)
                    time.sleep(delay)
                except Exception:  # noqa: BLE001 - a bad row must not stop the writes after it
                    log.exception("%s not stored", what)
                    break
            else:
                log.error("%s not stored after %d tries", what, self.params.db_retry_attempts)

    def finished(self, conv: Conversation) -> None:
        self.convs.pop(conv.uuid, None)
        self.stats["leg_seconds"] += sum(
            (leg["ended_at"] - leg["started_at"]).total_seconds() for leg in conv.legs_done if leg["leg"] in ("caller", "agent"))

    def operate(self, op: str, tenant_id: int, call_uuid: str = "", **args):
        """Run an agent/supervisor operation of ``tenant_id`` on a live conversation (main thread); another
        tenant's call is not found, and another tenant's callback is refused."""
        if tenant_id != self.tenant:
            raise RuntimeError("no_capacity" if op == "originate" else "call_not_found")
        if op == "originate":
            return self.originate(**args)
        if op not in ("hold", "retrieve", "transfer", "consult", "complete_transfer", "cancel_consult", "add_party",
                      "set_party_mode", "drop_party", "hangup"):
            raise RuntimeError("bad_op")
        conv = self.convs.get(call_uuid)
        if conv is None:
            raise RuntimeError("call_not_found")
        if op == "hangup":
            conv.hangup_all(args.get("side", "agent"))
        elif op == "transfer":
            conv.blind_transfer(**args)
        else:
            getattr(conv, op)(**args)
        return {"call_uuid": conv.uuid, "state": conv.state}

    def originate(self, work_no: str, number: str) -> dict:
        """Outbound callback (回访): ring the agent, then the citizen with the service number as caller ID."""
        if len(self.convs) >= self.params.conversations_per_worker or self.calls_in_use() + 2 > MAX_CALLS:
            raise RuntimeError("no_capacity")
        with self.db() as s:
            agent = store.claim_agent_for_callback(s, self.tenant, work_no)
        if agent is None:
            raise RuntimeError("agent_unavailable")
        conv = Conversation(self, None, caller=number, dialled=number, direction="out")
        conv.agent, conv.state = agent, "alerting"
        conv.agent_leg = self.dial(conv, "agent", agent.sip_uri, number)
        if conv.agent_leg is None:
            conv.lost_reason = "no_call_slot"
            conv.hangup_all("system")
            conv.maybe_finish()
            raise RuntimeError("no_call_slot")
        self.convs[conv.uuid] = conv
        conv.publish("alerting", direction="out", number=number)
        return {"call_uuid": conv.uuid}

    def acd_tick(self) -> None:
        queued = [c for c in self.convs.values() if c.state == "queued" and not c.ended]
        if not queued:
            return
        with self.db() as s:
            claims = [(conv, conv.try_claim(s)) for conv in queued]
        for conv, agent in claims:
            if agent is not None:
                conv.alert(agent)

    def poll_rtp(self) -> None:
        # (a helper, so no loop variable keeps a pjsua2 Call alive in run()'s frame)
        for conv in self.convs.values():
            for leg in (conv.caller_leg, conv.agent_leg):
                if isinstance(leg, Leg):
                    leg.poll_rtp()

    def snapshot(self) -> dict:
        cpu = time.process_time() - self.stats["cpu_start"]
        return {
            "name": self.name, "tenant_id": self.tenant, "sip_port": self.sip_port, "pid": os.getpid(),
            "conversations": [{"call_uuid": c.uuid, "state": c.state, "caller": c.caller,
                               "agent_id": c.agent.id if c.agent else None, "skill": c.skill, "party": c.extra_mode,
                               "direction": c.direction} for c in self.convs.values()],
            "calls_total": self.stats["calls"], "rejected_busy": self.stats["rejected_busy"],
            "cpu_seconds": round(cpu, 3),
            "bridge_cpu_seconds": round(self.bridge_clock.seconds(), 3),
            "uptime_s": round(time.monotonic() - self.stats["t_start"], 3),
            "leg_seconds_done": round(self.stats["leg_seconds"], 3),
            "frames_in": self.hub.frames_in,
            "backlog_frames": self.hub.backlog_frames(),
            "ended_legs": {role: dict(v) for role, v in leg_totals.items()},
        }

    def run(self, control_port: int = 0, max_seconds: float = 0, control_token: str = "") -> None:
        from telephony.control import ControlServer

        server = ControlServer(self, control_port, control_token) if control_port else None
        # The bridge's own threads: SIP/main, pjmedia clock and ioqueue, spool, control (snapshot() is only
        # reached through it).  The sink thread and whatever the sink starts (decoder pools, now or later)
        # are the consumer's cost, not the bridge's.
        self.bridge_clock = ThreadGroupClock(thread_ids() - self._sink_threads - {self.hub.sink_thread_id})
        deadline = time.monotonic() + max_seconds if max_seconds else None
        last_acd = last_gc = 0.0
        gc.disable()  # cyclic garbage (Call objects) is collected here, on the thread that owns pjsua2
        gc.freeze()  # startup objects never become garbage; a full collection of them costs ~50-100 ms
        try:
            while not self._stop and (deadline is None or time.monotonic() < deadline):
                self.ep.libHandleEvents(POLL_MS)
                if time.monotonic() - last_gc > 1.0:
                    last_gc = time.monotonic()
                    self.poll_rtp()
                    gc.collect()
                self.sched.run_due()
                while self.commands:
                    fn, reply = self.commands.popleft()
                    try:
                        reply({"ok": True, "result": fn()})
                    except Exception as exc:  # reported to the caller of the control API
                        reply({"ok": False, "error": str(exc)})
                if time.monotonic() - last_acd >= self.params.acd_poll_s:
                    last_acd = time.monotonic()
                    self.acd_tick()
        finally:
            if server:
                server.close()
            self.shutdown()

    def stop(self, *_):
        self._stop = True

    def shutdown(self) -> None:
        for conv in list(self.convs.values()):
            conv.lost_reason = conv.lost_reason or "worker_shutdown"
            conv.hangup_all("system")
        deadline = time.monotonic() + 3
        while self.convs and time.monotonic() < deadline:
            self.ep.libHandleEvents(20)
        self.hub.stop()  # after the spool thread has queued the last recording rows
        self.writes.put(None)
        self._writer.join(timeout=30)
        self.convs.clear()
        self.detached.clear()
        self.sched = Scheduler()
        self.forks.abandon()
        del self.acc
        gc.collect()
        self.ep.libDestroy()


def main(argv: list[str] | None = None, sink: MediaSink | None = None) -> None:
    """``python -m telephony.worker`` records only; the live path's entry point passes its ``sink``
    (``serving.pipeline``)."""
    from domain.settings import get_settings
    from telephony.control import control_token

    st = get_settings()
    ap = argparse.ArgumentParser(description="hotline bridge worker")
    ap.add_argument("--name", default="w1")
    ap.add_argument("--sip-port", type=int, default=st.sip_port)
    ap.add_argument("--rtp-port", type=int, default=st.rtp_port)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--db", default=st.sqlalchemy_url)
    ap.add_argument("--data-dir", type=Path, default=st.data_dir)
    ap.add_argument("--flow", default=st.telephony_flow, help="CallFlowParams as JSON")
    ap.add_argument("--max-seconds", type=float, default=0)
    args = ap.parse_args(argv)
    configure_logging(fmt=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    faulthandler.enable()  # a native crash leaves a Python traceback in the worker log
    params = CallFlowParams.model_validate_json(args.flow) if args.flow else CallFlowParams()
    # Every thread but this one so far belongs to the sink or to library pools it computes on (BLAS, OpenMP).
    library_threads = frozenset(thread_ids() - {threading.get_native_id()})
    worker = BridgeWorker(args.name, args.sip_port, args.rtp_port, db_url=args.db, data_dir=args.data_dir,
                          params=params, tenant_code=st.default_tenant, sink=sink,
                          external_gateway=st.telephony_gateway, sink_threads=library_threads)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    print(json.dumps({"event": "ready", "name": args.name, "sip_port": args.sip_port, "pid": os.getpid()}), flush=True)
    worker.run(args.control_port, args.max_seconds, control_token(args.data_dir) if args.control_port else "")


if __name__ == "__main__":
    main()
