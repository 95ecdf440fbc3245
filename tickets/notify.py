"""What a lifecycle event sets off, written in the same transaction as the event (the outboxes deliver it later):
the 办结 SMS to the caller, and the event for the 110 centre and the provincial platform where those links are on."""
from __future__ import annotations

from sqlalchemy.orm import Session

from domain.models import Ticket, TicketEvent
from tickets import sms
from tickets.integrations import exchange


def notify(session: Session, ticket: Ticket, event: TicketEvent, settings, skip: str = "") -> None:
    """Queue the side effects of ``event`` (except to ``skip``, the channel the event came from)."""
    if event.action == "complete":
        sms.result_notice(session, ticket, settings.sms_signature)
    exchange.publish(session, ticket, event, settings, skip=skip)
