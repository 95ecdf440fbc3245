"""Child process for the outbox crash test: does part of the SMS work, then kills itself with SIGKILL.

    python -m tests.tickets.sms_crash_child DB_URL GATEWAY_URL after_write|after_submit
"""
from __future__ import annotations

import os
import signal
import sys

from domain.db import make_db_engine, session_factory, session_scope
from domain.settings import Settings
from tickets.integrations.signing import KeyRing
from tickets.lifecycle import TicketDraft, create_ticket, transition
from tickets.notify import notify
from tickets.sms import HttpSmsGateway, send_due

RING = KeyRing("k1", {"k1": "sms-secret"})


def main(db_url: str, gateway_url: str, mode: str) -> None:
    engine = make_db_engine(db_url)
    if mode == "after_write":
        with session_scope(engine) as s:  # the ticket is completed; its SMS is written in the same transaction
            draft = TicketDraft(category="城乡建设/市政设施/路灯", phone="13800138000", summary="路灯不亮")
            ticket = create_ticket(s, 1, draft, actor="agent")
            for action, kw in (("dispatch", {"department": "市住建局"}), ("sign", {}),
                               ("complete", {"result": "已修复"})):
                event = transition(s, ticket, action, actor="agent", **kw)
                notify(s, ticket, event, Settings(sms_gateway_url=gateway_url))
        os.kill(os.getpid(), signal.SIGKILL)  # dies before anything is sent

    class DyingGateway(HttpSmsGateway):
        def submit(self, client_msg_id, phone, body):
            gateway_id = super().submit(client_msg_id, phone, body)
            os.kill(os.getpid(), signal.SIGKILL)  # the gateway accepted it; we die before recording that
            return gateway_id

    send_due(session_factory(engine), DyingGateway(gateway_url, RING))


if __name__ == "__main__":
    main(*sys.argv[1:4])
