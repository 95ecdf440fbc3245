"""Live transcription of one call leg: 20 ms PCM16 frames in, partial and final transcripts out.

VAD endpointing cuts the stream into utterances.  While someone speaks the
utterance so far is decoded every ``partial_interval_ms`` (a partial), the fast way.  A partial's cost does
not grow with the utterance: once more than ``partial_window_ms`` of audio would be decoded, the audio up to the
last pause is decoded once more and its text committed, and later partials decode only what follows it,
after the committed text.  When
the speaker pauses for ``early_final_pause_ms`` the utterance is decoded as its final
would be (the early final): it is published as a partial, and if the endpoint
follows with no more speech it *is* the final, with no decode left to wait for;
otherwise the utterance is decoded once more at its endpoint.  Memory is
bounded: outside speech only a short pre-roll is kept, and an utterance is
force-ended after ``VadParams.max_utterance_ms``.

``push`` decodes as it goes.  A scheduler serving many legs instead ``feed``s them all and hands what
they need decoded (``Decode`` requests: finals, early finals, partials) to ``decode_all``, which batches
the requests of every leg for the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asr.audio import AudioError, pcm16_to_float, resample
from asr.engines.base import AsrEngine, PreviousTextParams, Recognised, transcribe_batch
from asr.hotwords import Lexicon
from asr.text import punctuate
from asr.vad import Endpointer, SileroVad, VadParams
from domain.call_events import AudioFrame, TranscriptFinal, TranscriptPartial

Output = TranscriptPartial | TranscriptFinal


@dataclass(frozen=True)
class StreamParams:
    vad: VadParams = field(default_factory=VadParams)
    partial_interval_ms: int = 900  # a partial at least this often during speech
    min_partial_ms: int = 400  # no partial before this much speech is buffered
    # A pause this long stops partials and gets the early final: the endpoint (and its final) may be due within
    # the next few hundred ms, and its decode is then already done.  On 20 synthetic calls 38 % of such pauses
    # do not end the utterance (an extra decode, shown as a partial); at 240 ms it is 47 %, at 350 ms 28 %.
    early_final_pause_ms: int = 300
    # A partial decodes at most about this much audio when the speaker has paused for ``cut_pause_ms`` since its
    # committed text: the audio up to that pause is committed (decoded once) and only what follows is decoded
    # again.  3000 / 100 ms saves a little more CPU and costs the partials' text more; docs/speech.md,
    # "Partials with a committed prefix".
    partial_window_ms: int = 4000
    cut_pause_ms: int = 200
    preroll_ms: int = 600  # audio kept outside speech, so the VAD's look-back pad is available
    min_final_confidence: float = 0.05  # finals below this are treated as noise and dropped (engines that score)
    previous_text: PreviousTextParams = field(default_factory=PreviousTextParams)  # finals passed on as context


@dataclass
class Decode:
    """Audio of one leg for the engine: an ended utterance (``final``), the utterance up to a pause
    (``early``) or the utterance so far (``partial``).  Sample positions are the leg's; ``audio`` is 16 kHz,
    or None when the text is known already (a final whose early final was decoded).  ``text`` starts with what
    is known of the audio before ``audio`` (a partial continuing an early final) and is completed by the engine.
    ``prompt`` is what the leg said before the utterance, for the engine to condition a final's decode on."""

    stream: LegStream
    kind: str
    start: int
    end: int
    audio: np.ndarray | None
    text: str = ""
    confidence: float = 0.0
    prompt: str = ""
    # A partial that commits: ``commit`` is the audio from its start to ``commit_end`` (before ``audio``), whose
    # text is appended to ``text`` and kept for the later partials of the utterance.
    commit: np.ndarray | None = None
    commit_end: int = 0
    delayed: bool = False  # a partial later than twice the interval: the decoder is behind (TranscriptPartial)


