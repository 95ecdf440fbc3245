"""Worker control channel: a loopback HTTP/JSON endpoint the operations API and the supervisor call.

Requests are queued to the worker's main thread (the only thread that touches
pjsua2) and answered when it has run them.

``GET /status`` -> worker snapshot.  ``POST /op`` with ``{"op": NAME, "tenant_id": ..., "call_uuid": ..., ...}``
runs one of :data:`OPS` on that conversation; the worker refuses a call of another tenant as not found.

Every request carries ``Authorization: Bearer <token>``, the secret in ``<data_dir>/telephony/control.token``
(created on first use, readable by its owner only): other users on the host cannot operate calls.
"""
from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from domain.secret_files import read_or_create

OPS = ("hold", "retrieve", "transfer", "consult", "complete_transfer", "cancel_consult", "add_party",
       "set_party_mode", "drop_party", "hangup", "originate")


def control_token(data_dir: Path) -> str:
    """The control channel's shared secret."""
    return read_or_create(Path(data_dir) / "telephony" / "control.token")


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class ControlServer:
    def __init__(self, worker, port: int, token: str):
        if not token:
            raise ValueError("control token required")
        self.worker = worker
        self._expected = f"Bearer {token}".encode()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="control", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def call_on_main(self, fn, timeout: float = 10.0) -> dict:
        done = threading.Event()
        box: dict = {}

        def reply(result):
            box.update(result)
            done.set()

        self.worker.commands.append((fn, reply))
        if not done.wait(timeout):
            return {"ok": False, "error": "timeout"}
        return box

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep worker logs quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body, ensure_ascii=False, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                given = self.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
                if hmac.compare_digest(given, server._expected):
                    return True
                self._send(401, {"ok": False, "error": "unauthorized"})
                return False

            def do_GET(self):
                if not self._authorized():
                    return
                if self.path != "/status":
                    self._send(404, {"ok": False, "error": "not_found"})
                    return
                self._send(200, server.call_on_main(server.worker.snapshot))

            def do_POST(self):
                try:
                    length = max(0, min(int(self.headers.get("Content-Length", 0)), 65536))
                except ValueError:
                    length = 0
                raw = self.rfile.read(length)  # before any answer: unread data would reset the connection
                if not self._authorized():
                    return
                try:
                    body = json.loads(raw or b"{}")
                    op = body.pop("op")
                    if op not in OPS or type(body.get("tenant_id")) is not int:
                        raise ValueError(op)
                except (ValueError, KeyError, TypeError, AttributeError):
                    self._send(400, {"ok": False, "error": "bad_request"})
                    return
                result = server.call_on_main(lambda: server.worker.operate(op, **body))
                self._send(200 if result.get("ok") else 409, result)

        return Handler


def worker_status(port: int, token: str, timeout: float = 3.0) -> dict:
    """The worker's snapshot; raises ``httpx.HTTPError`` when it is down or refuses the token."""
    reply = httpx.get(f"http://127.0.0.1:{port}/status", headers=_auth(token), timeout=timeout)
    reply.raise_for_status()
    return reply.json()


def worker_op(port: int, token: str, op: str, *, tenant_id: int, timeout: float = 10.0, **args) -> dict:
    """Run ``op`` on a call of ``tenant_id``; ``{"ok": False, "error": CODE}`` when the worker refuses it, and
    ``httpx.HTTPError`` when it is down or refuses the token."""
    reply = httpx.post(f"http://127.0.0.1:{port}/op", json={"op": op, "tenant_id": tenant_id, **args},
                       headers=_auth(token), timeout=timeout)
    if reply.status_code not in (200, 409):
        reply.raise_for_status()
    return reply.json()
