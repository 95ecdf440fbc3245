"""One conversation's call flow inside a bridge worker: its SIP legs and what happens to them.

Inbound: block list / working hours -> IVR menu by DTMF (RFC 2833 or SIP
INFO) -> queue per skill group (music + position) -> ACD claim -> agent
softphone rings -> legs bridged in the conference bridge -> CDR, legs and
stereo recording at hang-up.  Outbound callbacks ring the agent first, then
the citizen with the service number as caller ID.  Operations (hold,
transfers, conference, supervision) rewire the conference bridge.

Everything here runs on the worker's main thread; ``self.w`` is the
:class:`telephony.worker.BridgeWorker`.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pjsua2 as pj

from domain import tenant_settings
from domain.call_events import CallState
from domain.models import Agent, utcnow
from telephony import store
from telephony.flow import classify_end
from telephony.prompts import MUSIC, wav_duration

if TYPE_CHECKING:
    from telephony.worker import BridgeWorker

log = logging.getLogger("telephony.conversation")
CONFIRMED = pj.PJSIP_INV_STATE_CONFIRMED
DISCONNECTED = pj.PJSIP_INV_STATE_DISCONNECTED


class Leg(pj.Call):
    """One SIP dialog of a conversation (the caller's, an agent's, or a third party's)."""

    def __init__(self, conv, role: str, acc, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.conv, self.role = conv, role
        self.media = None
        self.fork = None  # a ForkPool port while the leg is up
        self.fork_frames = 0
        self.wired = False
        self.rtp = {"rx_pkt": 0, "rx_loss": 0, "rx_discard": 0, "tx_pkt": 0}
        self.media_index = 0
        self.confirmed = False
        self.ended = False
        self.remote_uri = ""
        self.started_at = utcnow()

    def _guard(self, owner, fn, *args) -> None:
        """A failure in the call flow must not take the worker (and its other calls) down: log, release the call."""
        try:
            fn(*args)
        except Exception:
            log.exception("call flow error (%s leg)", self.role)
            try:
                owner.fail("internal_error")
            except Exception:
                log.exception("could not release the call")

    def onCallState(self, prm):
        info = self.getInfo()
        self.remote_uri = info.remoteUri
        if info.state == CONFIRMED:
            self.confirmed = True
            self._guard(self.conv, self.conv.on_leg_up, self)
        elif info.state == DISCONNECTED and not self.ended:
            self.ended = True
            self.media = None
            owner, self.conv = self.conv, None
            # The owner drops every reference to this leg here, so the pjsua2 Call object is destroyed inside
            # this callback, before pjsua can reuse its call slot (a late destructor would clear the new call's data).
            self._guard(owner, owner.on_leg_down, self, info.lastStatusCode)

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for i, mi in enumerate(info.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media = self.getAudioMedia(i)
                self.media_index = i
                self._guard(self.conv, self.conv.on_leg_media, self)

    def onDtmfDigit(self, prm):
        method = "sip_info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
        self._guard(self.conv, self.conv.on_dtmf, self, prm.digit, method)

    def poll_rtp(self) -> None:
        """Refresh RTP counters (the stream is gone once the call has disconnected)."""
        if self.ended or self.media is None:
            return
        try:
            st = self.getStreamStat(self.media_index).rtcp
        except pj.Error:
            return
        self.rtp = {"rx_pkt": st.rxStat.pkt, "rx_loss": st.rxStat.loss, "rx_discard": st.rxStat.discard,
                    "tx_pkt": st.txStat.pkt}

    def drop(self, code: int = 0) -> None:
        if self.ended:
            return
        self.poll_rtp()
        op = pj.CallOpParam(True)
        if code:
            op.statusCode = code
        try:
            self.hangup(op)
        except pj.Error:
            pass


class _GoneLeg:
    """Stands in for a leg that has ended (its pjsua2 object is already destroyed)."""

    ended, confirmed, media, fork, role = True, False, None, None, ""

    def drop(self, code: int = 0) -> None:
        pass


class _PendingLeg(_GoneLeg):
    """The citizen's leg of an outbound callback before it is dialled."""

    ended = False


GONE = _GoneLeg()
PENDING = _PendingLeg()


class Conversation:
    """The call flow of one call (caller leg + at most one agent leg + an optional third party)."""

    def __init__(self, worker: "BridgeWorker", caller_leg: Leg | None, caller: str, dialled: str,
                 direction: str = "in"):
        self.w = worker
        self.p = worker.params
        self.uuid = f"{worker.name}-{uuid.uuid4().hex[:16]}"
        self.direction = direction
        self.caller_leg = caller_leg or PENDING
        if caller_leg is not None:
            caller_leg.conv = self
        self.agent_leg: Leg | None = None
        self.extra_leg: Leg | None = None  # consult target, conference party or supervisor
        self.extra_mode = ""
        self.extra_agent: Agent | None = None
        self.answer_agent_id: int | None = None
        self.caller, self.dialled = caller, dialled
        self.state = "ringing"
        self.t0 = time.monotonic()
        self.ivr_path, self.skill = "", ""
        self.ivr_tries = 0
        self.t_queue: float | None = None
        self.agent: Agent | None = None
        self.agent_tried: set[int] = set()
        self.answered_at: datetime | None = None
        self.blocked = self.closed = False
        self.lost_reason, self.hangup_side = "", ""
        self.held_since: float | None = None
        self.hold_ms = 0
        self.transfers = 0
        self.player = None
        self.timers: list = []
        self.legs_done: list[dict] = []
        self.ended = False
        self.wait_ms = 0
        with worker.db() as s:
            self.call_id = store.create_call(s, worker.tenant, self.uuid, caller, dialled, direction)
            self.blocked = direction == "in" and store.is_blocked(s, worker.tenant, caller)
            # outside the tenant's working hours (its own clock) the closed prompt plays
            self.closed = direction == "in" and not tenant_settings.get(s, worker.tenant).time.is_working(utcnow())

    # ------------------------------------------------------------ helpers
    def publish(self, state: str, **detail) -> None:
        self.w.hub.publish(CallState(tenant_id=self.w.tenant, call_id=self.uuid, state=state, caller=self.caller,
                                     agent_id=self.agent.id if self.agent else None,
                                     detail={"call_db_id": self.call_id, **detail}))

    def set_state(self, state: str, **detail) -> None:
        self.state = state
        self.publish(state, **detail)

    def later(self, delay: float, fn) -> None:
        self.timers.append(self.w.sched.later(delay, lambda: None if self.ended else fn()))

    def cancel_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()

    def stop_player(self) -> None:
        if self.player is not None and self.caller_leg.media is not None:
            try:
                self.player.stopTransmit(self.caller_leg.media)
            except pj.Error:
                pass
        self.player = None

    def play(self, names: list[str], then=None, loop: bool = False) -> None:
        """Play prompts (or paths) to the caller; ``then`` runs when they end."""
        self.stop_player()
        if self.caller_leg.media is None:
            return
        paths = [str(n) if isinstance(n, Path) else str(self.w.prompts.path(n)) for n in names]
        player = pj.AudioMediaPlayer()
        opts = 0 if loop else pj.PJMEDIA_FILE_NO_LOOP
        if len(paths) == 1:
            player.createPlayer(paths[0], opts)
        else:
            player.createPlaylist(pj.StringVector(paths), "", opts)
        player.startTransmit(self.caller_leg.media)
        self.player = player
        if then is not None:
            self.later(sum(wav_duration(Path(p)) for p in paths) + 0.1, then)

    def release(self, reason_prompt: str, *, lost_reason: str = "") -> None:
        """Play a final prompt, then hang up from the system side."""
        self.cancel_timers()
        self.lost_reason = lost_reason
        self.play([reason_prompt], then=lambda: self.hangup_all("system"))

    def fail(self, reason: str) -> None:
        """An internal error: the system releases the call (counted as lost before an agent answered)."""
        self.lost_reason = self.lost_reason or reason
        self.hangup_all("system")
        self.maybe_finish()

    def hangup_all(self, side: str) -> None:
        if not self.hangup_side:
            self.hangup_side = side
        if self.caller_leg is PENDING:
            self.caller_leg = GONE
        for leg in (self.caller_leg, self.agent_leg, self.extra_leg):
            if leg is not None:
                leg.drop()

    # ------------------------------------------------------------ SIP events
    def on_incoming(self) -> None:
        self.caller_leg.answer(self._op(180))
        self.caller_leg.answer(self._op(200))

    @staticmethod
    def _op(code: int):
        op = pj.CallOpParam(True)
        op.statusCode = code
        return op

    def start_fork(self, leg: Leg, name: str) -> None:
        leg.fork = self.w.forks.acquire(self.uuid, name)
        leg.media.startTransmit(leg.fork)

    def on_leg_media(self, leg: Leg) -> None:
        if leg is self.caller_leg and leg.fork is None and self.direction == "in":
            self.w.hub.open_call(self.uuid)
            self.start_fork(leg, "caller")
            if self.blocked:
                self.release("blocked")
            elif self.closed:
                self.release("closed")
            else:
                self.set_state("ivr")
                self.play(["welcome", "menu"], then=self.ivr_wait)
        else:
            self.on_leg_up(leg)

    def on_leg_up(self, leg: Leg) -> None:
        """A dialled leg is answered and has media."""
        if not leg.confirmed or leg.media is None:
            return
        if leg is self.agent_leg and self.state == "alerting":
            if self.direction == "out" and self.caller_leg is PENDING:
                self.dial_citizen()
            elif self.direction == "in":
                self.bridge()
        elif leg is self.caller_leg and self.direction == "out" and leg.fork is None:
            self.start_fork(leg, "caller")
            self.bridge()
        elif leg is self.extra_leg and not leg.wired:
            self.connect_extra()

    def dial_citizen(self) -> None:
        """Outbound callback: the agent answered, now ring the citizen showing the service number."""
        self.w.hub.open_call(self.uuid)
        leg = self.w.dial(self, "caller", self.w.external_uri(self.caller), self.w.service_number)
        if leg is None:
            self.lost_reason = "no_call_slot"
            self.hangup_all("system")
            return
        self.caller_leg = leg

    def on_dtmf(self, leg: Leg, digit: str, method: str) -> None:
        self.publish(self.state if self.state != "ringing" else "ivr", dtmf=digit, method=method)
        if leg is not self.caller_leg or self.state != "ivr":
            return
        self.cancel_timers()
        self.ivr_path += digit
        with self.w.db() as s:
            skill = store.skill_for_digit(s, self.w.tenant, digit)
        if skill:
            self.enqueue(skill)
        else:
            self.play(["invalid", "menu"], then=self.ivr_wait)

    def on_leg_down(self, leg: Leg, status: int) -> None:
        self.legs_done.append(_leg_row(self.w, leg))
        if leg is self.caller_leg:
            self.caller_leg = GONE
            self.hangup_all("caller")
        elif leg is self.agent_leg:
            self.agent_leg = GONE
            self.agent_leg_down(status)
        elif leg is self.extra_leg:
            self.extra_leg = None
            self.extra_mode = ""
            if self.extra_agent is not None:
                with self.w.db() as s:
                    store.release_agent(s, self.extra_agent.id, "ready")
                self.extra_agent = None
            if self.state == "talking":
                self.connect_talk()
        self.maybe_finish()

    # ------------------------------------------------------------ IVR and queue
    def ivr_wait(self) -> None:
        def timeout():
            self.ivr_tries += 1
            if self.ivr_tries > self.p.ivr_retries:
                self.enqueue(self.p.default_skill)
            else:
                self.play(["menu"], then=self.ivr_wait)

        self.later(self.p.ivr_timeout_s, timeout)

    def enqueue(self, skill: str) -> None:
        self.cancel_timers()
        self.skill = skill
        if self.t_queue is None:
            self.t_queue = time.monotonic()
        with self.w.db() as s:
            store.set_status(s, self.call_id, "queued", skill_group=skill, ivr_path=self.ivr_path)
        self.set_state("queued", skill=skill)
        self.announce_position()
        self.later(self.p.max_queue_wait_s, lambda: self.state == "queued" and self.release("busy", lost_reason="queue_timeout"))

    def announce_position(self) -> None:
        if self.state != "queued":
            return
        with self.w.db() as s:
            pos = store.queue_position(s, self.w.tenant, self.skill, self.call_id)
        names = ["queue", self.w.prompts.position(pos)] if pos else ["queue"]
        self.play(names, then=lambda: self.state in ("queued", "alerting") and self.play([MUSIC], loop=True))
        self.later(self.p.position_every_s, self.announce_position)

    def try_claim(self, session) -> Agent | None:
        """Claim an agent if this call heads its skill group's queue (committed before the agent is dialled)."""
        if store.queue_position(session, self.w.tenant, self.skill, self.call_id) != 1:
            return None
        agent = store.claim_agent(session, self.w.tenant, self.skill, self.caller, self.p.acw_s, self.agent_tried)
        if agent is not None:
            store.set_status(session, self.call_id, "alerting", agent_id=agent.id)
        return agent

    def alert(self, agent: Agent) -> None:
        self.agent = agent
        self.agent_tried.add(agent.id)
        self.set_state("alerting", agent_id=agent.id, work_no=agent.work_no)
        self.agent_leg = self.w.dial(self, "agent", agent.sip_uri, self.caller)
        if self.agent_leg is None:
            self.agent_missed("dial_failed")
            return
        timer = self.w.sched.later(self.p.agent_ring_timeout_s,
                                   lambda: self.state == "alerting" and self.agent_leg and self.agent_leg.drop())
        self.timers.append(timer)

    def agent_missed(self, why: str) -> None:
        with self.w.db() as s:
            store.release_agent(s, self.agent.id, "not_ready")
            store.set_status(s, self.call_id, "queued", agent_id=None)
        self.publish("queued", skill=self.skill, agent_missed=self.agent.id, reason=why)
        self.agent, self.agent_leg = None, None
        self.state = "queued"

    def agent_leg_down(self, status: int) -> None:
        if self.direction == "out" and self.caller_leg is PENDING:
            self.lost_reason = f"agent_no_answer_sip_{status}"
            self.hangup_all("system")
            return
        if self.state == "alerting" and not self.caller_leg.ended:
            if self.agent is None:  # an external transfer target did not answer
                self.lost_reason = f"transfer_failed_sip_{status}"
                self.hangup_all("system")
                self.agent_leg = None
                return
            self.agent_missed(f"sip_{status}")
            return
        if self.state in ("talking", "held"):
            self.hangup_all("agent")

    # ------------------------------------------------------------ bridge and operations
    def bridge(self) -> None:
        self.cancel_timers()
        self.stop_player()
        a = self.agent_leg
        if a.fork is None:
            self.start_fork(a, "agent")
        if self.answered_at is None:
            self.answered_at = utcnow()
            self.answer_agent_id = self.agent.id if self.agent else None
            self.wait_ms = self.queue_wait_ms()
            with self.w.db() as s:
                store.set_status(s, self.call_id, "talking", answered_at=self.answered_at, queue_wait_ms=self.wait_ms)
        self.connect_talk()
        self.set_state("talking", agent_id=self.agent.id if self.agent else None)

    def connect_talk(self) -> None:
        a, c = self.agent_leg, self.caller_leg
        if a is None or a.media is None or c.media is None:
            return
        c.media.startTransmit(a.media)
        a.media.startTransmit(c.media)

    def connect_extra(self) -> None:
        """Wire the third party by mode: monitor (hears both), whisper (+ speaks to agent), barge/conference (everyone)."""
        x, a, c = self.extra_leg, self.agent_leg, self.caller_leg
        if x is None or x.media is None:
            return
        x.wired = True
        hears = (a,) if self.extra_mode == "consult" else (a, c)
        for src in hears:
            if src is not None and src.media is not None:
                src.media.startTransmit(x.media)
        if self.extra_mode in ("consult", "whisper", "barge", "conference") and a is not None and a.media is not None:
            x.media.startTransmit(a.media)
        if self.extra_mode in ("barge", "conference") and c.media is not None:
            x.media.startTransmit(c.media)
        self.publish(self.state, party=self.extra_mode)

    def queue_wait_ms(self) -> int:
        return int((time.monotonic() - self.t_queue) * 1000) if self.t_queue else 0

    def hold(self) -> None:
        a, c = self.agent_leg, self.caller_leg
        if self.state != "talking":
            raise RuntimeError("not_talking")
        c.media.stopTransmit(a.media)
        a.media.stopTransmit(c.media)
        self.held_since = time.monotonic()
        self.play([MUSIC], loop=True)
        self.set_state("held")

    def retrieve(self) -> None:
        if self.state != "held":
            raise RuntimeError("not_held")
        self.stop_player()
        self.hold_ms += int((time.monotonic() - self.held_since) * 1000)
        self.held_since = None
        self.connect_talk()
        self.set_state("talking")

    def blind_transfer(self, target_kind: str, target: str) -> None:
        """Hand the caller to a skill group queue, a specific agent, or an external number; the agent leaves."""
        if self.state not in ("talking", "held"):
            raise RuntimeError("not_talking")
        if target_kind == "skill":
            with self.w.db() as s:
                if not store.skill_exists(s, self.w.tenant, target):
                    raise RuntimeError("bad_target")
            uri, agent = "", None
        else:
            uri, agent = self.resolve(target_kind, target)
        if self.held_since is not None:
            self.hold_ms += int((time.monotonic() - self.held_since) * 1000)
            self.held_since = None
        old = self.agent_leg
        if old is not None and not old.ended:
            old.conv = Detached(self.w, self)  # its hang-up no longer drives this conversation
            self.w.detached.add(old)
            old.drop()
        if self.agent is not None:
            with self.w.db() as s:
                store.release_agent(s, self.agent.id, "acw" if self.p.acw_s else "ready")
        self.agent, self.agent_leg = None, None
        self.transfers += 1
        if target_kind == "skill":
            self.enqueue(target)
            return
        self.play(["transfer"], then=lambda: self.state == "alerting" and self.play([MUSIC], loop=True))
        if agent is not None:
            self.alert(agent)
            return
        self.state = "alerting"
        self.publish("alerting", transfer=target_kind)
        self.agent_leg = self.w.dial(self, "agent", uri, self.caller)
        if self.agent_leg is None:
            self.release("busy", lost_reason="no_call_slot")

    def resolve(self, target_kind: str, target: str) -> tuple[str, Agent | None]:
        """SIP URI of a transfer/conference target; an agent target is claimed (busy) here."""
        if target_kind == "agent":
            with self.w.db() as s:
                agent = store.claim_agent_by_work_no(s, self.w.tenant, target, self.p.acw_s)
            if agent is None:
                raise RuntimeError("agent_unavailable")
            return agent.sip_uri, agent
        if target_kind == "external":
            return self.w.external_uri(target), None
        if target_kind == "uri" and target.startswith("sip:"):
            return target, None
        raise RuntimeError("bad_target")

    def add_party(self, mode: str, target_kind: str = "uri", target: str = "") -> None:
        """Conference a third party in, consult one, or let a supervisor monitor / whisper / barge."""
        if self.state not in ("talking", "held"):
            raise RuntimeError("not_talking")
        if self.extra_leg is not None:
            raise RuntimeError("party_busy")
        if mode not in ("consult", "conference", "monitor", "whisper", "barge"):
            raise RuntimeError("bad_mode")
        uri, agent = self.resolve(target_kind, target)
        leg = self.w.dial(self, "party", uri, self.w.service_number)
        if leg is None:
            if agent is not None:
                with self.w.db() as s:
                    store.release_agent(s, agent.id, "ready")
            raise RuntimeError("no_call_slot")
        self.extra_leg, self.extra_mode, self.extra_agent = leg, mode, agent

    def consult(self, target_kind: str, target: str) -> None:
        """Attended transfer, step 1: the caller hears hold music while the agent talks to the target."""
        if self.state == "talking":
            self.hold()
        self.add_party("consult", target_kind, target)

    def complete_transfer(self) -> None:
        """Attended transfer, step 2: the consulted party takes over the caller; the agent leaves."""
        x = self.extra_leg
        if self.extra_mode != "consult" or x is None or x.media is None:
            raise RuntimeError("no_consult")
        old = self.agent_leg
        if old is not None and not old.ended:
            old.conv = Detached(self.w, self)
            self.w.detached.add(old)
            old.drop()
        if self.agent is not None:
            with self.w.db() as s:
                store.release_agent(s, self.agent.id, "acw" if self.p.acw_s else "ready")
        x.role = "agent"
        self.agent_leg, self.agent, self.extra_leg, self.extra_mode = x, self.extra_agent, None, ""
        self.extra_agent = None
        self.transfers += 1
        self.start_fork(x, "agent")
        self.retrieve()

    def cancel_consult(self) -> None:
        if self.extra_mode != "consult" or self.extra_leg is None:
            raise RuntimeError("no_consult")
        self.extra_leg.drop()

    def drop_party(self) -> None:
        if self.extra_leg is None:
            raise RuntimeError("no_party")
        self.extra_leg.drop()

    def set_party_mode(self, mode: str) -> None:
        """Switch a supervisor between monitor, whisper and barge without redialling."""
        if self.extra_leg is None or self.extra_leg.media is None or mode not in ("monitor", "whisper", "barge"):
            raise RuntimeError("no_party")
        x = self.extra_leg
        for dst in (self.agent_leg, self.caller_leg):
            if dst is not None and dst.media is not None:
                try:
                    x.media.stopTransmit(dst.media)
                except pj.Error:
                    pass
        self.extra_mode = mode
        self.connect_extra()

    # ------------------------------------------------------------ end of call
    def maybe_finish(self) -> None:
        if self.ended:
            return
        if not self.caller_leg.ended or (self.agent_leg is not None and not self.agent_leg.ended) or (
                self.extra_leg is not None and not self.extra_leg.ended):
            return
        self.ended = True
        self.cancel_timers()
        self.player = None
        answered = self.answered_at is not None
        result = classify_end(answered=answered, outbound=self.direction == "out", blocked=self.blocked, closed=self.closed,
                              lost_reason=self.lost_reason, hangup_side=self.hangup_side,
                              seconds_before_answer=time.monotonic() - self.t0, params=self.p)
        if self.held_since is not None:
            self.hold_ms += int((time.monotonic() - self.held_since) * 1000)
        lost_reason = self.lost_reason or ("system_hangup" if result == "lost" else "")
        call_id, worker, call_uuid = self.call_id, self.w, self.uuid
        agent_id, agent_state = (self.agent.id if self.agent else None), ("acw" if self.p.acw_s else "ready")
        cdr = dict(result=result, hangup_side=self.hangup_side or "caller", lost_reason=lost_reason,
                   ivr_path=self.ivr_path, skill=self.skill,
                   queue_wait_ms=self.wait_ms if answered else self.queue_wait_ms(), agent_id=self.answer_agent_id,
                   answered_at=self.answered_at, hold_ms=self.hold_ms, transfers=self.transfers, legs=self.legs_done)

        def write_cdr(s):
            if agent_id is not None:
                store.release_agent(s, agent_id, agent_state)
            store.finish_call(s, call_id, **cdr)

        def recorded(rec):  # spool thread
            if rec is not None:
                worker.persist(f"recording of {call_uuid}", lambda s: store.add_recording(
                    s, call_id, str(rec.path), rec.duration_ms, rec.sha256))

        self.w.persist(f"CDR of {call_uuid}", write_cdr)  # now, or retried later while the database is busy
        self.w.hub.close_call(call_uuid, recorded)  # the recording is finished whether or not the CDR is stored
        self.publish("ended", result=result, hangup_side=self.hangup_side, lost_reason=lost_reason)
        self.w.finished(self)

class Detached:
    """Owner of a leg no conversation drives any more (transferred away, or rejected while busy)."""

    def __init__(self, worker: "BridgeWorker", conv: Conversation | None = None):
        self.w, self.conv = worker, conv

    def on_leg_up(self, leg) -> None:
        pass

    def on_leg_media(self, leg) -> None:
        pass

    def on_dtmf(self, leg, digit, method) -> None:
        pass

    def fail(self, reason: str) -> None:
        pass

    def on_leg_down(self, leg, status) -> None:
        self.w.detached.discard(leg)
        row = _leg_row(self.w, leg)
        if self.conv is not None:
            self.conv.legs_done.append(row)


def _leg_row(worker: "BridgeWorker", leg: Leg) -> dict:
    """CDR row of an ended leg; returns its fork port to the pool."""
    if leg.fork is not None:
        leg.fork_frames = worker.forks.release(leg.fork)
        leg.fork = None
    if leg.role in ("caller", "agent"):
        totals = leg_totals[leg.role]
        totals["legs"] += 1
        totals["fork_frames"] += leg.fork_frames
        for k, v in leg.rtp.items():
            totals[f"rtp_{k}"] += v
    return {"leg": leg.role, "remote_uri": leg.remote_uri[:200], "started_at": leg.started_at, "ended_at": utcnow(),
            "frames_received": leg.fork_frames}


# ended caller/agent legs of this process: frames forked and RTP counters
leg_totals = {role: {"legs": 0, "fork_frames": 0, "rtp_rx_pkt": 0, "rtp_rx_loss": 0, "rtp_rx_discard": 0, "rtp_tx_pkt": 0}
              for role in ("caller", "agent")}
