"""Operations health: what `/readyz` checks and the operations gauges `/metrics` exports for the alert rules
in ``deploy/prometheus/alerts.yml`` (docs/operations.md says what to do about each alert).

Every value is read at scrape time from the source of truth (the database, the worker registry and the workers'
control channel, the spool directory, the file system), so a restarted API process reports the same figures.
Windows mirror the KPI definitions of ``qa.kpi``: 呼损率 = calls lost by the system / incoming calls; SMS
delivery = delivered / sent, without the numbers the carrier reports as empty, suspended or abnormal.
"""
from __future__ import annotations

import json
import shutil
import socket
import time
from datetime import timedelta, timezone
from pathlib import Path

import httpx
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from domain.models import Call, OutboxMessage, Queue, SkillGroup, SmsMessage, Tenant, utcnow
from domain.settings import Settings
from domain.spool import ENDED_MARKER
from telephony.control import control_token, worker_status
from telephony.supervisor import read_registry, registry_path

CALL_WINDOW = timedelta(minutes=15)
SMS_WINDOW = timedelta(hours=1)
SMS_EXCLUDED = ("empty_number", "suspended", "abnormal_handset", "queued")
READY_NAMES = {"database": "数据库", "redis": "Redis", "ray": "Ray 集群", "kamailio": "Kamailio", "bridge_workers": "桥接工作进程",
               "disk": "磁盘空间"}
DISK_MIN_FREE = 0.05  # /readyz fails below 5 % free on the data directory's file system


def disk_free_ratio(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return usage.free / usage.total


def _workers(settings: Settings) -> list[tuple[str, str, bool, int]]:
    """(name, state, answers, calls) per registered worker."""
    out = []
    token = control_token(settings.data_dir) if read_registry(settings.data_dir) else ""
    for w in read_registry(settings.data_dir):
        try:
            calls = len(worker_status(w.control_port, token, timeout=0.5)["result"]["conversations"])
            out.append((w.name, w.state, True, calls))
        except httpx.HTTPError:
            out.append((w.name, w.state, False, 0))
    return out


def _kamailio(settings: Settings) -> bool | None:
    """Whether the proxy answers on its SIP port (an OPTIONS ping over UDP); None when none is run here."""
    if not registry_path(settings.data_dir).exists():
        return None
    port = json.loads(registry_path(settings.data_dir).read_text()).get("proxy_port") or 0
    if not port:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.0)
        here = s.getsockname()[1]
        ping = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{here};rport;branch=z9hG4bK{time.time_ns()}\r\n"
                f"Max-Forwards: 2\r\nFrom: <sip:readyz@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1:{port}>\r\n"
                f"Call-ID: readyz-{time.time_ns()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        try:
            s.sendto(ping, ("127.0.0.1", port))
            return s.recv(2048).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def readiness(settings: Settings, engine: Engine) -> dict[str, dict]:
    """Each dependency's state: ``{"ok": bool, ...}``; dependencies not configured here are left out."""
    checks: dict[str, dict] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    if settings.event_bus == "redis":
        import redis

        try:
            checks["redis"] = {"ok": bool(redis.Redis.from_url(settings.redis_url, socket_timeout=1).ping())}
        except redis.RedisError as exc:
            checks["redis"] = {"ok": False, "error": type(exc).__name__}
    if settings.ray_address:
        host, _, port = settings.ray_address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=1).close()
            checks["ray"] = {"ok": True}
        except (OSError, ValueError) as exc:
            checks["ray"] = {"ok": False, "error": type(exc).__name__}
    proxy = _kamailio(settings)
    if proxy is not None:
        checks["kamailio"] = {"ok": proxy}
    workers = _workers(settings)
    if workers:
        down = [name for name, state, up, _ in workers if state == "active" and not up]
        checks["bridge_workers"] = {"ok": len(down) < len(workers), "down": down}
    free = disk_free_ratio(settings.data_dir)
    checks["disk"] = {"ok": free >= DISK_MIN_FREE, "free_ratio": round(free, 4)}
    return checks


