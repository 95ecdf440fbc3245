"""Audio in: decode files or bytes, resample, and simulate the telephone channel.

``load_audio`` accepts WAV (PCM16/24/32, float, μ-law, A-law), FLAC and OGG via
libsndfile, and MP3/M4A/anything else via PyAV.  Bad input raises
``AudioError`` with a Simplified-Chinese message; nothing is guessed silently.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_CHANNELS = 2


class AudioError(ValueError):
    """Audio that cannot be decoded or is unusable; ``message`` is user-facing Chinese."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Audio:
    samples: np.ndarray  # float32, shape (channels, n), range [-1, 1]
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=0).astype(np.float32)


def load_audio(source: str | Path | bytes) -> Audio:
    """Decode a path or in-memory bytes into float32 ``(channels, n)`` samples."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise AudioError("音频内容为空")
        opener = lambda: io.BytesIO(data)  # noqa: E731
    else:
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"音频文件不存在：{path.name}")
        if path.stat().st_size == 0:
            raise AudioError(f"音频文件为空：{path.name}")
        opener = lambda: str(path)  # noqa: E731

    try:
        samples, rate = sf.read(opener(), dtype="float32", always_2d=True)
        samples = samples.T
    except (sf.LibsndfileError, RuntimeError, TypeError):
        samples, rate = _decode_with_av(opener())
    return _validated(samples, rate)


def _decode_with_av(source) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(source) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError("文件中没有音频轨道")
            channels = min(stream.codec_context.channels or 1, MAX_CHANNELS)
            layout = "stereo" if channels == 2 else "mono"
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=stream.codec_context.sample_rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
            rate = stream.codec_context.sample_rate
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt data
        raise AudioError("无法解码音频：文件已损坏或格式不受支持") from exc
    if not chunks:
        raise AudioError("音频内容为空")
    return np.concatenate(chunks, axis=1).astype(np.float32), int(rate)


def _validated(samples: np.ndarray, rate: int) -> Audio:
    if samples.shape[1] == 0:
        raise AudioError("音频内容为空")
    if samples.shape[0] > MAX_CHANNELS:
        raise AudioError(f"不支持 {samples.shape[0]} 声道音频，只支持单声道或双声道")
    if rate not in SUPPORTED_RATES:
        raise AudioError(f"不支持的采样率 {rate} Hz，支持：{', '.join(map(str, SUPPORTED_RATES))}")
    if not np.isfinite(samples).all():
        raise AudioError("音频数据包含无效数值")
    return Audio(samples=np.ascontiguousarray(samples, dtype=np.float32), sample_rate=int(rate))


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased)."""
    if sr_from == sr_to:
        return x.astype(np.float32, copy=False)
    g = gcd(int(sr_from), int(sr_to))
    return signal.resample_poly(x, sr_to // g, sr_from // g, axis=-1).astype(np.float32)


def telephone_band(x: np.ndarray, sr: int, *, mulaw: bool = True, bandpass: bool = True) -> np.ndarray:
    """Return ``x`` as an 8 kHz narrow-band phone channel would carry it.

    Resampled to 8 kHz; by default also band-passed to 300–3400 Hz like an analogue PSTN line (ITU-T G.712;
    a SIP trunk carrying G.711 end to end keeps 0–4 kHz), and passed through G.711 μ-law companding (8-bit).
    """
    narrow = resample(x, sr, 8000)
    if bandpass:
        sos = signal.butter(6, [300, 3400], btype="bandpass", fs=8000, output="sos")
        narrow = signal.sosfilt(sos, narrow, axis=-1).astype(np.float32)
    if mulaw:
        narrow = mulaw_decode(mulaw_encode(narrow))
    return narrow


_MU = 255.0


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """Float [-1, 1] → 8-bit μ-law codes (uint8)."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(_MU * np.abs(x)) / np.log1p(_MU)
    return np.round((y + 1) / 2 * _MU).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    y = codes.astype(np.float32) / _MU * 2 - 1
    return (np.sign(y) * ((1 + _MU) ** np.abs(y) - 1) / _MU).astype(np.float32)


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise AudioError("PCM16 数据长度必须是偶数字节")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
