"""Simulator of an exchange peer: the city's 110 centre (``name="police110"``) or the provincial 12345 platform
(``name="provincial"``). Both speak the protocol of :mod:`tickets.integrations.exchange`.

Inbound (hotline → peer): ``POST /api/v1/events`` (signed; deduplicated by ``event_id``) and, for
reconciliation, ``GET /api/v1/orders?since=`` (the peer's view of each order). Outbound (peer → hotline):
:meth:`ExchangePeerSim.send` posts signed events to ``/api/hooks/<name>/events``; :meth:`capacity` queries the
city's agent capacity. Fault injection: ``fail_next`` (503s), ``delay_s`` (slow answers, for timeouts),
``lose_ack_next`` (apply, then answer 503 so the sender retries a delivered event) and ``forget_next`` (answer
200 but drop the event, for reconciliation).
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from tickets.integrations.signing import KeyRing, sign, verify
from tickets.simulators import SignedPeer


class ExchangePeerSim(SignedPeer):
    def __init__(self, name: str, ring: KeyRing, city_url: str = ""):
        super().__init__(ring, f"{name} simulator")  # shared keys: verify what the hotline sends, sign what we send
        self.name = name
        self.city_url = city_url
        self.lose_ack_next = 0
        self.forget_next = 0
        self.events: list[dict] = []  # unique events received, in arrival order
        self.duplicates = 0
        self.orders: dict[str, dict] = {}  # order_id → {"state", "seq", "ticket", "types"}
        self._seen: set[str] = set()
        self._out_seq: dict[str, int] = defaultdict(int)
        self._routes()

    # ------------------------------------------------------------ hotline → peer
    def _routes(self) -> None:
        app = self.app

        @app.post("/api/v1/events")
        async def receive(request: Request):
            body, refused = await self.admit(request, "系统繁忙")
            if refused:
                return refused
            event = json.loads(body)
            with self._lock:
                if event["event_id"] in self._seen:
                    self.duplicates += 1
                    return {"status": "duplicate"}
                if self.forget_next > 0:
                    self.forget_next -= 1
                    return {"status": "accepted"}
                self._seen.add(event["event_id"])
                self.events.append(event)
                order = self.orders.setdefault(event["order_id"], {"state": "", "seq": 0, "ticket": {}, "types": []})
                order["types"].append(event["type"])
                if event["seq"] > order["seq"]:
                    order["seq"] = event["seq"]
                    if event.get("ticket"):
                        order["ticket"] = event["ticket"]
                        order["state"] = event["ticket"].get("state", "")
                if self.lose_ack_next > 0:
                    self.lose_ack_next -= 1
                    return JSONResponse({"error": {"code": "unavailable", "message": "应答丢失"}}, status_code=503)
            return {"status": "accepted"}

        @app.get("/api/v1/orders")
        async def orders(request: Request, since: str = ""):
            verify(self.ring, "GET", "/api/v1/orders", await request.body(), request.headers)
            return {"orders": [{"order_id": oid, "state": o["state"], "seq": o["seq"]} for oid, o in self.orders.items()]}

    # ------------------------------------------------------------ peer → hotline
    def send(self, order_id: str, kind: str, seq: int | None = None, ring: KeyRing | None = None,
             event_id: str | None = None, **fields) -> httpx.Response:
        """Post one signed event about ``order_id`` (seq defaults to this peer's next one for the order)."""
        if seq is None:
            self._out_seq[order_id] += 1
            seq = self._out_seq[order_id]
        event = {"event_id": event_id or f"{self.name}-{order_id}-{seq}", "type": kind, "order_id": order_id,
                 "seq": seq, "occurred_at": datetime.now(timezone.utc).isoformat(), **fields}
        path = f"/api/hooks/{self.name}/events"
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **sign(ring or self.ring, "POST", path, body)}
        return httpx.post(self.city_url + path, content=body, headers=headers, timeout=10)

    def capacity(self) -> httpx.Response:
        path = "/api/hooks/provincial/capacity"
        return httpx.get(self.city_url + path, headers=sign(self.ring, "GET", path, b""), timeout=10)