class OperationsCollector:
    """The gauges behind the alert rules, computed at each scrape (``/metrics`` runs off the event loop)."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings, self.engine = settings, engine

    def collect(self):
        now = utcnow()
        up = GaugeMetricFamily("hotline_bridge_worker_up", "1 when the bridge worker answers its control channel",
                               labels=["worker", "state"])
        calls = GaugeMetricFamily("hotline_bridge_worker_calls", "Conversations on the bridge worker", labels=["worker"])
        for name, state, answers, n in _workers(self.settings):
            up.add_metric([name, state], 1.0 if answers else 0.0)
            calls.add_metric([name], n)
        yield up
        yield calls

        pending, oldest = 0, 0.0
        spool = Path(self.settings.data_dir) / "recordings" / "spool"
        for marker in spool.glob(f"*/{ENDED_MARKER}") if spool.is_dir() else []:
            try:
                oldest = max(oldest, time.time() - marker.stat().st_mtime)
                pending += 1
            except FileNotFoundError:  # transcribed meanwhile
                continue
        yield GaugeMetricFamily("hotline_asr_backlog_seconds", "Age of the oldest ended call not yet transcribed",
                                value=oldest)
        yield GaugeMetricFamily("hotline_asr_pending_calls", "Ended calls waiting for the live ASR", value=pending)

        free = disk_free_ratio(self.settings.data_dir)
        yield GaugeMetricFamily("hotline_data_disk_free_ratio", "Free share of the data directory's file system",
                                value=free)

        wait = GaugeMetricFamily("hotline_queue_oldest_wait_seconds", "Longest wait of a call still in the queue",
                                 labels=["tenant", "skill_group"])
        limit = GaugeMetricFamily("hotline_queue_max_wait_seconds", "The queue's configured longest wait",
                                  labels=["tenant", "skill_group"])
        incoming = GaugeMetricFamily("hotline_calls_incoming_15m", "Incoming calls started in the last 15 minutes",
                                     labels=["tenant"])
        lost = GaugeMetricFamily("hotline_calls_lost_15m", "Of those, calls lost by the system (呼损)",
                                 labels=["tenant"])
        sms_sent = GaugeMetricFamily("hotline_sms_sent_1h", "SMS sent in the last hour (KPI denominator)",
                                     labels=["tenant"])
        sms_ok = GaugeMetricFamily("hotline_sms_delivered_1h", "Of those, delivered", labels=["tenant"])
        outbox = GaugeMetricFamily("hotline_outbox_messages", "Integration messages not yet sent",
                                   labels=["channel", "status"])
        retrying = GaugeMetricFamily("hotline_outbox_retrying", "Pending integration messages that already failed "
                                     "at least once", labels=["channel"])
        with self.engine.connect() as conn:
            tenants = dict(conn.execute(select(Tenant.id, Tenant.code)).all())
            for tenant_id, group, started in conn.execute(
                    select(Call.tenant_id, Call.skill_group, func.min(Call.started_at))
                    .where(Call.ended_at.is_(None), Call.answered_at.is_(None), Call.skill_group != "")
                    .group_by(Call.tenant_id, Call.skill_group)):
                started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
                wait.add_metric([tenants.get(tenant_id, ""), group], (now - started).total_seconds())
            for tenant_id, group, max_wait in conn.execute(
                    select(Queue.tenant_id, SkillGroup.code, Queue.max_wait_s)
                    .join(SkillGroup, SkillGroup.id == Queue.skill_group_id)):
                limit.add_metric([tenants.get(tenant_id, ""), group], max_wait)
            _add_share(tenants, incoming, lost, "lost", conn.execute(
                select(Call.tenant_id, Call.result, func.count()).where(
                    Call.direction == "in", Call.started_at >= now - CALL_WINDOW)
                .group_by(Call.tenant_id, Call.result)))
            _add_share(tenants, sms_sent, sms_ok, "delivered", conn.execute(
                select(SmsMessage.tenant_id, SmsMessage.status, func.count()).where(
                    SmsMessage.created_at >= now - SMS_WINDOW, SmsMessage.status.not_in(SMS_EXCLUDED))
                .group_by(SmsMessage.tenant_id, SmsMessage.status)))
            counts: dict[tuple[str, str], int] = {}
            failing: dict[str, int] = {}
            for channel, status, attempts, n in conn.execute(
                    select(OutboxMessage.channel, OutboxMessage.status, OutboxMessage.attempts, func.count())
                    .where(OutboxMessage.status != "sent")
                    .group_by(OutboxMessage.channel, OutboxMessage.status, OutboxMessage.attempts)):
                counts[channel, status] = counts.get((channel, status), 0) + n
                if status == "pending" and attempts > 0:
                    failing[channel] = failing.get(channel, 0) + n
            for (channel, status), n in counts.items():
                outbox.add_metric([channel, status], n)
            for channel, n in failing.items():
                retrying.add_metric([channel], n)
        yield from (wait, limit, incoming, lost, sms_sent, sms_ok, outbox, retrying)


def _add_share(tenants: dict, total: GaugeMetricFamily, part: GaugeMetricFamily, state: str, rows) -> None:
    """From (tenant id, state, count) rows: per tenant (every tenant, zero included) the total and those in ``state``."""
    counts = {t: [0, 0] for t in tenants}
    for tenant_id, row_state, n in rows:
        row = counts.setdefault(tenant_id, [0, 0])
        row[0] += n
        row[1] += n if row_state == state else 0
    for tenant_id, (n_all, n_state) in counts.items():
        total.add_metric([tenants.get(tenant_id, "")], n_all)
        part.add_metric([tenants.get(tenant_id, "")], n_state)
