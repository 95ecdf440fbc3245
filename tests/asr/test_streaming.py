import json
import os

import numpy as np
import pytest

from asr.audio import AudioError, load_audio
from asr.engines.base import EngineCapabilities, PreviousTextParams, Recognised
from asr.streaming import LegStream, StreamParams, decode_all
from asr.text import edit_distance, normalise_for_cer
from asr.vad import SileroVad, VadParams, speech_segments
from domain.call_events import AudioFrame, TranscriptFinal, TranscriptPartial

from .fakes import FakeEngine, PartialModeEngine, frames


def _leg(engine, sr=8000, **kw):
    return LegStream(engine, SileroVad(sr), call_id="c1", tenant_id=1, leg="caller", role="caller", sample_rate=sr, **kw)


@pytest.fixture(scope="module")
def caller_channel(synthetic_calls):
    audio = load_audio(synthetic_calls / "audio" / "d001.flac")
    refs = [r for r in json.loads((synthetic_calls / "refs" / "d001.json").read_text()) if r["channel"] == "right"]
    return audio.samples[1], refs


def _run(stream, samples, sr):
    out, times = [], []
    for i, frame in enumerate(frames(samples, sr)):
        for ev in stream.push(frame):
            out.append(ev)
            times.append((i + 1) * 20)
    out += stream.flush()
    return out, times


def test_silence_and_noise_give_no_text():
    engine = FakeEngine()
    stream = _leg(engine)
    rng = np.random.default_rng(1)
    quiet = np.concatenate([np.zeros(8000 * 5, np.float32), (rng.standard_normal(8000 * 5) * 0.002).astype(np.float32)])
    out, _ = _run(stream, quiet, 8000)
    assert out == [] and engine.calls == 0


def test_partials_every_second_and_final_at_endpoint(caller_channel):
    samples, refs = caller_channel
    engine = FakeEngine()
    stream = _leg(engine)
    span = samples[: int(16.5 * 8000)]  # first caller turn: 9.722–15.192 s
    out, times = _run(stream, span, 8000)
    partials = [(e, t) for e, t in zip(out, times) if isinstance(e, TranscriptPartial)]
    finals = [e for e in out if isinstance(e, TranscriptFinal)]
    assert len(finals) == 1
    f = finals[0]
    assert abs(f.start_ms - refs[0]["start"] * 1000) < 400 and abs(f.end_ms - refs[0]["end"] * 1000) < 800
    assert f.leg == "caller" and f.role == "caller" and f.call_id == "c1" and f.tenant_id == 1 and f.confidence > 0
    # partials at least once a second while speaking
    ptimes = [refs[0]["start"] * 1000] + [t for _, t in partials] + [f.end_ms]
    assert len(partials) >= 4
    assert max(b - a for a, b in zip(ptimes, ptimes[1:])) <= 1000 + 400
    assert all(p.text and not p.text.endswith("。") for p, _ in partials)


def test_partials_use_the_fast_mode_and_a_pause_decodes_the_final_early(caller_channel):
    samples, _ = caller_channel
    engine = PartialModeEngine()
    no_commits = StreamParams(partial_window_ms=60_000)  # one decode per partial (commits: the test below)
    out, _ = _run(_leg(engine, params=no_commits), samples[: int(16.5 * 8000)], 8000)
    partials = [e for e in out if isinstance(e, TranscriptPartial)]
    (final,) = [e for e in out if isinstance(e, TranscriptFinal)]
    fast = [p for p in partials if "快" in p.text]
    early = [p for p in partials if "快" not in p.text]
    assert len(fast) == engine.flags.count(True) >= 3
    # a partial after an early final the speaker talked on past continues its text, decoding only what followed
    continued = [(e, p) for e, p in zip(partials, partials[1:]) if e in early and p in fast and p.start_ms == e.start_ms]
    assert continued and all(p.text.startswith(e.text + "，") for e, p in continued)
    # every full decode was an early final at a pause, published as a partial ...
    assert len(early) == engine.flags.count(False) >= 2
    # ... the last one became the final, with no decode left at the endpoint ...
    assert early[-1].end_ms == final.end_ms and early[-1].text + "。" == final.text
    # ... and the ones the speaker talked on past were superseded by it
    assert all(len(e.text) < len(early[-1].text) for e in early[:-1])
    # an engine without the mode is called as before (no unknown keyword)
    plain = FakeEngine()
    assert any(isinstance(e, TranscriptFinal) for e in _run(_leg(plain), samples[: int(16.5 * 8000)], 8000)[0])


