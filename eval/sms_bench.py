"""`hotline eval sms-throughput`: SMS outbox throughput against the gateway simulator over real HTTP."""
from __future__ import annotations

from pathlib import Path

import typer


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("sms-throughput")
    def sms_throughput(messages: int = typer.Option(2000, help="消息条数"),
                       db_url: str = typer.Option("", help="数据库 URL（默认临时 SQLite）"),
                       batch: int = typer.Option(200, help="每轮领取条数"),
                       json_out: Path = typer.Option(None, "--json", help="结果 JSON 输出路径")) -> None:
        """测量短信发件箱经 HTTP 网关模拟器的提交吞吐量（条/秒），对照每年 100 万条的容量要求。"""
        import tempfile
        import time

        from domain.db import make_db_engine, session_factory, session_scope, upgrade
        from demo import seed_demo
        from tickets.integrations.signing import KeyRing
        from tickets.simulators import LocalServer
        from tickets.simulators.sms_gateway import SmsGatewaySim
        from tickets.sms import HttpSmsGateway, enqueue, send_due
        from domain.json_output import emit

        url = db_url or f"sqlite:///{tempfile.mkdtemp()}/sms-bench.db"
        upgrade(url)
        engine = make_db_engine(url)
        with session_scope(engine) as s:
            tenant_id = seed_demo(s).id
        ring = KeyRing("k1", {"k1": "bench"})
        sim = SmsGatewaySim(ring)
        run = f"bench:{time.time_ns()}"
        with session_scope(engine) as s:
            for i in range(messages):
                enqueue(s, tenant_id, f"139{i:08d}", "【来宾12345】您反映的问题已办结，感谢您的来电。", f"{run}:{i}")
        with LocalServer(sim.app) as server:
            gateway = HttpSmsGateway(server.url, ring)
            sessions = session_factory(engine)
            started = time.perf_counter()
            sent = 0
            while sent < messages:
                sent += send_due(sessions, gateway, batch=batch)["sent"]
            seconds = time.perf_counter() - started
        engine.dispose()
        rate = messages / seconds
        once = len(set(sim.handset_deliveries)) == len(sim.handset_deliveries) == messages
        emit({"benchmark": "sms-throughput", "database": url.split(":")[0], "messages": messages,
              "seconds": round(seconds, 2), "msgs_per_s": round(rate, 1), "msgs_per_day": int(rate * 86400),
              "required_per_day": 2740, "headroom_x": round(rate * 86400 / 2740), "delivered_once": once}, json_out)
