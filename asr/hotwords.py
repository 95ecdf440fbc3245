"""Domain hot words: bias the decoder towards them and repair near-homophones afterwards.

A ``Lexicon`` holds a tenant's local terms (place names, departments, policy
words: its base terms from ``domain.tenant_settings`` plus terms mined from its
knowledge base).  ``prompt_terms()`` feeds Whisper's hot-word prompt; ``correct()``
replaces spans of a transcript whose pinyin is close to a term's pinyin
(z/zh, n/l, an/ang … confusions typical of telephone audio and southern
accents) but whose characters differ.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from asr.phrase_repair import PhraseRepair, PhraseRepairParams
from asr.pinyin import syllable_similarity, syllables

_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class LexiconParams:
    """Thresholds for post-correction and prompting (tune with ``hotline eval asr --no-hotwords``)."""

    min_similarity: float = 0.86  # mean per-syllable similarity needed to replace a span
    min_fuzzy_chars: int = 3  # shorter terms need every syllable close (z/zh, in/ing …) and a span that is no word
    max_changed_ratio: float = 0.67  # at most this share of the span's characters may change
    # Terms put in Whisper's decoder prompt. 0: with beam-5 finals a 24-term prompt raised CER on both the
    # general clips (17.4% → 19.4%) and the synthetic calls (17.1% → 18.7% after correction), so only correct.
    prompt_terms: int = 0
    kb_terms: int = 150  # terms taken from knowledge-base text
    # An exact occurrence of a term protects its characters from a longer fuzzy match only when it covers at
    # least this share of that match: "热线" guards "热线" itself, but a common word such as "政府" mined from the
    # KB must not block "政府服务变名热线" → "政务服务便民热线".
    protect_min_share: float = 0.34


def _is_word(text: str) -> bool:
    """``text`` is an ordinary word of the general jieba dictionary."""
    import jieba

    jieba.dt.check_initialized()
    return jieba.dt.FREQ.get(text, 0) > 0


class Lexicon:
    def __init__(self, terms: list[str] | tuple[str, ...], params: LexiconParams = LexiconParams(),
                 phrases: PhraseRepair | None = None):
        self.params = params
        self.phrases = phrases  # the knowledge base's phrases, repaired after the terms
        seen: dict[str, None] = {}
        for term in terms:
            term = term.strip()
            if len(term) >= 2 and term not in seen:
                seen[term] = None
        self.terms = list(seen)
        self._by_len: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
        for term in self.terms:
            if _HAN.search(term):
                self._by_len.setdefault(len(term), []).append((term, syllables(term)))

    @classmethod
    def from_texts(
        cls, texts: list[str], *, base: Sequence[str] = (), params: LexiconParams = LexiconParams(),
        phrase_params: PhraseRepairParams | None = PhraseRepairParams(),
    ) -> Lexicon:
        """Domain terms mined from knowledge-base texts (frequent nouns, places, organisations) plus ``base``,
        and the texts' phrases (``asr.phrase_repair``; ``phrase_params=None``: terms only)."""
        import jieba.posseg

        counts: Counter[str] = Counter()
        for text in texts:
            for word, flag in jieba.posseg.cut(text):
                if 2 <= len(word) <= 10 and _HAN.search(word) and flag in ("ns", "nt", "nz", "n", "vn", "nr"):
                    counts[word] += 1
            for match in re.findall(r"[\u4e00-\u9fff]{2,10}(?:局|中心|委员会|大厅|窗口|街道|社区|镇|乡)", text):
                counts[match] += 2
        mined = [w for w, c in counts.most_common() if c >= 2][: params.kb_terms]
        phrases = PhraseRepair(texts, phrase_params) if phrase_params is not None and texts else None
        return cls(list(base) + mined, params, phrases)

    @classmethod
    def from_kb(cls, entries, *, base: Sequence[str] = (), params: LexiconParams = LexiconParams(),
                phrase_params: PhraseRepairParams | None = PhraseRepairParams()) -> Lexicon:
        """The hot words of a knowledge base from its ``(title, body)`` pairs plus the tenant's ``base`` terms: how
        the live ASR followers build them from the published entries, and so how every benchmark must."""
        return cls.from_texts([f"{title}\n{body}" for title, body in entries], base=base, params=params,
                              phrase_params=phrase_params)

    def prompt_terms(self) -> list[str]:
        return self.terms[: self.params.prompt_terms]

    def correct(self, text: str) -> str:
        """Repair near-homophones of the terms, then of the knowledge base's phrases."""
        text = self._correct_terms(text)
        return self.phrases.repair(text) if self.phrases is not None else text

    def _correct_terms(self, text: str) -> str:
        """Replace near-homophone spans with lexicon terms (non-overlapping, best match first).

        Matching skips punctuation and spaces, which Whisper often puts inside a long name
        ("政府服务，便名热线"); a replaced span loses its inner punctuation.
        """
        p = self.params
        keep = [i for i, ch in enumerate(text) if _HAN.match(ch) or ch.isalnum()]
        compact = "".join(text[i] for i in keep)
        syl = syllables(compact)
        if len(syl) != len(compact):  # pinyin not aligned to characters; leave the text alone
            return text
        candidates = []
        for length, entries in self._by_len.items():
            for i in range(len(compact) - length + 1):
                span = compact[i : i + length]
                if not _HAN.fullmatch(span[0]) or not _HAN.fullmatch(span[-1]):
                    continue
                window = syl[i : i + length]
                for term, term_syl in entries:
                    if span == term:
                        candidates.append((2.0, length, i, term))
                        continue
                    changed = sum(a != b for a, b in zip(span, term))
                    if changed > p.max_changed_ratio * length:
                        continue
                    sims = [syllable_similarity(a, b) for a, b in zip(window, term_syl)]
                    score = sum(sims) / length
                    if length >= p.min_fuzzy_chars:
                        ok = score >= p.min_similarity
                    else:  # "社宝" → "社保", but a real word ("政府") is never turned into a short term
                        ok = score == 1.0 or (min(sims) >= 0.9 and not _is_word(span))
                    if ok:
                        candidates.append((score, length, i, term))
        # An exact occurrence ("热线") protects its characters: a fuzzy match that covers it must keep them,
        # unless the exact term is a small part of that match (see ``protect_min_share``).
        exact_len = [0] * len(compact)
        for score, length, i, term in candidates:
            if score == 2.0:
                exact_len[i : i + length] = [max(n, length) for n in exact_len[i : i + length]]
        taken = [False] * len(compact)
        chosen = []
        for score, length, i, term in sorted(candidates, key=lambda c: (-c[0], -c[1])):
            if score == 2.0 or any(taken[i : i + length]):
                continue
            if any(exact_len[i + k] >= p.protect_min_share * length and compact[i + k] != ch
                   for k, ch in enumerate(term)):
                continue
            taken[i : i + length] = [True] * length
            chosen.append((keep[i], keep[i + length - 1] + 1, term))
        for start, end, term in sorted(chosen, reverse=True):
            text = text[:start] + term + text[end:]
        return text
