"""SMS gateway simulator: accepts ``POST /sms/send`` (HMAC-signed), "delivers" to simulated handsets once per
client message id, and pushes signed delivery receipts to the hotline's receipt webhook.

Per-number outcomes model the contract's exclusions (空号 EMPTY, 停机 SUSPEND, 关机 POWEROFF, 终端异常 ABNORMAL);
``fail_next`` and ``delay_s`` inject gateway outages and timeouts; ``duplicate_receipts`` sends each receipt twice.
"""
from __future__ import annotations

import itertools
import json

import httpx
from fastapi import BackgroundTasks, Request
from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt

from tickets.integrations.signing import KeyRing, sign
from tickets.simulators import SignedPeer


class SmsGatewaySim(SignedPeer):
    def __init__(self, ring: KeyRing, receipt_url: str = "", receipt_ring: KeyRing | None = None,
                 outcomes: dict[str, str] | None = None):
        super().__init__(ring, "SMS gateway simulator")
        self.receipt_url = receipt_url  # full URL of the hotline's /api/hooks/sms/receipts
        self.receipt_ring = receipt_ring or ring
        self.outcomes = outcomes or {}
        self.duplicate_receipts = False
        self.messages: dict[str, dict] = {}  # client_msg_id → accepted message
        self.handset_deliveries: list[str] = []  # client_msg_ids that reached a handset (once each)
        self.receipt_failures: list[dict] = []
        self._ids = itertools.count(1)
        self._routes()

    def _routes(self) -> None:
        app = self.app

        @app.post("/sms/send")
        async def send(request: Request, background: BackgroundTasks):
            body, refused = await self.admit(request, "网关繁忙")
            if refused:
                return refused
            data = json.loads(body)
            with self._lock:
                existing = self.messages.get(data["client_msg_id"])
                if existing is None:
                    existing = {"msg_id": f"GW{next(self._ids):08d}", "phone": data["phone"], "text": data["text"]}
                    self.messages[data["client_msg_id"]] = existing
                    self.handset_deliveries.append(data["client_msg_id"])
                    code = self.outcomes.get(data["phone"], "DELIVRD")
                    if self.receipt_url:
                        receipt = {"client_msg_id": data["client_msg_id"], "msg_id": existing["msg_id"], "status": code}
                        background.add_task(self._push_receipt, receipt)
            return {"msg_id": existing["msg_id"]}

    def _push_receipt(self, receipt: dict) -> None:
        body = json.dumps({"receipts": [receipt]}).encode()
        path = httpx.URL(self.receipt_url).path

        def post() -> httpx.Response:  # signed afresh for each attempt
            headers = {"Content-Type": "application/json", **sign(self.receipt_ring, "POST", path, body)}
            return httpx.post(self.receipt_url, content=body, headers=headers, timeout=5)

        attempts = Retrying(stop=stop_after_attempt(3), retry_error_callback=lambda _state: None,
                            retry=retry_if_exception_type(httpx.HTTPError) | retry_if_result(lambda r: not r.is_success))
        for _ in range(2 if self.duplicate_receipts else 1):
            if attempts(post) is None:
                self.receipt_failures.append(receipt)
