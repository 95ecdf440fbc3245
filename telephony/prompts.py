"""IVR prompts: 8 kHz mono WAV files, configurable, synthesised with espeak-ng on first use.

A deployment replaces any prompt by putting its own ``<name>.wav`` into the
prompt directory; missing ones are generated from :data:`DEFAULT_TEXTS`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

DEFAULT_TEXTS: dict[str, str] = {
    "welcome": "您好，欢迎致电12345政务服务便民热线。",
    "menu": "人工服务请按1，企业服务请按2，查询办理进度请按3。",
    "invalid": "您的输入有误，请重新选择。",
    "closed": "您好，现在是非工作时间，请在工作时间再拨。感谢您的来电。",
    "blocked": "您的号码已被限制呼入，如有疑问请联系12345热线管理部门。",
    "queue": "坐席正忙，请您耐心等待。",
    "busy": "抱歉，当前坐席全忙，请您稍后再拨。",
    "info": "办理进度查询请访问本市12345网站，或稍后转人工服务。",
    "transfer": "正在为您转接，请稍候。",
}
MUSIC = "hold_music"


def _position_text(n: int) -> str:
    return f"您前面还有{n}位，请稍候。"


def wav_duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


class Prompts:
    """Resolves prompt names to WAV paths, generating defaults into ``directory``."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        target = self.dir / f"{name}.wav"
        if not target.exists():
            if name == MUSIC:
                _synth_music(target)
            elif name.startswith("position_"):
                _speak(_position_text(int(name.split("_", 1)[1])), target)
            else:
                _speak(DEFAULT_TEXTS[name], target)
        return target

    def position(self, n: int) -> Path:
        return self.path(f"position_{n}")

    def prepare(self, max_position: int = 10) -> None:
        for name in [*DEFAULT_TEXTS, MUSIC]:
            self.path(name)
        for n in range(1, max_position + 1):
            self.position(n)


def _to_telephone_wav(src: Path, dst: Path) -> None:
    tmp = dst.with_suffix(f".{os.getpid()}.tmp.wav")  # several workers may generate the same prompt at once
    subprocess.run(["sox", str(src), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)],
                   check=True, capture_output=True)
    tmp.replace(dst)


def _speak(text: str, dst: Path) -> None:
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise RuntimeError("生成语音提示需要 espeak-ng 和 sox（apt-get install espeak-ng sox）")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "cmn", "-s", "230", "-w", str(raw), text], check=True, capture_output=True)
        _to_telephone_wav(raw, dst)


def _synth_music(dst: Path) -> None:
    """A quiet 8-second chime loop (C-E-G-E) made with sox."""
    with tempfile.TemporaryDirectory() as tmp:
        notes = []
        for i, freq in enumerate([523.25, 659.25, 783.99, 659.25] * 2):
            note = Path(tmp) / f"n{i}.wav"
            subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(note), "synth", "1", "sine", str(freq),
                            "fade", "q", "0.05", "1", "0.3", "vol", "0.2"], check=True, capture_output=True)
            notes.append(str(note))
        joined = Path(tmp) / "music.wav"
        subprocess.run(["sox", *notes, str(joined)], check=True, capture_output=True)
        _to_telephone_wav(joined, dst)
