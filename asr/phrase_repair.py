"""Repair knowledge-base phrases that ASR heard as homophones.

An agent answering from the knowledge base says its phrases ("旧卡作废", "即时制卡网点", "医保个人账户余额"),
and Whisper-base at telephone quality often writes a homophone that is no word at all ("就卡作费", "以宝个人账户").
``PhraseRepair`` knows every phrase of the KB (runs of 1 to ``max_words`` jieba words) by its toneless pinyin.
A transcript span that sounds exactly like a phrase (or, for a long phrase, like it but for one syllable
that shares its initial or final) and is written differently is replaced when a word-unigram language
model (jieba's dictionary, with ``kb_share`` of its mass given to the KB's phrases) finds the replaced context
at least ``min_gain`` (``near_min_gain``) more probable, in natural log.  Two guards keep correct text
intact: a span that is itself a phrase of the KB is never touched, and a replacement may not change a
character of a word that jieba's dictionary reads in the original (a real word is never bent into a KB
phrase: "可以一起" stays, though "可异议" sounds the same).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import jieba

from asr.pinyin import syllable_similarity, syllables

_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")


@dataclass(frozen=True)
class PhraseRepairParams:
    """Tuned on live transcripts of the synthetic calls against the false-change rate on citizens' own
    written messages (see docs/speech.md, "KB phrase repair")."""

    max_words: int = 3  # a phrase is a run of up to this many jieba words of KB text
    min_chars: int = 2
    max_chars: int = 6
    kb_share: float = 0.1  # share of the language model's mass given to the KB's phrases, whatever the KB's size
    min_gain: float = 5.0  # log-probability gain of the replaced context needed to replace
    near_min_chars: int = 4  # a phrase this long may also be heard with one syllable off (即时资卡: 即时制卡) …
    near_min_similarity: float = 0.5  # … that shares its initial or final (``asr.pinyin.syllable_similarity``) …
    near_min_gain: float = 12.0  # … when the replacement gains this much, and changes at most half the characters
    context_chars: int = 4  # characters each side of the span that the language model scores
    max_phrases: int = 60_000  # a large KB keeps its most frequent phrases (2,080 entries give 188,000: 120 MB)


class PhraseRepair:
    def __init__(self, texts: list[str], params: PhraseRepairParams = PhraseRepairParams()):
        self.params = p = params
        counts: Counter[str] = Counter()
        for text in texts:
            for run in _HAN_RUN.findall(text):
                words = jieba.lcut(run)
                for i in range(len(words)):
                    phrase = ""
                    for word in words[i : i + p.max_words]:
                        phrase += word
                        if len(phrase) > p.max_chars:
                            break
                        if len(phrase) >= p.min_chars:
                            counts[phrase] += 1
        self._counts = counts if len(counts) <= p.max_phrases else Counter(dict(counts.most_common(p.max_phrases)))
        self._by_sound: dict[tuple[str, ...], list[str]] = {}
        self._by_near: dict[tuple, list[str]] = {}  # (position of the wrong syllable, the other syllables)
        for phrase in self._counts:
            sound = syllables(phrase)
            self._by_sound.setdefault(sound, []).append(phrase)
            if len(phrase) >= p.near_min_chars and len(sound) == len(phrase):
                for k in range(len(sound)):
                    self._by_near.setdefault((k, *sound[:k], *sound[k + 1 :]), []).append(phrase)
        self._lengths = sorted({len(phrase) for phrase in self._counts}, reverse=True)
        jieba.dt.check_initialized()
        self._freq, self._log_total = jieba.dt.FREQ, math.log(jieba.dt.total)
        self._kb_weight = p.kb_share * jieba.dt.total / max(1, sum(self._counts.values()))  # per occurrence

    def __len__(self) -> int:
        return len(self._counts)

    def repair(self, text: str) -> str:
        p = self.params
        chars = list(text)
        candidates = []
        for match in _HAN_RUN.finditer(text):
            run, base = match.group(), match.start()
            in_word = self._in_dictionary_words(run)
            for length in self._lengths:
                for i in range(len(run) - length + 1):
                    span = run[i : i + length]
                    if span in self._counts:
                        continue
                    lo, hi = max(0, i - p.context_chars), min(len(run), i + length + p.context_chars)
                    before = None
                    for phrase, min_gain in self._heard_as(span):
                        if any(in_word[i + k] and span[k] != ch for k, ch in enumerate(phrase)):
                            continue
                        before = self._log_prob(run[lo:hi]) if before is None else before
                        gain = self._log_prob(run[lo:i] + phrase + run[i + length : hi]) - before
                        if gain >= min_gain:
                            candidates.append((gain, base + i, phrase))
        taken = [False] * len(chars)
        for _, start, phrase in sorted(candidates, key=lambda c: -c[0]):
            end = start + len(phrase)
            if not any(taken[start:end]):
                taken[start:end] = [True] * len(phrase)
                chars[start:end] = phrase
        return "".join(chars)

    def _heard_as(self, span: str) -> list[tuple[str, float]]:
        """The KB phrases ``span`` may be a mishearing of, each with the gain its replacement needs."""
        p, sound = self.params, syllables(span)
        options = {phrase: p.min_gain for phrase in self._by_sound.get(sound, ())}
        if len(span) >= p.near_min_chars and len(sound) == len(span):
            for k in range(len(sound)):
                for phrase in self._by_near.get((k, *sound[:k], *sound[k + 1 :]), ()):
                    if (phrase not in options and sum(a != b for a, b in zip(phrase, span)) <= len(span) // 2
                            and syllable_similarity(syllables(phrase)[k], sound[k]) >= p.near_min_similarity):
                        options[phrase] = p.near_min_gain
        return list(options.items())

    def _word_log_prob(self, word: str, general_only: bool = False) -> float | None:
        freq = self._freq.get(word, 0) + (0 if general_only else self._kb_weight * self._counts.get(word, 0))
        if freq <= 0 and len(word) > 1:
            return None
        return math.log(freq or 1) - self._log_total

    def _best_route(self, text: str, general_only: bool) -> tuple[float, list[int]]:
        """Max-probability segmentation of ``text``: its log-probability and each position's word start."""
        best, start = [0.0] + [-math.inf] * len(text), [0] * (len(text) + 1)
        for end in range(1, len(text) + 1):
            for begin in range(max(0, end - 8), end):
                lp = self._word_log_prob(text[begin:end], general_only)
                if lp is not None and best[begin] + lp > best[end]:
                    best[end], start[end] = best[begin] + lp, begin
        return best[-1], start

    def _log_prob(self, text: str) -> float:
        return self._best_route(text, general_only=False)[0]

    def _in_dictionary_words(self, run: str) -> list[bool]:
        """For each character of ``run``: whether jieba's dictionary reads it as part of a longer word."""
        _, start = self._best_route(run, general_only=True)
        in_word, end = [False] * len(run), len(run)
        while end > 0:
            begin = start[end]
            if end - begin > 1:
                in_word[begin:end] = [True] * (end - begin)
            end = begin
        return in_word