def test_finals_only_decode_at_the_endpoint_with_the_early_finals_result(caller_channel):
    """Finals only (``partials=False``): the endpoint decodes its utterance itself, with the same result as
    an early final of the same audio would give."""
    samples, _ = caller_channel
    span = samples[: int(16.5 * 8000)]
    late, early = FakeEngine(), FakeEngine()
    late_stream, early_stream = _leg(late), _leg(early)
    late_out = [e for f in frames(span, 8000) for e in late_stream.push(f, partials=False)]
    early_out = _run(early_stream, span, 8000)[0]
    final = lambda out: [(e.start_ms, e.end_ms, e.text) for e in out if isinstance(e, TranscriptFinal)]  # noqa: E731
    assert final(late_out) == final(early_out) and len(final(late_out)) == 1
    assert late.calls == 1


def test_legs_fed_together_have_their_finals_and_partials_decoded_in_one_batch_each(caller_channel):
    """A scheduler serving many legs feeds them all, then decodes their finals in one engine call, and their
    early finals and partials in one more per decoding: the events are those each leg gives alone."""
    samples, _ = caller_channel
    span = samples[: int(16.5 * 8000)]
    engine = PartialModeEngine()
    commits = StreamParams(partial_window_ms=3000, cut_pause_ms=100)  # some partials commit in this turn
    legs = [LegStream(engine, SileroVad(8000), call_id=f"c{i}", tenant_id=1, leg="caller", role="caller",
                      sample_rate=8000, params=commits) for i in range(3)]
    together: dict[str, list] = {leg.call_id: [] for leg in legs}
    for frame in frames(span, 8000):
        for leg in legs:
            leg.feed(frame)
        finals = [d for leg in legs for d in leg.take_finals()]
        ahead = [d for leg in legs for d in (leg.early_final_request(), leg.partial_request()) if d]
        for request, events in decode_all(finals) + decode_all(ahead):
            together[request.stream.call_id] += events
    for leg in legs:
        together[leg.call_id] += leg.flush()
    alone = _run(_leg(PartialModeEngine(), params=commits), span, 8000)[0]
    key = lambda events: [(type(e), e.start_ms, e.end_ms, e.text) for e in events]  # noqa: E731
    assert all(key(events) == key(alone) for events in together.values())
    # every decode held the three legs' utterances (partials that commit: two pieces of audio each)
    assert engine.batches and set(engine.batches) == {3, 6}
    assert any(isinstance(e, TranscriptFinal) for e in alone)


def test_each_final_decode_is_given_the_legs_previous_finals(caller_channel):
    """What a leg said before an utterance (its finals so far) goes to the engine with the final's decode of it
    (and its early finals'); partials, for display, go without."""
    samples, _ = caller_channel
    engine = PartialModeEngine()
    out, _ = _run(_leg(engine), samples[: int(26 * 8000)], 8000)  # two caller turns
    finals = [e.text for e in out if isinstance(e, TranscriptFinal)]
    said = ["".join(finals[:k]) or None for k in range(len(finals))]  # before each utterance
    full = [p for p, fast in zip(engine.prompts, engine.flags) if not fast]
    assert len(finals) >= 2 and sorted(set(full), key=lambda p: len(p or "")) == said
    assert full == sorted(full, key=lambda p: len(p or "")), "in the order the leg said it"
    assert {p for p, fast in zip(engine.prompts, engine.flags) if fast} == {None}
    # a final the engine was unsure of (the fake scores 0.9) is not passed on: a misheard context is heard again
    unsure = PartialModeEngine()
    wary = StreamParams(previous_text=PreviousTextParams(min_confidence=0.95))
    _run(_leg(unsure, params=wary), samples[: int(26 * 8000)], 8000)
    assert set(unsure.prompts) == {None}


