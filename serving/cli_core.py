"""Core commands: serve, database migrations and user administration."""
from __future__ import annotations

import typer


def _start_telephony(settings):
    """The live ASR deployed on Ray (a local Ray, or the cluster of ``HOTLINE_RAY_ADDRESS``), then bridge workers,
    the live ASR followers (and Kamailio in front when installed) under a supervisor thread that restarts dead ones.
    The live path's wiring is injected here (``serving.pipeline.start_live``).  The children die with that thread
    (``telephony.peer.die_with_parent``), which lives until ``supervisor.stop()`` has stopped them."""
    import shutil
    import threading

    from serving.pipeline import start_live
    from telephony.supervisor import Supervisor

    proxy_port = int(settings.sip_proxy.rsplit(":", 1)[1]) if shutil.which("kamailio") else 0
    supervisor = Supervisor(settings.bridge_workers, db_url=settings.sqlalchemy_url, data_dir=settings.data_dir,
                            sip_port=settings.sip_port, rtp_port=settings.rtp_port, flow=settings.telephony_flow,
                            live=start_live(settings), proxy_port=proxy_port,
                            asr_followers=settings.live_asr_followers)

    def run() -> None:
        if supervisor.start().stopping:  # the server was stopped while the telephony started
            return
        target = settings.sip_proxy if proxy_port else f"127.0.0.1:{settings.sip_port}"
        typer.echo(f"话务系统就绪：{settings.bridge_workers} 个桥接进程，呼叫 sip:12345@{target}")
        supervisor.run_forever()

    threading.Thread(target=run, name="telephony-supervisor", daemon=True).start()
    return supervisor


