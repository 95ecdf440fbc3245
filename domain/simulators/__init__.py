"""Local simulators of the systems the hotline talks to (SMS gateway, 110 centre, provincial 12345 platform).

They are small real HTTP servers, used by the tests and the demo; :class:`LocalServer` runs one on a loopback
ephemeral port in a background thread.
"""
from __future__ import annotations

import threading
import time

import uvicorn


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
