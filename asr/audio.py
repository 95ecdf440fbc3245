"""Audio in: decode files or bytes, resample, and simulate the telephone channel.

``load_audio`` accepts WAV (PCM16/24/32, float, μ-law, A-law), FLAC and OGG via
libsndfile, and MP3/M4A/anything else via PyAV.  Bad input raises
``AudioError`` with a Simplified-Chinese message; nothing is guessed silently.

Files are decoded block by block.  Given ``max_seconds`` (uploads: ``HOTLINE_MAX_AUDIO_SECONDS``), a file whose
header announces a longer recording is refused before anything is decoded, and decoding stops as soon as the
decoded audio passes the limit, so a small compressed file cannot expand without bound even when its header
understates its length.  Given ``max_rate``, faster-sampled audio is resampled to it block by block while decoding,
so memory follows the rate the caller works at rather than the file's.
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
BLOCK_SECONDS = 10  # decoded per step


class AudioError(ValueError):
    """Audio that cannot be decoded or is unusable; ``message`` is user-facing Chinese, ``status`` the HTTP status
    an upload of it is answered with (413 when it is longer than allowed)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


def too_long(max_seconds: float) -> AudioError:
    limit = f"{max_seconds / 60:g} 分钟" if max_seconds >= 60 else f"{max_seconds:g} 秒"
    return AudioError(f"录音时长超过上限（{limit}），请截取后再上传", 413)


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


def load_audio(source: str | Path | bytes, *, max_seconds: float | None = None,
               max_rate: int | None = None) -> Audio:
    """Decode a path or in-memory bytes into float32 ``(channels, n)`` samples: at most ``max_seconds`` of them
    (else ``AudioError`` with status 413), at the file's rate or ``max_rate`` when that is lower."""
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
        sound = sf.SoundFile(opener())
    except (sf.LibsndfileError, RuntimeError, TypeError):
        samples, rate = _decode_with_av(opener(), max_seconds, max_rate)
    else:
        with sound:
            samples, rate = _decode_with_sndfile(sound, max_seconds, max_rate)
    return _validated(samples, rate)


class _Decoded:
    """Decoded blocks gathered into one array, refused as soon as they pass ``max_seconds``."""

    def __init__(self, channels: int, rate: int, max_seconds: float | None, expected_s: float):
        self.channels, self.rate, self.max_seconds = channels, rate, max_seconds
        self.limit = int(max_seconds * rate) if max_seconds is not None else None
        capacity = round(expected_s * rate)
        self._buf = np.empty((channels, min(capacity, self.limit) if self.limit is not None else capacity),
                             dtype=np.float32)
        self.n = 0

    def add(self, block: np.ndarray) -> None:
        """``block``: float32 ``(channels, n)`` at ``rate``."""
        end = self.n + block.shape[1]
        if self.limit is not None and end > self.limit:
            raise too_long(self.max_seconds)
        if end > self._buf.shape[1]:  # the header understated the length (or gave none): grow, within the limit
            size = max(end, 2 * self._buf.shape[1], BLOCK_SECONDS * self.rate)
            grown = np.empty((self.channels, min(size, self.limit) if self.limit is not None else size),
                             dtype=np.float32)
            grown[:, :self.n] = self._buf[:, :self.n]
            self._buf = grown
        self._buf[:, self.n:end] = block
        self.n = end

    def result(self) -> tuple[np.ndarray, int]:
        return self._buf if self.n == self._buf.shape[1] else self._buf[:, :self.n], self.rate


class _BlockResampler:
    """Streaming resampling (libswresample through PyAV): blocks in, the same signal at ``rate_out`` out, with no
    seams at block edges."""

    def __init__(self, channels: int, rate_in: int, rate_out: int):
        import av

        self._av = av
        self._layout = "stereo" if channels == 2 else "mono"
        self._rate_in = rate_in
        self._resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=rate_out)

    def push(self, block: np.ndarray | None) -> np.ndarray:
        """Resampled audio for ``block`` (None: what is still buffered, at the end)."""
        frame = None
        if block is not None:
            frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(block, dtype=np.float32), format="fltp",
                                                     layout=self._layout)
            frame.sample_rate = self._rate_in
        parts = [f.to_ndarray() for f in self._resampler.resample(frame)]
        width = 2 if self._layout == "stereo" else 1
        return np.concatenate(parts, axis=1) if parts else np.empty((width, 0), dtype=np.float32)


def _check_header(channels: int, rate: int, seconds: float, max_seconds: float | None) -> None:
    """What the header announces, refused before anything is decoded."""
    if channels > MAX_CHANNELS:
        raise AudioError(f"不支持 {channels} 声道音频，只支持单声道或双声道")
    if rate not in SUPPORTED_RATES:
        raise AudioError(f"不支持的采样率 {rate} Hz，支持：{', '.join(map(str, SUPPORTED_RATES))}")
    if max_seconds is not None and seconds > max_seconds:
        raise too_long(max_seconds)


def _decode_with_sndfile(sound: sf.SoundFile, max_seconds: float | None,
                         max_rate: int | None) -> tuple[np.ndarray, int]:
    rate, channels = int(sound.samplerate), int(sound.channels)
    _check_header(channels, rate, sound.frames / rate, max_seconds)
    out_rate = min(rate, max_rate or rate)
    resampler = _BlockResampler(channels, rate, out_rate) if out_rate != rate else None
    decoded = _Decoded(channels, out_rate, max_seconds, sound.frames / rate)
    try:
        while True:
            block = sound.read(BLOCK_SECONDS * rate, dtype="float32", always_2d=True)
            if not len(block):
                break
            decoded.add(resampler.push(block.T) if resampler else block.T)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError("无法解码音频：文件已损坏或格式不受支持") from exc
    if resampler:
        decoded.add(resampler.push(None))
    return decoded.result()


def _decode_with_av(source, max_seconds: float | None, max_rate: int | None) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(source) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError("文件中没有音频轨道")
            rate = int(stream.codec_context.sample_rate or 0)
            channels = min(stream.codec_context.channels or 1, MAX_CHANNELS)
            announced = float(stream.duration * stream.time_base) if stream.duration else \
                (container.duration or 0) / av.time_base
            _check_header(channels, rate, announced, max_seconds)
            out_rate = min(rate, max_rate or rate)
            decoded = _Decoded(channels, out_rate, max_seconds, announced)
            resampler = av.AudioResampler(format="fltp", layout="stereo" if channels == 2 else "mono",
                                          rate=out_rate)  # decoded, downmixed and resampled frame by frame
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    decoded.add(out.to_ndarray())
            for out in resampler.resample(None):
                decoded.add(out.to_ndarray())
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt data
        raise AudioError("无法解码音频：文件已损坏或格式不受支持") from exc
    samples, rate = decoded.result()
    if not samples.shape[1]:
        raise AudioError("音频内容为空")
    return samples, rate


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