def _stop_children_first(app, supervisor) -> None:
    """On SIGTERM/SIGINT uvicorn stops taking requests, then runs the app's shutdown.  The server's children
    stop at its start, while the event bus and its consumers still run: the telephony (in order, see
    ``Supervisor.stop``), so the workers' last call events and the followers' last finals are stored, and
    the benchmark runs started from the browser (``serving.api.evaluations``; cancelled).  After its shutdown
    uvicorn re-raises the signal, so nothing after ``uvicorn.run`` is reached."""
    import asyncio
    import subprocess
    from contextlib import asynccontextmanager

    def stop_children() -> None:
        runs = [p for p in getattr(app.state, "eval_processes", {}).values() if p.poll() is None]
        for run in runs:
            run.terminate()
        if supervisor is not None:
            supervisor.stop()
        for run in runs:
            try:
                run.wait(10)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()

    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def children_then_app(a):
        async with lifespan(a) as state:
            try:
                yield state
            finally:
                await asyncio.to_thread(stop_children)

    app.router.lifespan_context = children_then_app


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="数据库管理", no_args_is_help=True)
    users_app = typer.Typer(help="用户管理", no_args_is_help=True)
    tenant_app = typer.Typer(help="租户管理", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(tenant_app, name="tenant")

    @app.command()
    def serve(
        host: str = typer.Option(None, help="监听地址（默认取 HOTLINE_HOST）"),
        port: int = typer.Option(None, help="监听端口（默认取 HOTLINE_PORT）"),
        demo: bool = typer.Option(True, help="首次启动时写入演示租户、用户和知识库"),
        telephony: bool = typer.Option(True, help="启动话务桥接进程（pjsua2）与 Kamailio"),
    ) -> None:
        """启动系统：迁移数据库、写入演示数据并运行 Web/API 服务。"""
        import uvicorn

        from domain.db import get_db_engine, session_scope, upgrade
        from demo import DEMO_PASSWORD, DEMO_USERS, seed_demo
        from domain.logs import configure_logging
        from domain.settings import get_settings
        from serving.app import create_app

        configure_logging()
        settings = get_settings()
        host = host or settings.host
        port = port or settings.port
        upgrade()
        if demo:
            from knowledge.transfer import seed_demo_kb

            from demo.eval_data import seed_eval_data

            with session_scope() as session:
                tenant = seed_demo(session, settings.default_tenant)
                seed_demo_kb(session, tenant.id)
            seed_eval_data(settings.eval_data_dir)  # what evaluators can pick
        supervisor = _start_telephony(settings) if telephony else None
        typer.echo(f"热线平台已启动：http://{host}:{port}/")
        if demo:
            typer.echo(f"演示账号（租户 {settings.default_tenant}，密码均为 {DEMO_PASSWORD}）：")
            for username, role, display in DEMO_USERS:
                typer.echo(f"  {username:<12} {role:<18} {display}")
        app = create_app(settings, get_db_engine(), live=True)
        _stop_children_first(app, supervisor)
        try:
            uvicorn.run(app, host=host, port=port, log_config=None)
        finally:
            if supervisor is not None:
                supervisor.stop()  # when the app never started (a no-op after a normal shutdown)

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """把数据库迁移到最新版本。"""
        from domain.db import upgrade

        upgrade()
        typer.echo("数据库已是最新版本")

    def _tenant(session, code: str | None):
        from domain.accounts import ensure_tenant
        from domain.settings import get_settings

        return ensure_tenant(session, code or get_settings().default_tenant)

    PASSWORD_FILE_HELP = "从文件的第一行读取密码（“-”为标准输入）；不给则交互输入。密码不能写在命令行上：进程列表里人人可见"

    def _read_password(password_file: str | None) -> str:
        if password_file is None:
            return typer.prompt("密码", hide_input=True, confirmation_prompt=True)
        import sys
        from pathlib import Path

        try:
            text = sys.stdin.readline() if password_file == "-" else Path(password_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"无法读取密码文件：{exc}", param_hint="--password-file") from exc
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise typer.BadParameter("密码文件为空", param_hint="--password-file")
        return lines[0]

    @tenant_app.command("add")
    def tenant_add(code: str, name: str) -> None:
        """新增租户（另一个热线中心）：设置为默认值，不带任何城市的词表、辖区或合同数据，由其管理员在页面上填写。"""
        from sqlalchemy import select

        from domain.accounts import ensure_tenant
        from domain.db import session_scope, upgrade
        from domain.models import Tenant

        upgrade()
        with session_scope() as session:
            if session.scalar(select(Tenant).where(Tenant.code == code)) is not None:
                raise typer.BadParameter(f"租户代码 {code} 已存在", param_hint="CODE")
            ensure_tenant(session, code, name)
        typer.echo(f"已创建租户 {code}（{name}）；用 hotline users add --tenant {code} 为它新增管理员")

    @users_app.command("add")
    def users_add(
        username: str,
        role: str = typer.Option(..., help="agent|qa_reviewer|knowledge_manager|supervisor|evaluator|admin"),
        password_file: str = typer.Option(None, "--password-file", help=PASSWORD_FILE_HELP),
        display_name: str = typer.Option("", help="显示名称"),
        tenant: str = typer.Option(None, help="租户代码"),
    ) -> None:
        """新增用户。"""
        from domain import accounts
        from domain.db import session_scope, upgrade

        password = _read_password(password_file)
        upgrade()
        with session_scope() as session:
            user = accounts.create_user(session, _tenant(session, tenant), username, password, role, display_name)
            typer.echo(f"已创建用户 {user.username}（{accounts.ROLES[role]}）")

    @users_app.command("list")
    def users_list(tenant: str = typer.Option(None, help="租户代码")) -> None:
        """列出用户。"""
        from sqlalchemy import select

        from domain.db import session_scope, upgrade
        from domain.models import User

        upgrade()
        with session_scope() as session:
            t = _tenant(session, tenant)
            for user in session.scalars(select(User).where(User.tenant_id == t.id).order_by(User.id)):
                state = "正常" if user.active else "已注销"
                typer.echo(f"{user.id:>4}  {user.username:<16} {user.role:<18} {state}")

    def _find(session, username: str, tenant: str | None):
        from sqlalchemy import select

        from domain.errors import not_found
        from domain.models import User

        t = _tenant(session, tenant)
        user = session.scalar(select(User).where(User.tenant_id == t.id, User.username == username))
        if user is None:
            raise not_found("用户")
        return user

    @users_app.command("passwd")
    def users_passwd(
        username: str,
        password_file: str = typer.Option(None, "--password-file", help=PASSWORD_FILE_HELP),
        tenant: str = typer.Option(None, help="租户代码"),
    ) -> None:
        """重置用户密码。"""
        from domain import accounts
        from domain.db import session_scope, upgrade

        password = _read_password(password_file)
        upgrade()
        with session_scope() as session:
            accounts.change_password(session, _find(session, username, tenant), None, password)
        typer.echo("密码已更新")

    @users_app.command("deactivate")
    def users_deactivate(username: str, tenant: str = typer.Option(None, help="租户代码")) -> None:
        """注销用户。"""
        from domain import accounts
        from domain.db import session_scope, upgrade

        upgrade()
        with session_scope() as session:
            accounts.set_active(session, _find(session, username, tenant), False)
        typer.echo("用户已注销")
