"""A scriptable pjsua2 user agent used as the caller or the agent softphone in tests, `hotline call` and `eval live`.

It runs in its own process (pjsua2 allows 4 calls per process) and speaks
JSON lines: commands on stdin, events on stdout.

Commands: ``{"op": "call", "id": "c1", "to": URI, "from": "13800000000", "wav": PATH,
"play_after": 0, "dtmf": "1", "dtmf_after": 1.0, "dtmf_method": "rfc2833|info"}``,
``{"op": "hangup", "id": "c1"}``, ``{"op": "dtmf", "id", "digits", "method"}``,
``{"op": "play", "id", "wav"}``, ``{"op": "quit"}``.
Events: ``ready``, ``incoming``, ``state`` (CALLING/EARLY/CONFIRMED/DISCONNECTED),
``media``, ``dtmf``, ``ended`` (with RTP statistics and the received-audio WAV).

Answering side: ``--answer-wav`` plays that file into every incoming call (auto answer).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import pjsua2 as pj

from telephony.sip import Scheduler, account_config, start_endpoint


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class UACall(pj.Call):
    def __init__(self, ua: "UserAgent", key: str, acc, call_id=pj.PJSUA_INVALID_ID, wav: str = "",
                 play_after: float = 0.0):
        super().__init__(acc, call_id)
        self.ua, self.key = ua, key
        self.wav, self.play_after = wav, play_after
        self.media = None
        self.player = None
        self.recorder = None
        self.record_path = ""
        self.stats = {"tx_pkt": 0, "rx_pkt": 0, "rx_loss": 0, "rx_discard": 0}
        self.t_confirmed = None
        self.done = False
        self.pending_dtmf: tuple[str, str, float] | None = None

    def onCallState(self, prm):
        info = self.getInfo()
        emit(ev="state", id=self.key, state=info.stateText, code=info.lastStatusCode, remote=info.remoteUri)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.t_confirmed = time.monotonic()
            if self.pending_dtmf:
                digits, method, after = self.pending_dtmf
                self.ua.sched.later(after, lambda key=self.key: self.ua.send_dtmf(key, digits, method))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.done:
            self.done = True
            self.recorder = None
            self.player = None
            emit(ev="ended", id=self.key, code=info.lastStatusCode, reason=info.lastReason,
                 duration_s=round(time.monotonic() - self.t_confirmed, 3) if self.t_confirmed else 0.0,
                 record=self.record_path, **self.stats)
            self.ua.finished(self)

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for i, mi in enumerate(info.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self.media is None:
                self.media = self.getAudioMedia(i)
                if self.ua.record_dir:
                    self.record_path = str(self.ua.record_dir / f"{self.key}.wav")
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.record_path)
                    self.media.startTransmit(self.recorder)
                if self.wav:
                    self.ua.sched.later(self.play_after, lambda key=self.key, wav=self.wav: self.ua.play(key, wav))
                emit(ev="media", id=self.key)

    def onDtmfDigit(self, prm):
        emit(ev="dtmf", id=self.key, digit=prm.digit)

    def play(self, wav: str) -> None:
        if self.done or self.media is None:
            return
        if self.player is not None:
            self.player.stopTransmit(self.media)
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(wav, pj.PJMEDIA_FILE_NO_LOOP)
        self.player.startTransmit(self.media)
        emit(ev="playing", id=self.key, wav=wav)

    def poll_stats(self) -> None:
        if self.done or self.media is None:
            return
        try:
            st = self.getStreamStat(0).rtcp
        except pj.Error:
            return
        self.stats = {"tx_pkt": st.txStat.pkt, "rx_pkt": st.rxStat.pkt, "rx_loss": st.rxStat.loss,
                      "rx_discard": st.rxStat.discard}


class UAAccount(pj.Account):
    def __init__(self, ua: "UserAgent"):
        super().__init__()
        self.ua = ua

    def onIncomingCall(self, prm):
        self.ua.incoming(self, prm)

    def onRegState(self, prm):
        emit(ev="registered", code=prm.code)


class UserAgent:
    def __init__(self, args):
        self.args = args
        self.ep = start_endpoint(args.port, user_agent="hotline-testua")
        self.record_dir = Path(args.record_dir) if args.record_dir else None
        if self.record_dir:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        self.accounts: dict[str, UAAccount] = {}
        self.calls: dict[str, UACall] = {}
        self.sched = Scheduler()
        self.seq = itertools.count(1)
        self.cmds: queue.Queue = queue.Queue()
        self.wav_map: dict[str, str] = json.loads(Path(args.answer_wav_map).read_text()) if args.answer_wav_map else {}
        users = args.user.split(",")
        # SIP digest passwords per user, from the environment (never argv: it shows in the process list)
        self.passwords: dict[str, str] = json.loads(os.environ.get("HOTLINE_UA_SIP_PASSWORDS") or "{}")
        self.default_acc = self.account(users[0], args.register)
        for user in users[1:]:
            self.account(user, args.register)

    def account(self, user: str, registrar: str = "") -> UAAccount:
        if user not in self.accounts:
            acc = UAAccount(self)
            acc.create(account_config(user, self.args.port, self.args.rtp_port, 200, registrar=registrar,
                                      password=self.passwords.get(user, "")))
            self.accounts[user] = acc
        return self.accounts[user]

    def incoming(self, acc, prm) -> None:
        key = f"in{next(self.seq)}"
        caller = _header(prm.rdata.wholeMsg, "X-Hotline-Caller")
        wav = self.wav_map.get(caller, self.args.answer_wav)
        call = UACall(self, key, acc, prm.callId, wav=wav, play_after=self.args.play_after)
        self.calls[key] = call
        info = call.getInfo()
        emit(ev="incoming", id=key, remote=info.remoteUri, local=info.localUri, caller=caller,
             header=_header(prm.rdata.wholeMsg, "X-Hotline-Call"))
        op = pj.CallOpParam(True)
        op.statusCode = 180
        call.answer(op)
        if self.args.reject:
            self.sched.later(self.args.answer_delay, lambda: self._answer(key, self.args.reject))
        elif self.args.answer_delay >= 0:
            self.sched.later(self.args.answer_delay, lambda: self._answer(key, 200))

    def _answer(self, key: str, code: int) -> None:
        call = self.calls.get(key)
        if call is None or call.done:
            return
        op = pj.CallOpParam(True)
        op.statusCode = code
        try:
            call.answer(op)
        except pj.Error:
            pass

    def play(self, key: str, wav: str) -> None:
        call = self.calls.get(key)
        if call is not None:
            call.play(wav)

    def send_dtmf(self, key: str, digits: str, method: str) -> None:
        """Timers and commands refer to calls by key: a pjsua2 Call must not outlive its DISCONNECTED callback."""
        call = self.calls.get(key)
        if call is None or call.done:
            return
        if method == "info":
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = digits
            call.sendDtmf(prm)
        else:
            call.dialDtmf(digits)
        emit(ev="dtmf_sent", id=call.key, digits=digits, method=method)

    def finished(self, call: UACall) -> None:
        self.calls.pop(call.key, None)

    def handle(self, cmd: dict) -> bool:
        op = cmd.get("op")
        call = self.calls.get(cmd.get("id", ""))
        if op == "call":
            acc = self.account(cmd.get("from") or self.args.user)
            c = UACall(self, cmd["id"], acc, wav=cmd.get("wav", ""), play_after=float(cmd.get("play_after", 0)))
            if cmd.get("dtmf"):
                c.pending_dtmf = (cmd["dtmf"], cmd.get("dtmf_method", "rfc2833"), float(cmd.get("dtmf_after", 1.0)))
            self.calls[cmd["id"]] = c
            try:
                c.makeCall(cmd["to"], pj.CallOpParam(True))
            except pj.Error as exc:
                self.calls.pop(cmd["id"], None)
                emit(ev="ended", id=cmd["id"], code=0, reason=exc.info(), duration_s=0, record="")
        elif op == "hangup" and call is not None:
            call.poll_stats()
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        elif op == "dtmf" and call is not None:
            self.send_dtmf(call.key, cmd["digits"], cmd.get("method", "rfc2833"))
        elif op == "play" and call is not None:
            call.play(cmd["wav"])
        elif op == "quit":
            return False
        return True

    def poll_all(self) -> None:
        for call in list(self.calls.values()):
            call.poll_stats()

    def hangup_all(self) -> None:
        for call in list(self.calls.values()):
            call.poll_stats()
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass

    def run(self) -> None:
        def read_stdin():
            for line in sys.stdin:
                if line.strip():
                    self.cmds.put(json.loads(line))
            self.cmds.put({"op": "quit"})

        threading.Thread(target=read_stdin, daemon=True).start()
        emit(ev="ready", port=self.args.port)
        deadline = time.monotonic() + self.args.max_seconds
        last_stats = 0.0
        running = True
        gc.disable()  # collect Call objects on this (pjsua2) thread only
        gc.freeze()
        while running and time.monotonic() < deadline:
            self.ep.libHandleEvents(20)
            self.sched.run_due()
            while running and not self.cmds.empty():
                running = self.handle(self.cmds.get_nowait())
            if time.monotonic() - last_stats > 1.0:
                last_stats = time.monotonic()
                gc.collect()
                self.poll_all()
        self.hangup_all()
        end = time.monotonic() + 2
        while self.calls and time.monotonic() < end:
            self.ep.libHandleEvents(20)
        self.calls.clear()
        self.accounts.clear()
        del self.default_acc
        self.sched = Scheduler()
        gc.collect()
        self.ep.libDestroy()
        emit(ev="bye")


def _header(msg: str, name: str) -> str:
    for line in msg.splitlines():
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="hotline test user agent (JSON lines on stdin/stdout)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--user", default="ua", help="SIP user; a comma-separated list creates one account per user")
    ap.add_argument("--register", default="", help="registrar host:port (e.g. Kamailio) to REGISTER with")
    ap.add_argument("--answer-wav", default="")
    ap.add_argument("--answer-wav-map", default="", help="JSON file: caller number (X-Hotline-Caller) -> WAV to play")
    ap.add_argument("--answer-delay", type=float, default=0.3, help="seconds before auto-answer; negative = never")
    ap.add_argument("--play-after", type=float, default=0.0)
    ap.add_argument("--reject", type=int, default=0, help="answer incoming calls with this status instead of 200")
    ap.add_argument("--record-dir", default="")
    ap.add_argument("--max-seconds", type=float, default=3600)
    UserAgent(ap.parse_args(argv)).run()


if __name__ == "__main__":
    main()
