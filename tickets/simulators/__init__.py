"""Local simulators of the systems the hotline talks to (SMS gateway, 110 centre, provincial 12345 platform).

They are small real HTTP servers, used by the tests and the demo; :class:`SignedPeer` is what they share (signed
requests, injected faults) and :class:`LocalServer` runs one on a loopback ephemeral port in a background thread.
"""
from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from domain.errors import AppError
from tickets.integrations.signing import KeyRing, verify


class SignedPeer:
    """A simulated system that takes signed requests: the key ring that verifies them, fault injection
    (``fail_next`` requests answered 503, ``delay_s`` late answers for timeouts) and its FastAPI ``app``, which
    answers a bad signature as the hotline does."""

    def __init__(self, ring: KeyRing, title: str):
        self.ring = ring
        self.fail_next = 0
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self.app = FastAPI(title=title)

        @self.app.exception_handler(AppError)
        async def app_error(_request: Request, exc: AppError):
            return JSONResponse(exc.to_dict(), status_code=exc.status)

    async def admit(self, request: Request, busy: str) -> tuple[bytes, JSONResponse | None]:
        """The verified body of a signed POST, and the 503 answer (message ``busy``) when a failure is injected."""
        body = await request.body()
        verify(self.ring, "POST", request.url.path, body, request.headers)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next > 0:
            self.fail_next -= 1
            return body, JSONResponse({"error": {"code": "unavailable", "message": busy}}, status_code=503)
        return body, None


class LocalServer:
    """Run an ASGI app with uvicorn on 127.0.0.1 (port 0 = ephemeral) until ``stop()``; usable as a context manager."""

    def __init__(self, app, port: int = 0):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "LocalServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("simulator failed to start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
