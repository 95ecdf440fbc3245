"""One pass of the background work behind tickets: send due SMS, queue the day's ended calls for the province,
deliver the 110 and provincial outboxes, and raise SLA supervision (督办).

``hotline tickets worker`` runs it in a loop; several workers may run at once (claims are leased and use
``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from domain.models import Tenant, utcnow
from tickets import lifecycle, sms
from tickets.integrations import exchange
from tickets.integrations.outbox import SignedClient, deliver_due
from tickets.integrations.signing import keyring


def run_once(sessions: sessionmaker, settings, now: datetime | None = None) -> dict:
    now = now or utcnow()
    report: dict = {}
    if settings.sms_gateway_url:
        gateway = sms.HttpSmsGateway(settings.sms_gateway_url, keyring(settings, "sms"))
        try:
            report["sms"] = sms.send_due(sessions, gateway, now=now)
        finally:
            gateway.client.close()
    with sessions() as session, session.begin():
        report["calls_queued"] = exchange.publish_ended_calls(session, settings, since=now - timedelta(days=1), now=now)
    for channel in (exchange.POLICE110, exchange.PROVINCIAL):
        if exchange.enabled(settings, channel):
            url = settings.police110_url if channel == exchange.POLICE110 else settings.provincial_url
            client = SignedClient(url, keyring(settings, channel))
            try:
                report[channel] = deliver_due(sessions, channel, client, now=now)
            finally:
                client.close()
    with sessions() as session, session.begin():
        raised = []
        for tenant_id in session.scalars(select(Tenant.id)).all():
            policy = lifecycle.load_policy(settings, session, tenant_id)
            raised += [t.number for t, _ in lifecycle.supervise(session, tenant_id, now=now, policy=policy)]
        report["supervision_raised"] = raised
    return report
