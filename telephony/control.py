"""Worker control channel: a loopback HTTP/JSON endpoint the operations API and the supervisor call.

Requests are queued to the worker's main thread (the only thread that touches
pjsua2) and answered when it has run them.

``GET /status`` -> worker snapshot.  ``POST /op`` with ``{"op": NAME, "call_uuid": ..., ...}``
runs one of :data:`OPS` on that conversation.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

OPS = ("hold", "retrieve", "transfer", "consult", "complete_transfer", "cancel_consult", "add_party",
       "set_party_mode", "drop_party", "hangup", "originate")


class ControlServer:
    def __init__(self, worker, port: int):
        self.worker = worker
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

            def do_GET(self):
                if self.path != "/status":
                    self._send(404, {"ok": False, "error": "not_found"})
                    return
                self._send(200, server.call_on_main(server.worker.snapshot))

            def do_POST(self):
                try:
                    length = min(int(self.headers.get("Content-Length", 0)), 65536)
                    body = json.loads(self.rfile.read(length) or b"{}")
                    op = body.pop("op")
                    if op not in OPS:
                        raise ValueError(op)
                except (ValueError, KeyError, TypeError):
                    self._send(400, {"ok": False, "error": "bad_request"})
                    return
                result = server.call_on_main(lambda: server.worker.operate(op, **body))
                self._send(200 if result.get("ok") else 409, result)

        return Handler


def worker_status(port: int, timeout: float = 3.0) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/status", timeout=timeout).json()


def worker_op(port: int, op: str, timeout: float = 10.0, **args) -> dict:
    return httpx.post(f"http://127.0.0.1:{port}/op", json={"op": op, **args}, timeout=timeout).json()
