"""The live ASR follower: a bridge spool (written by the real FrameHub) in, transcript events out.  The follower
decodes on an in-process engine here; tests/ray/ run it on the Ray deployment across nodes."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest

from asr.audio import float_to_pcm16
from asr.streaming import LegStream, StreamParams
from asr.vad import SileroVad, VadParams
from domain.call_events import CallState, TranscriptComplete, TranscriptFinal, TranscriptPartial
from asr.follower import CLAIM, PRESENCE_SUFFIX, FollowerParams, SpoolFollower
from domain.spool import ENDED_MARKER, FRAME_BYTES
from serving.pipeline import EventSink
from telephony.media import FrameHub
from tests.asr.fakes import FakeEngine, PartialModeEngine

SECONDS = 20


class Collect:
    def __init__(self):
        self.events = []

    def publish(self, event):
        self.events.append(event)

    def finals(self, call_id=None):
        return [(e.call_id, e.leg, e.segment_id, e.start_ms, e.end_ms) for e in self.events
                if isinstance(e, TranscriptFinal) and call_id in (None, e.call_id)]


@pytest.fixture(scope="module")
def call_audio(shared_data):
    from asr.audio import load_audio

    audio = load_audio(shared_data / "synthetic_calls" / "audio" / "d001.flac")
    assert audio.sample_rate == 8000
    pcm = {leg: float_to_pcm16(audio.samples[ch, : SECONDS * 8000]) for leg, ch in (("agent", 0), ("caller", 1))}
    return {leg: [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)] for leg, data in pcm.items()}


def follower(root, out, engine=None, params=FollowerParams(), stream_params=StreamParams()):
    engine = engine or FakeEngine()

    def make_stream(call_id, tenant_id, leg):
        return LegStream(engine, SileroVad(8000), call_id=call_id, tenant_id=tenant_id, leg=leg, role=leg,
                         sample_rate=8000, params=stream_params)

    return SpoolFollower(root, out, make_stream, params)


def spool_call(hub, call_id, frames, upto=None, start=0):
    t0 = time.monotonic()
    for leg, leg_frames in frames.items():
        for seq, pcm in enumerate(leg_frames[start:upto], start):
            hub.inbox.append((call_id, leg, seq, t0 + seq * 0.02, pcm))


def wait_spooled(hub):
    deadline = time.monotonic() + 10
    while hub.inbox and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(2 * hub.params.spool_interval_s)


def end_call(hub, call_id):
    done = threading.Event()
    hub.publish(CallState(call_id=call_id, state="ended"))
    hub.close_call(call_id, lambda _rec: done.set())
    assert done.wait(10)


def spool_ended_calls(root, names, frames):
    """Whole calls spooled and hung up, as a bridge worker leaves them for the ASR followers."""
    hub = FrameHub(root, EventSink(Collect()))
    for name in names:
        hub.open_call(name)
        spool_call(hub, name, frames)
        end_call(hub, name)
    hub.stop()


def run_until_complete(f, out, calls, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f.poll()
        if sum(isinstance(e, TranscriptComplete) for e in out.events) >= calls:
            return
    raise AssertionError(f"not complete; events: {Counter(e.kind for e in out.events)}")


def test_spool_reading_sink_gets_events_and_keeps_the_spool_for_asr(tmp_path, call_audio):
    bus = Collect()
    root = tmp_path / "recordings" / "spool"
    hub = FrameHub(root, EventSink(bus), tenant_id=3)
    hub.open_call("w1-a")
    spool_call(hub, "w1-a", call_audio, upto=100)
    end_call(hub, "w1-a")
    hub.stop()
    assert [e.state for e in bus.events] == ["ended"]  # call events go on the bus; the audio stays in the spool
    assert hub.frames_in == 200
    spool = root / "w1-a"
    assert (spool / ENDED_MARKER).exists() and (spool / "caller.pcm").stat().st_size == 100 * FRAME_BYTES
    assert list((tmp_path / "recordings").rglob("w1-a.wav")), "the stereo recording is written at hang-up"


def test_follower_transcribes_a_growing_spool_live_then_completes_and_removes_it(tmp_path, call_audio):
    out = Collect()
    root = tmp_path / "spool"
    hub = FrameHub(root, EventSink(Collect()), tenant_id=3)
    f = follower(root, out)
    hub.open_call("w1-live")
    for second in range(SECONDS):  # the follower keeps up with audio arriving second by second
        spool_call(hub, "w1-live", call_audio, start=50 * second, upto=50 * (second + 1))
        wait_spooled(hub)
        f.poll()
        assert f.backlog_s() <= 2 * 0.1  # at most one chunk per leg waits for more audio
    end_call(hub, "w1-live")
    run_until_complete(f, out, 1)
    hub.stop()
    kinds = [e.kind for e in out.events]
    assert kinds[-1] == "transcript.complete" and out.events[-1].segments == len(out.finals())
    assert {leg for _, leg, *_ in out.finals()} == {"agent", "caller"}
    assert any(isinstance(e, TranscriptPartial) for e in out.events), "a leg that keeps up gets partials"
    assert all(e.tenant_id == 3 and e.call_id == "w1-live" for e in out.events)
    for leg in ("agent", "caller"):
        starts = [start for _, l, _, start, _ in out.finals() if l == leg]
        assert starts == sorted(starts)
    assert not (root / "w1-live").exists() and not f.calls


def test_a_paused_live_leg_gets_its_final_decoded_early(tmp_path, call_audio):
    """Audio arriving 100 ms at a time, as the bridge spools it: at a pause the follower decodes the utterance as its final
    will be (published as a partial), and at the endpoint that final goes out with no decode left to do."""
    out = Collect()
    root = tmp_path / "spool"
    call = root / "w1-e"
    call.mkdir(parents=True)
    (call / "meta.json").write_text('{"call_uuid": "w1-e", "tenant_id": 1}')
    files = {leg: open(call / f"{leg}.pcm", "wb") for leg in call_audio}  # written as the bridge's spool is
    engine = PartialModeEngine()
    # every utterance ends at a 500 ms pause, 200 ms after its early final was due (no shorter pause for long ones)
    f = follower(root, out, engine, stream_params=StreamParams(vad=VadParams(long_utterance_ms=60_000)))
    for step in range(SECONDS * 10):
        for leg, fh in files.items():
            fh.write(b"".join(call_audio[leg][5 * step : 5 * (step + 1)]))
            fh.flush()
        f.poll()
    for fh in files.values():
        fh.close()
    (call / ENDED_MARKER).write_text("{}")
    run_until_complete(f, out, 1)
    early = [(e.leg, e.start_ms, e.end_ms) for e in out.events if isinstance(e, TranscriptPartial) and "快" not in e.text]
    finals = [(leg, start, end) for _, leg, _, start, end in out.finals()]
    ended_by_pause = [x for x in finals if x[2] < SECONDS * 1000 - 1000]  # not the one the hang-up cut off
    assert len(ended_by_pause) >= 2 and set(ended_by_pause) <= set(early), "every final here was decoded at its pause"
    decoded_at_endpoint = [x for x in finals if x not in early]
    assert engine.flags.count(False) == len(early) + len(decoded_at_endpoint), "an early final is not decoded twice"


def test_partials_are_rationed_per_pass_most_overdue_first_and_finals_are_not(tmp_path, call_audio):
    out = Collect()
    root = tmp_path / "spool"
    hub = FrameHub(root, EventSink(Collect()))
    f = follower(root, out, PartialModeEngine(), params=FollowerParams(early_decodes_per_pass=1))
    calls = ["w1-p", "w2-q", "w3-r"]
    for name in calls:
        hub.open_call(name)
    per_pass = []
    for second in range(SECONDS):  # three calls speaking at once, every leg live
        for name in calls:
            spool_call(hub, name, call_audio, start=50 * second, upto=50 * (second + 1))
        wait_spooled(hub)
        for _ in range(2):
            before = len(out.events)
            f.poll()
            per_pass.append(Counter("快" if "快" in getattr(e, "text", "") else type(e) for e in out.events[before:]))
    for name in calls:
        end_call(hub, name)
    run_until_complete(f, out, len(calls))
    hub.stop()
    assert max(c[TranscriptPartial] + c["快"] for c in per_pass) == 1, "one early final or partial per pass at most"
    assert max(c[TranscriptFinal] for c in per_pass) > 1, "finals are not rationed"
    partial_legs = {(e.call_id, e.leg) for e in out.events if isinstance(e, TranscriptPartial) and "快" in e.text}
    assert {call for call, _ in partial_legs} == set(calls), "the most overdue leg goes first: no call starves"
    assert len(out.finals()) == len(calls) * len(out.finals("w1-p")), "every call gets all its finals"


def test_a_backlog_gets_finals_only_and_loses_nothing(tmp_path, call_audio):
    root = tmp_path / "spool"
    spool_ended_calls(root, ["w1-x", "w2-y"], call_audio)
    out = Collect()
    f = follower(root, out)
    f._discover()
    f._discover()  # one new call per pass
    assert f.backlog_s() == pytest.approx(2 * 2 * SECONDS, abs=0.1)  # both legs of both calls are waiting
    run_until_complete(f, out, 2)
    assert not any(isinstance(e, TranscriptPartial) for e in out.events)
    assert out.finals("w1-x") and [x[1:] for x in out.finals("w1-x")] == [x[1:] for x in out.finals("w2-y")]
    live = Collect()  # the same audio followed live yields the same finals
    hub = FrameHub(root, EventSink(Collect()))
    f2 = follower(root, live)
    hub.open_call("w3-z")
    for second in range(SECONDS):
        spool_call(hub, "w3-z", call_audio, start=50 * second, upto=50 * (second + 1))
        wait_spooled(hub)
        f2.poll()
    end_call(hub, "w3-z")
    run_until_complete(f2, live, 1)
    hub.stop()
    assert sorted(x[1:] for x in live.finals()) == sorted(x[1:] for x in out.finals("w1-x"))


def test_a_restarted_follower_resumes_without_repeating_finals(tmp_path, call_audio):
    root = tmp_path / "spool"
    spool_ended_calls(root, ["w1-r"], call_audio)
    first = Collect()
    f = follower(root, first)
    while not first.finals():  # crash after the first final
        f.poll()
    for leg in f.calls["w1-r"].legs.values():
        leg.fh.close()
    second = Collect()
    assert not follower(root, second).poll(), "a live follower's call is not taken"
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    (root / "w1-r" / CLAIM).write_text(f"{socket.gethostname()} {dead}")  # its follower process died
    run_until_complete(follower(root, second), second, 1)
    got = first.finals() + second.finals()
    assert len(got) == len(set(got)), "no final is published twice"
    reference = Collect()
    spool_ended_calls(root, ["w1-r"], call_audio)
    run_until_complete(follower(root, reference), reference, 1)
    assert sorted(got) == sorted(reference.finals())


class FlakyBus(Collect):
    """The bus is down for the third publish."""

    def __init__(self):
        super().__init__()
        self.attempts = 0

    def publish(self, event):
        self.attempts += 1
        if self.attempts == 3:
            raise ConnectionError("event bus unavailable")
        super().publish(event)


def test_a_bus_failure_is_retried_from_the_spool_and_nothing_is_lost_or_repeated(tmp_path, call_audio):
    root = tmp_path / "spool"
    spool_ended_calls(root, ["w1-f"], call_audio)
    flaky, reference = FlakyBus(), Collect()
    run_until_complete(follower(root, flaky, params=FollowerParams(claim_recheck_s=0.1)), flaky, 1)
    assert flaky.attempts > len(flaky.events)  # the failure happened
    spool_ended_calls(root, ["w1-f"], call_audio)
    run_until_complete(follower(root, reference), reference, 1)
    assert flaky.finals() == reference.finals()


def test_followers_share_the_calls_between_them(tmp_path):
    root = tmp_path / "spool"
    names = [f"w{i}-call" for i in range(12)]
    spool_ended_calls(root, names, {"caller": [bytes(FRAME_BYTES)] * 10})
    outs = [Collect(), Collect()]
    followers = [follower(root, out) for out in outs]
    for _ in range(6):
        for f in followers:
            f._discover()
    mine = [set(f.calls) for f in followers]
    assert mine[0].isdisjoint(mine[1]) and mine[0] | mine[1] == set(names) and len(mine[0]) == len(mine[1]) == 6
    for f, out, claimed in zip(followers, outs, mine):
        run_until_complete(f, out, len(claimed))
        assert {e.call_id for e in out.events} == claimed and all(e.segments == 0 for e in out.events)
    assert not any(root.iterdir())
    assert followers[0].status()["backlog_s"] == 0


def test_finals_of_calls_that_end_utterances_together_are_decoded_in_one_batch(tmp_path, call_audio):
    root = tmp_path / "spool"
    names = ["w1-b", "w2-b", "w3-b"]
    spool_ended_calls(root, names, call_audio)
    out, engine = Collect(), FakeEngine()
    f = follower(root, out, engine)
    for _ in names:
        f._discover()  # one new call per pass: all three before any audio is read, so their utterances end together
    run_until_complete(f, out, len(names))
    assert max(engine.batches) >= len(names)
    reference = Collect()
    spool_ended_calls(root, ["w4-b"], call_audio)
    run_until_complete(follower(root, reference), reference, 1)
    assert all([x[1:] for x in out.finals(name)] == [x[1:] for x in reference.finals()] for name in names)


def test_a_new_call_goes_to_the_least_loaded_follower(tmp_path):
    root = tmp_path / "spool"
    spool_ended_calls(root, [f"w{i}-n" for i in range(4)], {"caller": [bytes(FRAME_BYTES)] * 10})
    presence = root.parent / f"{root.name}{PRESENCE_SUFFIX}"
    presence.mkdir()
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    (presence / f"{dead}-1").write_text(f"{socket.gethostname()} {dead} 1\n0")  # a follower that died idle
    busy, idle = follower(root, Collect()), follower(root, Collect())
    busy._discover()
    busy._discover()  # the dead follower's announcement does not hold it back
    idle._discover()
    busy._discover()  # the idle follower holds fewer calls: the new call waits for it ...
    assert (len(busy.calls), len(idle.calls)) == (2, 1)
    idle._discover()  # ... and it takes it
    assert (len(busy.calls), len(idle.calls)) == (2, 2)
    stop = threading.Event()
    stop.set()
    busy.run(stop)
    assert not (presence / busy._tag).exists(), "a follower that stops withdraws its announcement"


def test_follower_count_is_one_per_core_on_cpu_and_two_on_a_gpu(tmp_path):
    from domain.settings import GPU_ASR_FOLLOWERS, Settings

    assert Settings(data_dir=tmp_path).live_asr_followers == (os.cpu_count() or 1)
    assert Settings(data_dir=tmp_path, asr_device="cuda").live_asr_followers == GPU_ASR_FOLLOWERS == 2
    assert Settings(data_dir=tmp_path, asr_device="cuda", asr_followers=5).live_asr_followers == 5


def test_gpu_followers_decode_more_ahead_of_finals_in_whisper_full_window(tmp_path):
    from domain.settings import GPU_DECODES_AHEAD, Settings

    cpu, gpu = Settings(data_dir=tmp_path), Settings(data_dir=tmp_path, asr_device="cuda")
    assert (cpu.live_decodes_ahead, cpu.live_full_window) == (1, False)
    assert (gpu.live_decodes_ahead, gpu.live_full_window) == (GPU_DECODES_AHEAD, True)
    assert Settings(data_dir=tmp_path, asr_device="cuda", asr_decodes_ahead=5).live_decodes_ahead == 5
    assert not Settings(data_dir=tmp_path, asr_device="cuda", asr_live_window="trimmed").live_full_window
    assert Settings(data_dir=tmp_path, asr_live_window="full").live_full_window


def test_each_tenants_calls_are_corrected_with_its_own_published_knowledge_base(engine, db_url, tmp_path):
    from domain.db import session_scope
    from domain.models import Tenant
    from domain.settings import Settings
    from knowledge import service
    from serving.pipeline import tenant_lexicons

    with session_scope(engine) as s:
        ours, theirs = Tenant(code="laibin", name="来宾市"), Tenant(code="other", name="别的城市")
        s.add_all([ours, theirs])
        s.flush()
        ours_id, theirs_id = ours.id, theirs.id
        entry = service.create_entry(s, ours_id, service.EntryIn(
            kind="faq", title="社保卡丢了怎么补办？", body="新卡启用后旧卡作废，医保个人账户余额自动转入新卡。"))
        service.transition(s, ours_id, entry.id, "submit")
        service.transition(s, ours_id, entry.id, "publish")
    lexicon_of = tenant_lexicons(Settings(data_dir=tmp_path, database_url=db_url))
    assert lexicon_of(ours_id).correct("就卡作费了") == "旧卡作废了"
    assert lexicon_of(theirs_id).correct("就卡作费了") == "就卡作费了"
    with session_scope(engine) as s:
        late = Tenant(code="late", name="新租户")
        s.add(late)
        s.flush()
        late_id = late.id
    assert lexicon_of(late_id).correct("就卡作费了") == "就卡作费了"  # a tenant added later: built on first use
    with session_scope(engine) as s:  # published while the follower runs: picked up without a restart
        entry = service.create_entry(s, theirs_id, service.EntryIn(
            kind="faq", title="社保卡怎么补办？", body="新卡启用后旧卡作废。"))
        service.transition(s, theirs_id, entry.id, "submit")
        service.transition(s, theirs_id, entry.id, "publish")
    deadline = time.monotonic() + 60
    while lexicon_of(theirs_id).correct("就卡作费了") != "旧卡作废了" and time.monotonic() < deadline:
        time.sleep(0.2)  # rebuilt in the background; the previous lexicon serves meanwhile
    assert lexicon_of(theirs_id).correct("就卡作费了") == "旧卡作废了"