def decode_all(requests: list[Decode]) -> list[tuple[Decode, list[Output]]]:
    """Decode the requests of any number of legs, then complete each in order.

    Requests that share an engine and a decoding (finals and early finals with the final's beam and hot
    words, partials the fast way) go to the engine as one batch: decoding several utterances together costs
    far less than one after another (the decoder's weights are read once per step for the whole batch)."""
    groups: dict[tuple, list[tuple[int, str]]] = {}  # the pieces of audio to decode: (request, "audio" | "commit")
    for i, r in enumerate(requests):
        partial, lexicon = r.kind == "partial", r.stream.lexicon
        hotwords = tuple(lexicon.prompt_terms()) if lexicon is not None and not partial else ()
        for piece in ("commit", "audio"):
            if getattr(r, piece) is not None:
                groups.setdefault((id(r.stream.engine), partial, hotwords), []).append((i, piece))
    recognised: dict[tuple[int, str], list[Recognised]] = {}
    for (_, partial, hotwords), keys in groups.items():
        engine = requests[keys[0][0]].stream.engine
        audio = [getattr(requests[i], piece) for i, piece in keys]
        prompts = [requests[i].prompt or None for i, _ in keys]
        recognised.update(zip(keys, transcribe_batch(engine, audio, hotwords=list(hotwords) or None, prompts=prompts,
                                                     partial=partial)))
    return [(r, r.stream.complete(r, recognised.get((i, "audio")), recognised.get((i, "commit"))))
            for i, r in enumerate(requests)]


