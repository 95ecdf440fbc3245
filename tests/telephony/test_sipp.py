"""SIPp as the carrier side: INVITE, G.711 RTP and RFC 2833 DTMF replayed from pcap files."""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.telephony.conftest import TEST_FLOW, free_port, peak_correlation
from tests.telephony.test_bridge import wait_cdr

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("sipp"), reason="sipp (apt sip-tester) not installed")]


def _alaw(code: int) -> int:
    """ITU-T G.711 A-law expansion of one byte."""
    a = code ^ 0x55
    t, seg = (a & 0x0F) << 4, (a & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108) << max(seg - 1, 0)
    return t if a & 0x80 else -t


ALAW = np.array([_alaw(i) for i in range(256)], dtype=np.int16)


def pcap_alaw_audio(path: Path) -> np.ndarray:
    """Decode the PCMA RTP payloads of a pcap (Ethernet/IPv4/UDP) into 16-bit PCM."""
    data = path.read_bytes()
    endian = "<" if struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 0: 4}[link]
    off, payload = 24, bytearray()
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        rtp = ip[(ip[0] & 0xF) * 4 + 8 :]
        if rtp[1] & 0x7F == 8:
            payload += rtp[12:]
    return ALAW[np.frombuffer(bytes(payload), dtype=np.uint8)]


def test_sipp_pcap_audio_and_rfc2833_dtmf(peers, shared_data):
    scenarios = shared_data / "sipp_scenarios"
    worker = peers.start_worker("wsipp", TEST_FLOW.model_copy(update={"ivr_timeout_s": 20.0}))  # DTMF comes at 8 s
    r = subprocess.run(
        ["sipp", "-sf", "docs/uac_pcap.xml", "-s", "12345", f"127.0.0.1:{worker.sip_port}", "-m", "1",
         "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-timeout", "40", "-nostdin"],
        cwd=scenarios, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    [call] = wait_cdr(peers, "sipp")
    # DTMF "1" from dtmf_2833_1.pcap chose the general queue; SIPp hung up a second later
    assert (call.ivr_path, call.skill_group, call.result, call.hangup_side) == ("1", "general", "abandoned_short", "caller")
    caller_leg = next(leg for leg in call.leg_rows if leg.leg == "caller")
    assert caller_leg.frames_received >= 400  # ~9 s of 20 ms frames
    audio, _ = sf.read(call.recording.path, dtype="int16")
    # the replayed G.711 audio is in the caller channel (peak over 1 s windows: under heavy CPU contention the
    # jitter buffer may conceal part of a burst-replayed pcap)
    assert peak_correlation(pcap_alaw_audio(scenarios / "pcap" / "g711a.pcap"), audio[:, 1]) > 0.95
