"""The event bus: typed call events crossing threads, processes and (with Redis) machines.

* ``LocalBus`` (embedded default) fans events out inside the serving process and accepts
  events published by other local processes (bridge workers) over an authenticated Unix
  socket (``multiprocessing.connection``); no external service is needed.
* ``RedisBus`` uses a Redis stream, so publishers and subscribers may run on any machine.

Publishers call ``publish(event)`` from any thread; it never blocks on subscribers.
Subscribers get a ``Subscription``: a bounded queue they drain at their own pace.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Protocol

from domain.call_events import Event, parse_event

log = logging.getLogger("hotline.events")
SUBSCRIBER_QUEUE = 10_000


class Subscription:
    def __init__(self, bus: "LocalBus"):
        self._bus = bus
        self.queue: queue.Queue[Event] = queue.Queue(maxsize=SUBSCRIBER_QUEUE)
        self.dropped = 0

    def deliver(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:  # a stalled consumer must not stall calls
            self.dropped += 1

    def get(self, timeout: float | None = None) -> Event | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)


class AsyncSubscription(Subscription):
    """A subscription drained by a coroutine (a WebSocket), fed thread-safely into its event loop."""

    def __init__(self, bus: "LocalBus", loop: asyncio.AbstractEventLoop):
        super().__init__(bus)
        self._loop = loop
        self.aqueue: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)

    def deliver(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # loop closed: the WebSocket is gone
            self.close()

    def _put(self, event: Event) -> None:
        try:
            self.aqueue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next(self) -> Event:
        return await self.aqueue.get()


class Publisher(Protocol):
    def publish(self, event: Event) -> None: ...


class LocalBus:
    """In-process fan-out, optionally fed by other processes through a Unix socket."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._listener: Listener | None = None

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.deliver(event)

    def subscribe(self, loop: asyncio.AbstractEventLoop | None = None) -> Subscription:
        """A queue of every event from now on; pass ``loop`` to drain it from a coroutine."""
        sub = AsyncSubscription(self, loop) if loop is not None else Subscription(self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    # ------------------------------------------------------------ cross-process ingress
    def serve_socket(self, path: Path, authkey: bytes) -> None:
        """Accept events from local processes on ``path`` (a Unix socket)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._listener = Listener(str(path), family="AF_UNIX", authkey=authkey)
        threading.Thread(target=self._accept_loop, name="event-ingress", daemon=True).start()

    def _accept_loop(self) -> None:
        while self._listener is not None:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):
                if self._listener is None:
                    return
                log.warning("rejected an event publisher connection")
                continue
            threading.Thread(target=self._read_loop, args=(conn,), daemon=True).start()

    def _read_loop(self, conn) -> None:
        with conn:
            while True:
                try:
                    raw = conn.recv_bytes()
                except (EOFError, OSError):
                    return
                try:
                    self.publish(parse_event(raw))
                except ValueError:
                    log.warning("dropped a malformed event from a publisher")

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except FileNotFoundError:  # another server on this data dir already removed the socket
                pass


class SocketPublisher:
    """Publishes to a ``LocalBus`` in another process; reconnects if the server restarts."""

    def __init__(self, path: Path, authkey: bytes) -> None:
        self._path, self._authkey = str(path), authkey
        self._conn = None
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        data = event.model_dump_json().encode()
        with self._lock:
            for _attempt in range(2):
                try:
                    if self._conn is None:
                        self._conn = Client(self._path, family="AF_UNIX", authkey=self._authkey)
                    self._conn.send_bytes(data)
                    return
                except (OSError, EOFError, AuthenticationError):
                    self._conn = None
            log.warning("event bus unreachable; event %s for call %s not published", event.kind, event.call_id)


class RedisBus:
    """Redis stream ``hotline:events``: crosses machines; subscribers read from the tail."""

    STREAM = "hotline:events"
    MAXLEN = 100_000

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._local = LocalBus()
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()

    def publish(self, event: Event) -> None:
        self._redis.xadd(self.STREAM, {"e": event.model_dump_json()}, maxlen=self.MAXLEN, approximate=True)

    def subscribe(self, loop: asyncio.AbstractEventLoop | None = None) -> Subscription:
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_loop, name="redis-events", daemon=True)
            self._reader.start()
        return self._local.subscribe(loop)

    def _read_loop(self) -> None:
        last = "$"
        while not self._stop.is_set():
            for _stream, entries in self._redis.xread({self.STREAM: last}, block=500, count=500) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        self._local.publish(parse_event(fields[b"e"]))
                    except ValueError:
                        log.warning("dropped a malformed event from redis")

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2)
        self._redis.close()


def authkey_for(data_dir: Path) -> bytes:
    """The shared secret local publishers present; created on first use, readable by the owner only."""
    import secrets

    path = data_dir / "events.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def socket_path(data_dir: Path) -> Path:
    return data_dir / "events.sock"


def publisher_for(settings) -> Publisher:
    """What a bridge worker (or any other process) uses to publish."""
    if settings.event_bus == "redis":
        return RedisBus(settings.redis_url)
    return SocketPublisher(socket_path(settings.data_dir), authkey_for(settings.data_dir))
