"""pjsua2 Endpoint setup shared by the bridge worker and the test UA.

One Endpoint per process, loopback only, null sound device (the conference
bridge is clocked by pjmedia's own clock thread), G.711 only, SIP events
polled from the process's main thread (``threadCnt = 0``) so no other Python
thread ever touches pjsua2.
"""
from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

MAX_CALLS = 4  # compile-time PJSUA_MAX_CALLS of the pjsua2-python wheel


def start_endpoint(sip_port: int, *, host: str = "127.0.0.1", log_level: int = 1, user_agent: str = "hotline"):
    import pjsua2 as pj

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.maxCalls = MAX_CALLS
    cfg.uaConfig.userAgent = user_agent
    cfg.logConfig.level = log_level
    cfg.logConfig.consoleLevel = log_level
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.channelCount = 1
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.quality = 4
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = sip_port
    tcfg.boundAddress = host
    tcfg.publicAddress = host
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        keep = codec.codecId.split("/")[0] in ("PCMA", "PCMU")
        ep.codecSetPriority(codec.codecId, (255 if codec.codecId.startswith("PCMA") else 250) if keep else 0)
    return ep


def account_config(user: str, sip_port: int, rtp_port: int, rtp_range: int, *, host: str = "127.0.0.1",
                   registrar: str = "", password: str = ""):
    """``password``: SIP digest credentials for ``user`` (any realm), answered to a registrar's 401/407."""
    import pjsua2 as pj

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@{host}:{sip_port}"
    if registrar:
        acfg.idUri = f"sip:{user}@{registrar.split(':')[0]}"
        acfg.regConfig.registrarUri = f"sip:{registrar}"
        acfg.regConfig.timeoutSec = 300
    if password:
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    acfg.mediaConfig.transportConfig.port = rtp_port
    acfg.mediaConfig.transportConfig.portRange = rtp_range
    acfg.mediaConfig.transportConfig.boundAddress = host
    acfg.mediaConfig.transportConfig.publicAddress = host
    acfg.natConfig.iceEnabled = False
    acfg.natConfig.sdpNatRewriteUse = False
    acfg.natConfig.viaRewriteUse = False
    acfg.natConfig.contactRewriteUse = False
    return acfg


@dataclass(order=True)
class Timer:
    due: float
    seq: int
    fn: Callable = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Timers run on the main loop thread, between pjsua2 event polls."""

    def __init__(self):
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def later(self, delay: float, fn: Callable) -> Timer:
        t = Timer(time.monotonic() + delay, next(self._seq), fn)
        heapq.heappush(self._heap, t)
        return t

    def run_due(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0].due <= now:
            t = heapq.heappop(self._heap)
            if not t.cancelled:
                t.fn()
