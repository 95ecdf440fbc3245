"""The live ASR follower: bridge spools in, transcript events out.

Bridge workers spool each leg's 8 kHz PCM to ``<data_dir>/recordings/spool/<call>/<leg>.pcm`` as it
arrives (``domain.spool``, written by ``telephony.media``).  An ASR follower process reads those files as they
grow, runs each leg through an :class:`asr.streaming.LegStream` (VAD endpointing, partials, finals) and
publishes what it hears.  The spool is the ASR queue: when decoding falls behind (35 calls on two cores), the audio waits
on disk and the follower catches up after the peak; a leg that is behind gets finals only.  When a call
has ended and every leg is read to the end, the follower publishes ``transcript.complete`` (post-call QA
scores on it) and removes the spool.

The bridge never waits on ASR, and a decoder crash cannot touch a call: followers are their own
processes, at the lowest CPU priority.  Several followers share the spools: each claims a call by creating
its ``asr.claim`` file (``O_EXCL``), at most one new call per pass, so a busy follower claims fewer; the
claim of a follower that died is taken over.  A follower replays an unfinished spool it takes over and
skips what was already published.

The follower does the cheap work per leg (reading, VAD endpointing, partial scheduling) and hands the
decodes to each leg's engine; in deployment that engine is the Ray Serve ASR deployment
(``serving.asr_service.RemoteEngine``), which batches across the legs of every host.  The process, its
engine and its publisher are wired by the entry point (``serving.pipeline``).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from asr.streaming import Decode, LegStream, decode_all
from domain.call_events import AudioFrame, Event, TranscriptComplete, TranscriptFinal
from domain.settings import Settings
from domain.spool import BYTES_PER_S, SAMPLE_RATE, LegReader, SpoolCall

log = logging.getLogger("hotline.pipeline")
PROGRESS = "asr-progress.json"  # per call: the last final published per leg, so a restart skips them
CLAIM = "asr.claim"  # per call: "<host> <pid>" of the follower transcribing it
PRESENCE_SUFFIX = "-followers"  # beside the spool root: each follower's "<host> <pid> …" and number of calls


class Publisher(Protocol):
    def publish(self, event: Event) -> None: ...


@dataclass(frozen=True)
class FollowerParams:
    poll_interval_s: float = 0.1  # an idle follower looks for new audio this often (the spool lags ≤ 0.1 s itself)
    chunk_ms: int = 100  # audio handed to a leg's stream at a time
    turn_ms: int = 3000  # at most this much audio of one leg per pass, so every leg advances
    live_lag_s: float = 2.0  # partials only while a leg is at most this far behind; a backlog gets finals only
    early_decodes_per_pass: int = 1  # decodes ahead of finals per pass (early finals of paused legs first, then
    # the most overdue partials): finals wait behind at most this many, and under load the CPU they take stays fixed
    nice: int = 19  # the follower process yields the CPU to the bridge workers
    status_interval_s: float = 1.0  # how often the status file is rewritten
    claim_recheck_s: float = 5.0  # how often calls claimed by other followers are checked for a dead claimer

    @classmethod
    def for_settings(cls, settings: Settings) -> FollowerParams:
        """The defaults, with the decodes ahead of finals the device calls for (``Settings.live_decodes_ahead``)."""
        return cls(early_decodes_per_pass=settings.live_decodes_ahead)


class _Leg(LegReader):
    def __init__(self, path: Path, stream: LegStream, published: int) -> None:
        super().__init__(path)
        self.stream = stream
        self.published = published  # finals up to this segment id went out before a restart


class _Call(SpoolCall):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        progress = directory / PROGRESS
        self.progress: dict[str, int] = json.loads(progress.read_text()) if progress.exists() else {}
        self.legs: dict[str, _Leg] = {}


class SpoolFollower:
    """Follows the call spools it claims under ``spool_root`` and publishes each leg's transcript to
    ``publisher`` (the bus, injected by the entry point)."""

    def __init__(self, spool_root: Path, publisher: Publisher, make_stream: Callable[[str, int, str], LegStream],
                 params: FollowerParams = FollowerParams()) -> None:
        self.root, self.publisher, self.make_stream = Path(spool_root), publisher, make_stream
        self.params = params
        self.calls: dict[str, _Call] = {}
        self.audio_s_done = 0.0
        self.calls_done = 0
        self._me = f"{socket.gethostname()} {os.getpid()} {id(self)}"
        self._tag = f"{os.getpid()}-{id(self)}"
        self._presence = self.root.parent / f"{self.root.name}{PRESENCE_SUFFIX}"  # one file per follower: its load
        self._announced, self._announced_at = -1, 0.0  # the load last published, and when
        self._others: set[str] = set()  # calls claimed by other followers
        self._others_checked = time.monotonic()

    def _claim(self, d: Path) -> bool:
        """Take a call: create its claim file, or take over the claim of a follower that died on this host."""
        path = d / CLAIM
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            if not _stale(path):
                return False
            path.unlink(missing_ok=True)  # a dead follower's claim; the O_EXCL retry settles a race to take it
            return self._claim(d)
        except FileNotFoundError:  # the spool went away
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(self._me)
        return True

    def _announce(self) -> None:
        """Publish how many calls this follower holds (when it changes, and every ``claim_recheck_s``), for the
        others' ``_least_loaded``."""
        now = time.time()
        if self._announced == len(self.calls) and now - self._announced_at < self.params.claim_recheck_s:
            return
        self._presence.mkdir(parents=True, exist_ok=True)
        tmp = self._presence / f".{self._tag}.tmp"
        tmp.write_text(f"{self._me}\n{len(self.calls)}")
        os.replace(tmp, self._presence / self._tag)
        self._announced, self._announced_at = len(self.calls), now

    def _least_loaded(self) -> bool:
        """No other live follower holds fewer calls: new calls go to the least loaded follower first.  A
        follower that has not announced itself for three ``claim_recheck_s`` is not counted."""
        fresh_after = time.time() - 3 * self.params.claim_recheck_s
        for path in self._presence.glob("*"):
            if path.name == self._tag or path.name.startswith("."):
                continue
            try:
                owner, count = path.read_text().split("\n")
                if path.stat().st_mtime > fresh_after and not _stale_owner(owner) and int(count) < len(self.calls):
                    return False
            except (OSError, ValueError):  # replaced or removed meanwhile
                continue
        return True

    def _withdraw(self) -> None:
        (self._presence / self._tag).unlink(missing_ok=True)

    def _discover(self) -> None:
        if not self.root.exists():
            return
        now = time.monotonic()
        if now - self._others_checked > self.params.claim_recheck_s:  # look for claims of dead followers
            self._others, self._others_checked = set(), now
        self._announce()
        new = [d for d in sorted(self.root.iterdir())
               if d.name not in self.calls and d.name not in self._others and SpoolCall.ready(d)]
        for d in new if new and self._least_loaded() else []:  # at most one new call per pass
            if self._claim(d):
                try:
                    self.calls[d.name] = _Call(d)
                except (OSError, ValueError, KeyError):  # the bridge is creating it, or its meta.json is damaged
                    (d / CLAIM).unlink(missing_ok=True)
                    self._others.add(d.name)
                    continue
                self._announce()
                break
            self._others.add(d.name)
        for call in self.calls.values():
            for pcm in call.leg_paths():
                if pcm.stem not in call.legs:
                    call.legs[pcm.stem] = _Leg(pcm, self.make_stream(call.uuid, call.tenant_id, pcm.stem),
                                               call.progress.get(pcm.stem, 0))

    def backlog_s(self) -> float:
        return sum(leg.pending_bytes() for call in self.calls.values() for leg in call.legs.values()) / BYTES_PER_S

    def poll(self) -> float:
        """One pass over every call: feed each leg up to ``turn_ms`` of new audio and decode the finals it ended
        (every leg's in one batch), finish ended calls, then make a few decodes ahead of finals.  Returns the
        seconds of audio read."""
        self._discover()
        chunk = self.params.chunk_ms * BYTES_PER_S // 1000
        turn = self.params.turn_ms * BYTES_PER_S // 1000
        read = 0
        live: list[tuple[_Call, str, _Leg]] = []
        finals: list[tuple[_Call, str, _Leg, Decode]] = []
        drained: list[_Call] = []
        for name in list(self.calls):
            call = self.calls[name]
            ended = call.ended()  # checked before reading: marked after the PCM is complete
            try:
                for leg_name, leg in call.legs.items():
                    pending = leg.pending_bytes()
                    if not ended and pending / BYTES_PER_S <= self.params.live_lag_s:  # partials are for a live call
                        live.append((call, leg_name, leg))
                    todo = min(pending, turn) if ended else min(pending, turn) // chunk * chunk
                    while todo > 0:
                        data = leg.read(min(chunk, todo))
                        if not data:
                            break
                        todo -= len(data)
                        read += len(data)
                        leg.stream.feed(AudioFrame.model_construct(tenant_id=call.tenant_id, call_id=call.uuid,
                                                                   leg=leg_name, sample_rate=SAMPLE_RATE, pcm=data))
                    finals += [(call, leg_name, leg, d) for d in leg.stream.take_finals()]
                if ended and all(leg.pending_bytes() == 0 for leg in call.legs.values()):
                    drained.append(call)
            except Exception:  # noqa: BLE001 - a damaged spool, say: retry this call later, from its spool
                self._retry_later(call)
        self._decode(finals, ahead=False)
        for call in drained:
            if call.dir.name in self.calls:
                try:
                    self._finish(call)
                except Exception:  # noqa: BLE001 - e.g. the bus is down
                    self._retry_later(call)
        # Then a few decodes ahead of finals: early finals of legs whose speaker has paused (the decode their final
        # will reuse), then the most overdue partials.  No final waits behind more than one such batch, and under
        # load they thin out evenly across legs while finals stay on time.
        live = [(call, leg_name, leg) for call, leg_name, leg in live if call.dir.name in self.calls]
        early = [(call, leg_name, leg, leg.stream.early_final_request) for call, leg_name, leg in live
                 if leg.stream.early_final_due()]
        due = [(leg.stream.partial_overdue_ms(), call, leg_name, leg) for call, leg_name, leg in live]
        due = sorted((d for d in due if d[0] >= 0), key=lambda d: -d[0])
        work = early + [(call, leg_name, leg, leg.stream.partial_request) for _, call, leg_name, leg in due]
        self._decode([(call, leg_name, leg, request()) for call, leg_name, leg, request in
                      work[: self.params.early_decodes_per_pass]], ahead=True)
        self.audio_s_done += read / BYTES_PER_S
        return read / BYTES_PER_S

    def _decode(self, work: list[tuple[_Call, str, _Leg, Decode]], *, ahead: bool) -> None:
        """Decode the requests of all legs in batches and publish what they give.  A final that fails sends its
        call back to be retried from its spool; an early final or partial that fails is superseded by the next
        partial, or decoded again at the endpoint."""
        if not work:
            return
        try:
            done = decode_all([request for *_, request in work])
        except Exception:  # noqa: BLE001
            log.exception("decoding %d utterances failed", len(work))
            if not ahead:
                for call in {id(call): call for call, *_ in work}.values():
                    self._retry_later(call)
            return
        for (call, leg_name, leg, _), (_, events) in zip(work, done):
            if call.dir.name not in self.calls:
                continue  # failed earlier in this pass
            try:
                self._publish(call, leg_name, leg, events)
            except Exception:  # noqa: BLE001 - e.g. the bus is down
                if ahead:
                    log.exception("publishing a partial of %s failed", call.uuid)
                else:
                    self._retry_later(call)

    def _retry_later(self, call: _Call) -> None:
        """Drop a call whose transcription failed; it is claimed again and replayed from its spool."""
        log.exception("transcribing %s failed; retrying from its spool", call.dir.name)
        self._forget(call)
        (call.dir / CLAIM).unlink(missing_ok=True)
        self._others.add(call.dir.name)  # not before the next claim re-check

    def _publish(self, call: _Call, leg_name: str, leg: _Leg, events: list[Event]) -> None:
        for event in events:
            final = isinstance(event, TranscriptFinal)
            if leg.stream.segments_published < leg.published or (final and event.segment_id <= leg.published):
                continue  # published before a restart
            self.publisher.publish(event)
            if final:
                call.progress[leg_name] = event.segment_id
                tmp = call.dir / f"{PROGRESS}.tmp"
                tmp.write_text(json.dumps(call.progress))
                os.replace(tmp, call.dir / PROGRESS)

    def _finish(self, call: _Call) -> None:
        for leg_name, leg in call.legs.items():
            self._publish(call, leg_name, leg, leg.stream.flush())
        segments = sum(leg.stream.segments_published for leg in call.legs.values())
        self.publisher.publish(TranscriptComplete(tenant_id=call.tenant_id, call_id=call.uuid, segments=segments))
        self._forget(call)
        call.remove()
        self.calls_done += 1

    def _forget(self, call: _Call) -> None:
        for leg in call.legs.values():
            leg.close()
        self.calls.pop(call.dir.name, None)

    def status(self) -> dict:
        return {"pid": os.getpid(), "calls": len(self.calls),
                "legs": sum(len(c.legs) for c in self.calls.values()), "backlog_s": round(self.backlog_s(), 2),
                "audio_s_done": round(self.audio_s_done, 1), "calls_done": self.calls_done, "updated": time.time()}

    def run(self, stop: threading.Event, status_path: Path | None = None) -> None:
        last_status = 0.0
        while not stop.is_set():
            busy = self.poll() > 0
            if status_path is not None and time.monotonic() - last_status >= self.params.status_interval_s:
                last_status = time.monotonic()
                tmp = status_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.status()))
                os.replace(tmp, status_path)
            if not busy:
                stop.wait(self.params.poll_interval_s)
        self._withdraw()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(claim: Path) -> bool:
    """A claim left by a follower process that has died on this host."""
    try:
        return _stale_owner(claim.read_text())
    except (OSError, ValueError):
        return False


def _stale_owner(owner: str) -> bool:
    """``owner`` ("<host> <pid> …") is a follower process that has died on this host."""
    host, pid, *_ = owner.split()
    return host == socket.gethostname() and not _alive(int(pid))
