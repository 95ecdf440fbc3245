"""`hotline call` (place a real test call) and `hotline telephony up|status|drain|resume|restart` (run, inspect and
upgrade the bridge without dropping calls)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import typer

if TYPE_CHECKING:
    from domain.settings import Settings
    from telephony.peer import LiveWiring


def _demo_agent_phone(work_no: str, wav: Path, port: int, tmp: Path):
    """A softphone for agent ``work_no`` that auto-answers playing ``wav``; the agent is made ready on it."""
    from sqlalchemy import select

    from domain.db import session_scope
    from domain.errors import not_found
    from domain.models import Agent, Tenant
    from domain.settings import get_settings
    from telephony.peer import Peer

    phone = Peer(port, port + 2, user=work_no, answer_wav=str(wav), record_dir=tmp / "agent",
                 log_path=tmp / "agent-ua.log")
    with session_scope() as session:
        row = session.scalar(select(Agent).join(Tenant, Tenant.id == Agent.tenant_id)
                             .where(Tenant.code == get_settings().default_tenant, Agent.work_no == work_no))
        if row is None:
            phone.close()
            raise not_found(f"工号 {work_no} 的坐席")
        row.sip_uri = phone.uri
        if row.state in ("signed_out", "not_ready"):
            row.state = "ready"
    return phone


def register(app: typer.Typer, live: Callable[[Settings], LiveWiring] | None = None) -> None:
    """``live``: deploys the live ASR and returns its wiring (the ``hotline`` entry point's); without it
    ``telephony up`` only records."""
    tel = typer.Typer(help="话务桥接：启动工作进程与 Kamailio、查看状态", no_args_is_help=True)
    app.add_typer(tel, name="telephony")

    @app.command("call")
    def call(
        wav: Path = typer.Option(..., exists=True, dir_okay=False,
                                 help="主叫播放的音频；立体声文件按“左声道坐席、右声道市民”拆分，并自动接入演示坐席软电话"),
        to: str = typer.Option("", help="被叫 SIP URI（默认 sip:12345@<HOTLINE_SIP_PROXY>）"),
        dtmf: str = typer.Option("", help="接通后发送的按键，例如 1"),
        dtmf_method: str = typer.Option("rfc2833", help="按键方式：rfc2833 或 info"),
        number: str = typer.Option("13800000000", "--from", help="主叫号码"),
        agent: str = typer.Option("8", help="立体声时由哪个工号的软电话接听（该坐席置为空闲）"),
        seconds: float = typer.Option(0, help="通话时长（秒）；0 = 音频播完后挂机"),
        record: Path = typer.Option(None, help="把听到的声音录成 WAV 的目录"),
        port: int = typer.Option(5999, help="本地 SIP 端口"),
    ) -> None:
        """拨打一通真实的测试电话（主叫播放音频、可发按键），输出 JSON 结果。"""
        import tempfile
        import time

        import numpy as np
        import soundfile as sf

        from domain.settings import get_settings
        from telephony.peer import Peer

        target = to or f"sip:12345@{get_settings().sip_proxy}"
        tmp = Path(tempfile.mkdtemp(prefix="hotline-call-"))
        audio, sr = sf.read(wav, dtype="int16", always_2d=True)

        def telephone_wav(channel: np.ndarray, name: str) -> Path:
            idx = np.arange(0, len(channel), sr / 8000)
            path = tmp / name
            sf.write(path, np.interp(idx, np.arange(len(channel)), channel).astype(np.int16), 8000, subtype="PCM_16")
            return path

        stereo = audio.shape[1] == 2
        caller_wav = telephone_wav(audio[:, 1] if stereo else audio.mean(axis=1), "caller.wav")
        duration = seconds or len(audio) / sr + 2
        phones = []
        try:
            if stereo:
                phones.append(_demo_agent_phone(agent, telephone_wav(audio[:, 0], "agent.wav"), port + 10, tmp))
            ua = Peer(port, port + 2, user=number, record_dir=record or tmp, log_path=tmp / "ua.log")
            phones.append(ua)
            opts = {"from": number, "wav": str(caller_wav)}
            if dtmf:
                opts.update(dtmf=dtmf, dtmf_method=dtmf_method, dtmf_after=1.0)
            ua.call("c1", target, **opts)
            try:
                ua.state("c1", "CONFIRMED", timeout=30)
            except TimeoutError:
                end = ua.ended("c1", timeout=5)
                typer.echo(json.dumps({"connected": False, **end}, ensure_ascii=False))
                raise typer.Exit(1)
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline and not ua.find(ev="ended", id="c1"):
                time.sleep(0.2)
            ua.send(op="hangup", id="c1")
            end = ua.ended("c1", timeout=10)
        finally:
            for phone in reversed(phones):
                phone.close()
        typer.echo(json.dumps({"connected": True, "to": target, **end}, ensure_ascii=False, indent=2))

    @tel.command("up")
    def up(
        workers: int = typer.Option(None, help="工作进程数（默认 HOTLINE_BRIDGE_WORKERS）；每个进程承载 2 路对话"),
        kamailio: bool = typer.Option(True, help="同时启动 Kamailio（调度 + 健康探测 + 坐席注册）"),
    ) -> None:
        """启动话务桥接（前台运行，Ctrl-C 停止）：N 个工作进程与实时识别进程，进程退出自动重启。"""
        import signal

        from domain.db import upgrade
        from domain.settings import get_settings
        from telephony.supervisor import Supervisor

        st = get_settings()
        upgrade()
        proxy = int(st.sip_proxy.rsplit(":", 1)[1]) if kamailio else 0
        sup = Supervisor(workers or st.bridge_workers, db_url=st.sqlalchemy_url, data_dir=st.data_dir,
                         sip_port=st.sip_port, rtp_port=st.rtp_port, flow=st.telephony_flow,
                         live=live(st) if live else None, proxy_port=proxy, asr_followers=st.live_asr_followers)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it in order, as Ctrl-C does
        try:
            sup.start()
            typer.echo(json.dumps({"workers": [s.name for s in sup.specs], "proxy": st.sip_proxy if kamailio else None},
                                  ensure_ascii=False))
            sup.run_forever()
        except KeyboardInterrupt:
            pass
        finally:
            sup.stop()

    @tel.command("sip-password")
    def sip_password(work_no: str = typer.Argument(..., help="坐席工号（即 SIP 分机号）")) -> None:
        """显示坐席软电话注册 Kamailio 所用的 SIP 账号与密码（按本机密钥为每个坐席生成，与登录密码无关）。"""
        from domain.db import session_scope
        from domain.errors import not_found
        from domain.settings import get_settings
        from telephony import sipauth
        from telephony.supervisor import SIP_REALM

        st = get_settings()
        with session_scope() as session:
            if work_no not in sipauth.active_extensions(session):
                raise not_found(f"工号 {work_no} 的在职坐席")
        typer.echo(json.dumps({"username": work_no, "password": sipauth.agent_password(st.data_dir, work_no),
                               "realm": SIP_REALM, "registrar": f"sip:{st.sip_proxy}",
                               "uri": f"sip:{work_no}@{SIP_REALM}"}, ensure_ascii=False, indent=2))

    @tel.command("status")
    def status() -> None:
        """各工作进程的通话、CPU 与积压情况。"""
        import httpx

        from domain.settings import get_settings
        from telephony.control import control_token, worker_status
        from telephony.supervisor import read_registry

        data_dir = get_settings().data_dir
        out = []
        for w in read_registry(data_dir):
            try:
                out.append({**worker_status(w.control_port, control_token(data_dir))["result"], "state": w.state})
            except httpx.HTTPError:
                out.append({"name": w.name, "down": True, "state": w.state})
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))

    def _ask(op: str, wait_s: float, **args) -> None:
        from domain.errors import AppError
        from domain.settings import get_settings
        from telephony.supervisor import request

        try:
            answer = request(get_settings().data_dir, op, wait_s, **args)
        except TimeoutError as exc:
            raise AppError("supervisor_timeout", str(exc), 504) from None
        typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))
        if not answer.get("ok"):
            raise typer.Exit(1)

    @tel.command("drain")
    def drain(
        worker: str = typer.Argument(..., help="工作进程名，例如 w3（见 hotline telephony status）"),
        timeout: float = typer.Option(3600, help="等待其通话结束的最长秒数"),
    ) -> None:
        """摘除一个桥接工作进程：Kamailio 不再向其分配新呼叫，现有通话结束后该进程退出（resume 恢复）。"""
        _ask("drain", timeout + 60, worker=worker, timeout=timeout)

    @tel.command("resume")
    def resume(worker: str = typer.Argument(..., help="已摘除的工作进程名")) -> None:
        """重新启动已摘除的工作进程，并恢复向其分配呼叫。"""
        _ask("resume", 300, worker=worker)

    @tel.command("restart")
    def restart(timeout: float = typer.Option(3600, help="每个工作进程等待通话结束的最长秒数")) -> None:
        """滚动重启：逐个摘除、重启并恢复全部桥接工作进程，再逐个重启语音识别跟随进程；不中断任何通话。"""
        _ask("restart", 24 * 3600, timeout=timeout)
