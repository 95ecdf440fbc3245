"""`hotline call` (place a real test call) and `hotline telephony up|status` (run and inspect the bridge)."""
from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    tel = typer.Typer(help="话务桥接：启动工作进程与 Kamailio、查看状态", no_args_is_help=True)
    app.add_typer(tel, name="telephony")

    @app.command("call")
    def call(
        wav: Path = typer.Option(..., exists=True, dir_okay=False, help="作为主叫播放的音频（8 kHz 单声道 WAV 最佳；其他格式自动转换）"),
        to: str = typer.Option("", help="被叫 SIP URI（默认 sip:12345@<HOTLINE_SIP_PROXY>）"),
        dtmf: str = typer.Option("", help="接通后发送的按键，例如 1"),
        dtmf_method: str = typer.Option("rfc2833", help="按键方式：rfc2833 或 info"),
        number: str = typer.Option("13800000000", "--from", help="主叫号码"),
        seconds: float = typer.Option(0, help="通话时长（秒）；0 = 音频播完后挂机"),
        record: Path = typer.Option(None, help="把听到的声音录成 WAV 的目录"),
        port: int = typer.Option(5999, help="本地 SIP 端口"),
    ) -> None:
        """拨打一通真实的测试电话（主叫播放音频、可发按键），输出 JSON 结果。"""
        import tempfile
        import time

        import soundfile as sf

        from domain.settings import get_settings
        from telephony.peer import Peer

        target = to or f"sip:12345@{get_settings().sip_proxy}"
        tmp = Path(tempfile.mkdtemp(prefix="hotline-call-"))
        audio, sr = sf.read(wav, dtype="int16", always_2d=True)
        if sr != 8000 or audio.shape[1] != 1 or wav.suffix.lower() != ".wav":
            import numpy as np

            mono = audio.mean(axis=1)
            idx = np.arange(0, len(mono), sr / 8000)
            mono = np.interp(idx, np.arange(len(mono)), mono).astype(np.int16)
            wav = tmp / "caller.wav"
            sf.write(wav, mono, 8000, subtype="PCM_16")
        duration = seconds or sf.info(wav).duration + 2
        ua = Peer(port, port + 2, user=number, record_dir=record or tmp, log_path=tmp / "ua.log")
        try:
            opts = {"from": number, "wav": str(wav.resolve())}
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
            ua.close()
        typer.echo(json.dumps({"connected": True, "to": target, **end}, ensure_ascii=False, indent=2))

    @tel.command("up")
    def up(
        workers: int = typer.Option(None, help="工作进程数（默认 HOTLINE_BRIDGE_WORKERS）；每个进程承载 2 路对话"),
        kamailio: bool = typer.Option(True, help="同时启动 Kamailio（调度 + 健康探测 + 坐席注册）"),
    ) -> None:
        """启动话务桥接（前台运行，Ctrl-C 停止）：N 个工作进程，进程退出自动重启。"""
        from domain.db import upgrade
        from domain.settings import get_settings
        from telephony.supervisor import Supervisor

        st = get_settings()
        upgrade()
        proxy = int(st.sip_proxy.rsplit(":", 1)[1]) if kamailio else 0
        sup = Supervisor(workers or st.bridge_workers, db_url=st.sqlalchemy_url, data_dir=st.data_dir,
                         sip_port=st.sip_port, rtp_port=st.rtp_port, flow=st.telephony_flow, sink=st.telephony_sink,
                         proxy_port=proxy)
        sup.start()
        typer.echo(json.dumps({"workers": [s.name for s in sup.specs], "proxy": st.sip_proxy if kamailio else None},
                              ensure_ascii=False))
        try:
            sup.run_forever()
        except KeyboardInterrupt:
            pass

    @tel.command("status")
    def status() -> None:
        """各工作进程的通话、CPU 与积压情况。"""
        import httpx

        from domain.settings import get_settings
        from telephony.control import worker_status
        from telephony.supervisor import read_registry

        out = []
        for w in read_registry(get_settings().data_dir):
            try:
                out.append(worker_status(w.control_port)["result"])
            except httpx.HTTPError:
                out.append({"name": w.name, "down": True})
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