class LegStream:
    """One leg (caller or agent) of one call."""

    def __init__(
        self,
        engine: AsrEngine,
        vad: SileroVad,
        *,
        call_id: str,
        tenant_id: int,
        leg: str,
        role: str,
        sample_rate: int,
        params: StreamParams = StreamParams(),
        lexicon: Lexicon | None = None,
    ):
        if sample_rate not in (8000, 16000):
            raise AudioError(f"实时识别只支持 8000 或 16000 Hz，收到 {sample_rate} Hz")
        if vad.sample_rate != sample_rate:
            raise AudioError("VAD 采样率与音频流不一致")
        self.engine, self.params = engine, params
        self.call_id, self.tenant_id, self.leg, self.role = call_id, tenant_id, leg, role
        self.sample_rate = sample_rate
        self.lexicon = lexicon  # domain terms: decoding bias and post-correction
        self._endpointer = Endpointer(vad, params.vad)
        self._buffer = np.zeros(0, np.float32)  # audio from absolute sample ``_buffer_start`` on
        self._buffer_start = 0
        self._received = 0
        self._utt_start: int | None = None
        self._last_partial_at = 0
        self._segment_id = 0
        self._early: tuple[int, int, str, float] | None = None  # (start, end, text, confidence) of the early final
        self._prefix: tuple[int, str] = (0, "")  # the open utterance's committed text, and where its audio ends
        self._cut: int | None = None  # the last short pause after the committed text: where the next commit ends
        self._finals: list[Decode] = []  # ended utterances not yet taken
        # The end of this leg's finals: the text said before the next utterance, given to the engine with its
        # final's decode (the speaker's words, names and topic carry over; docs/speech.md, "Previous text").
        # Partials go without: the previous text costs a partial a quarter more CPU, and it is for display.
        self._previous_text = ""

    # -- public ---------------------------------------------------------------------------------
    def push(self, frame: AudioFrame, partials: bool = True) -> list[Output]:
        """Frames of any length, decoded here.  ``partials=False`` decodes finals only (a leg catching up on a
        backlog)."""
        self.feed(frame)
        out = self.decode(self.take_finals())
        if partials:
            out += self.decode([d for d in (self.early_final_request(), self.partial_request()) if d])
        return out

    def feed(self, frame: AudioFrame) -> None:
        """Frames of any length, endpointed but not decoded: each utterance they end waits in ``take_finals``.
        A scheduler serving many legs feeds them all, then decodes their finals together (``decode_all``)."""
        if frame.sample_rate != self.sample_rate:
            raise AudioError(f"音频帧采样率 {frame.sample_rate} Hz 与该通道 {self.sample_rate} Hz 不一致")
        samples = pcm16_to_float(frame.pcm)
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += len(samples)
        for ev in self._endpointer.push(samples):
            if ev.kind == "start":
                self._utt_start = max(ev.sample, self._buffer_start)
                self._last_partial_at = self._utt_start  # the first partial is due an interval after speech began
                self._prefix, self._cut = (self._utt_start, ""), None
            elif self._utt_start is not None:
                self._finals.append(self._final_request(self._utt_start, ev.sample))
                self._utt_start = None
        pause = self._endpointer.pending_end  # inside the silence now running, if any
        if self._utt_start is not None and self._endpointer.trailing_silence_ms >= self.params.cut_pause_ms \
                and pause > self._prefix[0]:
            self._cut = pause
        self._trim()

    def take_finals(self) -> list[Decode]:
        """The utterances ended since the last call, oldest first; each must go through ``decode``/``complete``."""
        finals, self._finals = self._finals, []
        return finals

    def early_final_request(self) -> Decode | None:
        """At a pause of ``early_final_pause_ms``: the utterance as its endpoint would cut it, for the final's
        decoding.  Completed, it is published as a partial and kept to become the final if no more speech
        follows."""
        if not self.early_final_due():
            return None
        end = self._endpointer.pending_end
        self._last_partial_at = self._received
        return Decode(self, "early", self._utt_start, end, self._audio(self._utt_start, end),
                      prompt=self._previous_text)

    def early_final_due(self) -> bool:
        """The speaker has paused for ``early_final_pause_ms`` and the audio up to the pause is not decoded yet."""
        end = self._endpointer.pending_end
        if self._utt_start is None or end is None or self._endpointer.trailing_silence_ms < self.params.early_final_pause_ms:
            return False
        return self._early is None or self._early[:2] != (self._utt_start, end)  # else: not spoken since

    def partial_request(self) -> Decode | None:
        """The utterance so far, when a partial is due: the audio after its committed text (an early final's, or
        a commit's), after that text.  A partial is for display, and re-decoding a long utterance from its start
        every second costs more and more.  When more than ``partial_window_ms`` would be decoded and the speaker
        has paused since the committed text, the audio up to the pause is committed by this partial."""
        overdue = self.partial_overdue_ms()
        if overdue < 0:
            return None
        self._last_partial_at = self._received
        start, text = self._prefix
        delayed = overdue >= self.params.partial_interval_ms
        cut = self._cut
        if cut is not None and start < cut < self._received \
                and self._received - start > self._ms(self.params.partial_window_ms):
            self._cut = None
            return Decode(self, "partial", self._utt_start, self._received, self._audio(cut, self._received), text,
                          commit=self._audio(start, cut), commit_end=cut, delayed=delayed)
        return Decode(self, "partial", self._utt_start, self._received, self._audio(start, self._received), text,
                      delayed=delayed)

    def partial_overdue_ms(self) -> int:
        """How long a partial has been due (≥ 0), or -1 when none is: lets a scheduler serving many legs
        decode the most overdue partials first."""
        if self._utt_start is None or self._endpointer.trailing_silence_ms >= self.params.early_final_pause_ms:
            return -1
        if self._received - self._utt_start < self._ms(self.params.min_partial_ms):
            return -1
        overdue = self._received - self._last_partial_at - self._ms(self.params.partial_interval_ms)
        return self._to_ms(overdue) if overdue >= 0 else -1

    def decode(self, requests: list[Decode]) -> list[Output]:
        """Decode this leg's requests with its engine and complete them."""
        return [ev for _, events in decode_all(requests) for ev in events]

    def complete(self, request: Decode, recognised: list[Recognised] | None,
                 committed: list[Recognised] | None = None) -> list[Output]:
        """The events for a request the engine has decoded (``recognised``; None: it needed no decoding;
        ``committed``: the decoded ``commit`` audio of a partial that commits)."""
        if committed is not None:
            request.text = _continued(request.text + self._corrected(committed))
            if request.start == self._utt_start:
                self._prefix = (request.commit_end, request.text)
        if recognised is not None:
            request.text += self._corrected(recognised)
            request.confidence = min((r.confidence for r in recognised), default=0.0)
        if request.kind == "early":
            self._early = (request.start, request.end, request.text, request.confidence)
            if request.start == self._utt_start and request.end >= self._prefix[0]:  # later partials go on from it
                self._prefix = (request.end, _continued(request.text))
        if request.kind != "final":
            return self._partial_event(request.start, request.end, request.text, request.delayed)
        scored = self.engine.capabilities.confidence
        if not request.text or (scored and request.confidence < self.params.min_final_confidence):
            return []
        self._segment_id += 1
        self._previous_text = self.params.previous_text.extend(self._previous_text, request.text, request.confidence,
                                                               scored)
        return [
            TranscriptFinal(
                tenant_id=self.tenant_id, call_id=self.call_id, leg=self.leg, role=self.role,
                start_ms=self._to_ms(request.start), end_ms=self._to_ms(request.end), text=request.text,
                confidence=round(request.confidence, 3), engine=self.engine.name, segment_id=self._segment_id,
            )
        ]

    def flush(self) -> list[Output]:
        """End of the leg: finalise any utterance in progress."""
        for ev in self._endpointer.flush():
            if ev.kind == "end" and self._utt_start is not None:
                self._finals.append(self._final_request(self._utt_start, min(ev.sample, self._received)))
                self._utt_start = None
        self._trim()
        return self.decode(self.take_finals())

    @property
    def segments_published(self) -> int:
        """Finals emitted so far (the last final's ``segment_id``)."""
        return self._segment_id

    @property
    def buffered_samples(self) -> int:
        return len(self._buffer)

    # -- internals ------------------------------------------------------------------------------
    def _ms(self, ms: int) -> int:
        return ms * self.sample_rate // 1000

    def _to_ms(self, sample: int) -> int:
        return sample * 1000 // self.sample_rate

    def _slice(self, start: int, end: int) -> np.ndarray:
        a, b = max(0, start - self._buffer_start), max(0, end - self._buffer_start)
        return self._buffer[a:b]

    def _audio(self, start: int, end: int) -> np.ndarray:
        return resample(self._slice(start, end), self.sample_rate, 16000)

    def _corrected(self, recognised: list[Recognised]) -> str:
        text = "".join(r.text for r in recognised)
        return self.lexicon.correct(text) if text and self.lexicon is not None else text

    def _partial_event(self, start: int, end: int, text: str, delayed: bool = False) -> list[Output]:
        """The open utterance up to ``end`` as a partial: no sentence-final 。, since the speaker may go on."""
        text = punctuate(text, final=False).rstrip("。") if text else ""
        if not text:
            return []
        return [
            TranscriptPartial(
                tenant_id=self.tenant_id, call_id=self.call_id, leg=self.leg, role=self.role,
                start_ms=self._to_ms(start), end_ms=self._to_ms(end), text=text, engine=self.engine.name,
                delayed=delayed,
            )
        ]

    def _final_request(self, start: int, end: int) -> Decode:
        early, self._early = self._early, None
        if early is not None and early[:2] == (start, end):  # the same audio, decoded at the pause
            return Decode(self, "final", start, end, None, early[2], early[3])
        return Decode(self, "final", start, end, self._audio(start, end), prompt=self._previous_text)

    def _trim(self) -> None:
        """Keep only the open utterance, or a short pre-roll when nobody speaks."""
        keep_from = self._utt_start if self._utt_start is not None else self._received - self._ms(self.params.preroll_ms)
        drop = max(0, keep_from - self._buffer_start)
        if drop:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop


def _continued(text: str) -> str:
    """Committed text the speaker went on after: a sentence-final 。 becomes a comma."""
    return text[:-1] + "，" if text.endswith("。") else text
