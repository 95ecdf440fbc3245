import io

import av
import numpy as np
import pytest
import soundfile as sf

from asr.audio import AudioError, load_audio, mulaw_decode, mulaw_encode, resample, telephone_band

from .conftest import tone


def _wav_bytes(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("sr", [8000, 16000, 24000, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "ULAW", "ALAW"])
def test_wav_rates_and_encodings(sr, subtype):
    x = tone(0.5, sr)
    audio = load_audio(_wav_bytes(x, sr, subtype=subtype))
    assert audio.sample_rate == sr
    assert audio.samples.shape == (1, len(x)) and audio.samples.dtype == np.float32
    tol = 0.02 if subtype in ("ULAW", "ALAW") else 1e-3
    assert np.max(np.abs(audio.samples[0] - x)) < tol


def test_stereo_flac_keeps_channels(tmp_path):
    left, right = tone(0.4, 8000, 300), tone(0.4, 8000, 900)
    path = tmp_path / "call.flac"
    sf.write(path, np.stack([left, right]).T, 8000, format="FLAC")
    audio = load_audio(path)
    assert audio.samples.shape == (2, len(left))
    assert np.corrcoef(audio.samples[0], left)[0, 1] > 0.99
    assert np.corrcoef(audio.samples[1], right)[0, 1] > 0.99


def test_mp3_via_pyav(tmp_path):
    sr = 16000
    x = tone(1.0, sr)
    path = tmp_path / "a.mp3"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mp3", rate=sr, layout="mono")
        frame = av.AudioFrame.from_ndarray((x * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = load_audio(path)
    assert audio.sample_rate == sr and audio.channels == 1
    assert abs(audio.duration_s - 1.0) < 0.1
    spectrum = np.abs(np.fft.rfft(audio.samples[0]))
    assert abs(np.argmax(spectrum) * sr / len(audio.samples[0]) - 440) < 5


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "为空"),
        (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "无法解码"),
        (b"\x00" * 1000, "无法解码"),
    ],
)
def test_bad_bytes_raise_chinese_error(data, message):
    with pytest.raises(AudioError) as err:
        load_audio(data)
    assert message in err.value.message


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(AudioError, match="不存在"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="为空"):
        load_audio(tmp_path / "empty.wav")


def test_unsupported_rate_and_channels():
    with pytest.raises(AudioError, match="采样率"):
        load_audio(_wav_bytes(tone(0.2, 11025), 11025))
    with pytest.raises(AudioError, match="声道"):
        load_audio(_wav_bytes(np.zeros((3, 800), np.float32), 8000))


def test_resample_preserves_tone():
    x = tone(1.0, 8000, 1000)
    y = resample(x, 8000, 16000)
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) - 1000) <= 1


def test_telephone_band_removes_out_of_band_energy():
    sr = 16000
    low, mid, high = tone(1.0, sr, 100), tone(1.0, sr, 1000), tone(1.0, sr, 6000)
    y = telephone_band(low + mid + high, sr, mulaw=False)
    spectrum = np.abs(np.fft.rfft(y[800:]))  # skip the filter's start-up
    freqs = np.fft.rfftfreq(len(y) - 800, 1 / 8000)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert len(y) == 8000
    assert at(1000) > 30 * at(100)
    sip = telephone_band(low + mid + high, sr, mulaw=False, bandpass=False)  # G.711 end to end keeps 0–4 kHz
    sip_spectrum = np.abs(np.fft.rfft(sip[800:]))
    assert sip_spectrum[np.argmin(np.abs(freqs - 100))] > 0.5 * sip_spectrum[np.argmin(np.abs(freqs - 1000))]


def test_mulaw_roundtrip_is_close():
    x = tone(0.1, 8000)
    assert np.max(np.abs(mulaw_decode(mulaw_encode(x)) - x)) < 0.02