class SizedPartialEngine(PartialModeEngine):
    """Records the seconds of audio of each fast (partial) decode."""

    def __init__(self):
        super().__init__()
        self.partial_seconds: list[float] = []

    def transcribe(self, samples_16k, *, hotwords=None, prompt=None, partial=False):
        if partial:
            self.partial_seconds.append(len(samples_16k) / 16000)
        return super().transcribe(samples_16k, hotwords=hotwords, prompt=prompt, partial=partial)


def test_partials_of_a_long_utterance_decode_a_bounded_window_after_committed_text(synthetic_calls):
    """A partial never decodes much more than ``partial_window_ms`` once the speaker has paused since its
    committed text: the audio up to the pause is decoded once (committed), later partials decode what follows
    and continue the committed text.  Without the window the partials of a long utterance decode it all."""
    audio = load_audio(synthetic_calls / "audio" / "d002.flac")
    agent = audio.samples[0][29 * 8000 : 41 * 8000]  # a turn of more than 8 s, with short pauses in it
    windowed, unbounded = SizedPartialEngine(), SizedPartialEngine()
    params = StreamParams(partial_window_ms=2000)
    out, _ = _run(_leg(windowed, params=params), agent, 8000)
    whole, _ = _run(_leg(unbounded, params=StreamParams(partial_window_ms=60_000)), agent, 8000)
    # every partial decode (a commit, or what follows one) is at most the window, or the audio between two
    # pauses where the speaker went on longer without one (3.7 s in this turn); without commits the last
    # partials decode the whole 10 s turn, and twice the audio in all
    assert max(windowed.partial_seconds) <= 3.8 and max(unbounded.partial_seconds) > 9.5
    assert sum(unbounded.partial_seconds) > 2 * sum(windowed.partial_seconds)
    # a partial that follows a commit starts with the text committed so far, and the text only grows
    partials = [e for e in out if isinstance(e, TranscriptPartial) and "快" in e.text]
    assert len(windowed.partial_seconds) > len(partials), "some partials committed (two decodes)"
    texts = [p.text for p in partials]
    assert any(b.startswith(a.rstrip("快")) and "，" in b for a, b in zip(texts, texts[1:]))
    # finals are untouched: the same utterances, decoded whole
    final = lambda events: [(e.start_ms, e.end_ms, e.text) for e in events if isinstance(e, TranscriptFinal)]  # noqa: E731
    assert final(out) == final(whole) and final(out)


def test_partials_later_than_twice_the_interval_say_so(caller_channel):
    """A scheduler that falls behind decodes a leg's partials less often: such a partial is flagged
    ``delayed`` (the desk shows 识别中); partials on time are not."""
    samples, _ = caller_channel
    span = samples[: int(16.5 * 8000)]
    on_time, _ = _run(_leg(PartialModeEngine()), span, 8000)
    assert not any(e.delayed for e in on_time if isinstance(e, TranscriptPartial))
    stream, late = _leg(PartialModeEngine()), []
    for i, frame in enumerate(frames(span, 8000)):
        stream.feed(frame)
        late += stream.decode(stream.take_finals())
        if i % 100 == 99:  # a partial every 2 s at best
            late += stream.decode([d for d in (stream.partial_request(),) if d])
    flagged = [e for e in late if isinstance(e, TranscriptPartial)]
    assert flagged and all(e.delayed for e in flagged)
    assert any(isinstance(e, TranscriptFinal) for e in late)


