"""Ticket commands: the background worker, provincial reconciliation, reports, and the partner simulators."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import typer


def _tenant_id(session) -> int:
    from sqlalchemy import select

    from domain.errors import AppError
    from domain.models import Tenant
    from domain.settings import get_settings

    code = get_settings().default_tenant
    tenant_id = session.scalar(select(Tenant.id).where(Tenant.code == code))
    if tenant_id is None:
        raise AppError("tenant_missing", f"租户 {code} 不存在，请先运行 hotline serve 或创建租户")
    return tenant_id


def register(app: typer.Typer) -> None:
    tickets_app = typer.Typer(help="工单、短信与外部对接", no_args_is_help=True)
    sim_app = typer.Typer(help="本地模拟器（短信网关、110 指挥中心、省 12345 平台）", no_args_is_help=True)
    app.add_typer(tickets_app, name="tickets")
    app.add_typer(sim_app, name="sim")

    @tickets_app.command("worker")
    def worker(interval: float = typer.Option(5.0, help="两轮之间的秒数"),
               once: bool = typer.Option(False, help="只运行一轮")) -> None:
        """发送短信、投递 110/省平台消息、执行督办检查（循环运行）。"""
        import json
        import time as clock

        from domain.db import get_db_engine, session_factory
        from domain.settings import get_settings
        from tickets.integrations.worker import run_once

        sessions = session_factory(get_db_engine())
        while True:
            typer.echo(json.dumps(run_once(sessions, get_settings()), ensure_ascii=False))
            if once:
                return
            clock.sleep(interval)

    @tickets_app.command("reconcile")
    def reconcile(hours: float = typer.Option(24.0, help="核对最近多少小时内更新的工单")) -> None:
        """与省 12345 平台对账，差异工单重新推送。"""
        import json

        from domain.db import session_scope
        from domain.errors import AppError
        from domain.models import utcnow
        from domain.settings import get_settings
        from tickets.integrations import exchange
        from tickets.integrations.outbox import SignedClient
        from tickets.integrations.signing import keyring

        settings = get_settings()
        if not settings.provincial_url:
            raise AppError("provincial_off", "未配置省平台地址（HOTLINE_PROVINCIAL_URL）")
        client = SignedClient(settings.provincial_url, keyring(settings, exchange.PROVINCIAL))
        with session_scope() as session:
            report = exchange.reconcile(session, _tenant_id(session), client, since=utcnow() - timedelta(hours=hours))
        typer.echo(json.dumps(report, ensure_ascii=False))

    @tickets_app.command("report")
    def report(start: datetime = typer.Option(..., formats=["%Y-%m-%d"], help="开始日期"),
               end: datetime = typer.Option(..., formats=["%Y-%m-%d"], help="结束日期（含）"),
               xlsx: Path = typer.Option(None, help="导出 XLSX 文件路径"),
               granularity: str = typer.Option("day", help="day|week|month")) -> None:
        """工单报表：分类/区县/部门/时间分布、按时办结率、退单率、满意度。"""
        import json

        from domain import tenant_settings

        from domain.db import session_scope
        from tickets import reports as ticket_reports

        with session_scope() as session:
            tenant_id = _tenant_id(session)
            lo, hi = tenant_settings.day_bounds(start.date(), end.date() + timedelta(days=1),
                                                tenant_settings.zone(session, tenant_id))
            data = ticket_reports.build(session, tenant_id, lo, hi, granularity)
        if xlsx:
            xlsx.write_bytes(ticket_reports.to_xlsx(data))
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))

    @sim_app.command("run")
    def run_sim(kind: str = typer.Argument(..., help="sms|police110|provincial"),
                port: int = typer.Option(0, help="端口（0 = 随机）"),
                city_url: str = typer.Option("http://127.0.0.1:8345", help="热线平台地址（回执/事件发往此处）")) -> None:
        """在前台运行一个模拟器，密钥取自 HOTLINE_INTEGRATION_KEYS。"""
        import time as clock

        from domain.settings import get_settings
        from tickets.integrations.signing import keyring
        from tickets.simulators import LocalServer

        settings = get_settings()
        if kind == "sms":
            from tickets.simulators.sms_gateway import SmsGatewaySim

            sim = SmsGatewaySim(keyring(settings, "sms"), receipt_url=f"{city_url}/api/hooks/sms/receipts")
        elif kind in ("police110", "provincial"):
            from tickets.simulators.exchange_peer import ExchangePeerSim

            sim = ExchangePeerSim(kind, keyring(settings, kind), city_url)
        else:
            raise typer.BadParameter("kind 须为 sms、police110 或 provincial")
        with LocalServer(sim.app, port) as server:
            typer.echo(f"{kind} 模拟器已启动：{server.url}（Ctrl+C 退出）")
            try:
                while True:
                    clock.sleep(1)
            except KeyboardInterrupt:
                pass