class UnscoredEngine(FakeEngine):
    """Like FunASR: no confidence score (0.0)."""

    capabilities = EngineCapabilities(streaming=False, partials=True, confidence=False)

    def transcribe(self, samples_16k, *, hotwords=None, prompt=None):
        return [Recognised(r.text, r.start_ms, r.end_ms, 0.0) for r in super().transcribe(samples_16k)]


def test_an_engine_without_confidence_scores_still_gets_its_finals_published(caller_channel):
    samples, _ = caller_channel
    out, _ = _run(_leg(UnscoredEngine()), samples[: int(16.5 * 8000)], 8000)
    finals = [e for e in out if isinstance(e, TranscriptFinal)]
    assert len(finals) == 1 and finals[0].text and finals[0].confidence == 0.0


def test_a_long_utterance_ends_at_a_shorter_pause(synthetic_calls):
    """An utterance of ``long_utterance_ms`` ends at a ``long_silence_ms`` pause, so its final is not a long
    decode after a long wait; a shorter one still needs ``min_silence_ms``."""
    audio = load_audio(synthetic_calls / "audio" / "d002.flac")
    agent = audio.samples[0][: 41 * 8000]  # its last turn (from 29.9 s) has a pause under 500 ms
    params = VadParams()
    whole = [s for s in speech_segments(agent, 8000, VadParams(long_utterance_ms=60_000)) if s[0] > 29_000]
    cut = [s for s in speech_segments(agent, 8000, params) if s[0] > 29_000]
    assert len(whole) == 1 and whole[0][1] - whole[0][0] < params.max_utterance_ms
    assert len(cut) == 2 and cut[0][1] - cut[0][0] >= params.long_utterance_ms
    assert cut[0][0] == whole[0][0] and cut[1][1] == whole[0][1]


def test_wrong_rate_frame_is_rejected():
    stream = _leg(FakeEngine())
    with pytest.raises(AudioError):
        stream.push(AudioFrame(leg="caller", sample_rate=16000, pcm=b"\x00\x00" * 320))
    with pytest.raises(AudioError):
        LegStream(FakeEngine(), SileroVad(8000), call_id="c", tenant_id=1, leg="caller", role="caller", sample_rate=44100)


def test_thirty_minute_stream_has_bounded_memory(caller_channel):
    """30 min of real speech/silence through the real VAD with a fast engine: buffers stay bounded."""
    samples, _ = caller_channel
    engine = FakeEngine()
    params = StreamParams()
    stream = _leg(engine, params=params)
    minutes = 30
    loop = samples[: 60 * 8000]  # one minute of the caller channel, replayed
    max_buffer = 0
    checkpoints = []
    finals = 0
    for minute in range(minutes):
        for frame in frames(loop, 8000):
            finals += sum(isinstance(e, TranscriptFinal) for e in stream.push(frame))
            max_buffer = max(max_buffer, stream.buffered_samples)
        if minute in (4, minutes - 1):
            checkpoints.append(_rss_bytes())
    limit = (params.vad.max_utterance_ms + params.preroll_ms + 1000) * 8
    assert max_buffer <= limit
    assert engine.max_input_s <= params.vad.max_utterance_ms / 1000 + 1
    assert finals >= minutes * 4
    assert checkpoints[1] - checkpoints[0] < 8_000_000, checkpoints  # resident memory flat after minute 5


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_real_engine_streams_a_call_leg(caller_channel, whisper_engine):
    samples, refs = caller_channel
    stream = _leg(whisper_engine)
    span = samples[: int(26 * 8000)]  # two caller turns
    out, _ = _run(stream, span, 8000)
    finals = [e for e in out if isinstance(e, TranscriptFinal)]
    partials = [e for e in out if isinstance(e, TranscriptPartial)]
    assert partials and finals
    hyp = normalise_for_cer("".join(f.text for f in finals))
    ref = normalise_for_cer(refs[0]["text"] + refs[1]["text"])
    assert edit_distance(ref, hyp) / len(ref) < 0.25, (hyp, ref)
    assert all(f.text[-1] in "。？！" for f in finals)
    assert all(f.engine == "faster-whisper" for f in finals)
