"""Score one call against a scorecard: a pure function of transcript, metadata, scorecard and KB."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from qa.answers import AnswerChecker, AnswerError, AnswerParams, Retrieve
from qa.rules import (RuleContext, answer_error_evidence, char_ngram_similarity, embedding_similarity, evaluate,
                      uses_semantic)
from qa.scorecard import Item, ScorecardDef
from qa.transcript import Segment, normalize

Embed = Callable[[list[str]], np.ndarray]
_ROUTING_WORDS = re.compile(r"工单|转给|派给|派单|登记|调解|上门|处理")
_SENT_AWAY = re.compile(r"不归我们管|不是我们(这里|这边)?管|(你|您)(自己)?(先)?(去|到)[^，。？]{0,8}(派出所|交警|报案|报警)")
REVIEW_NOTE = "语音识别置信度低，需人工复核（不扣分）"
MISHEARD_NOTE = "所需话语疑似被语音识别写错（读音相近），需人工复核（不扣分）"
# the agent sent the caller to 110 (or 120/122) but no emergency was recognised in what the ASR heard of the caller
REFERRAL_NOTE = "坐席让来电人自行拨打报警/急救电话，但未能从来电内容确认是否为紧急警情（可能是语音识别不清），需人工复核是否应转接（不扣分）"


@dataclass
class ItemResult:
    code: str
    name: str
    weight: float
    severity: str
    applicable: bool
    passed: bool
    evidence: list[dict] = field(default_factory=list)
    label: str | None = None
    needs_review: bool = False  # evidence the ASR was unsure of: a person decides, nothing is deducted for it
    handling: str | None = None  # routing items that apply: transferred | self_referred | refused


@dataclass
class ScoreResult:
    scorecard: str
    version: int
    score: float
    items: list[ItemResult]
    answer_errors: list[dict]
    serious_service_violation: bool
    serious_answer_error: bool
    uncertain_answer_errors: list[dict] = field(default_factory=list)  # found in speech the ASR was unsure of

    @property
    def needs_review(self) -> bool:
        return bool(self.uncertain_answer_errors) or any(i.needs_review for i in self.items)

    def item(self, code: str) -> ItemResult:
        return next(i for i in self.items if i.code == code)

    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if i.applicable and not i.passed]

    def to_dict(self) -> dict:
        return asdict(self)


def make_context(segments: list[Segment], metadata: dict, card: ScorecardDef, embed: Embed | None,
                 params: dict | None = None, categorize: Callable[[str], Any] | None = None) -> RuleContext:
    similarity = None
    if card.similarity == "char_ngram":
        similarity = char_ngram_similarity()
    elif embed is not None:
        similarity = embedding_similarity(embed)
    elif any(uses_semantic([i.require, i.forbid, i.applies_if]) for i in card.items):
        raise ValueError(f"scorecard {card.name} has semantic rules: pass embed=..., "
                         "or set `similarity: char_ngram` in the scorecard explicitly")
    return RuleContext(segments, dict(metadata or {}), card.param_values(params), similarity, categorize=categorize)


def _evaluate_item(item: Item, ctx: RuleContext) -> ItemResult:
    res = ItemResult(item.code, item.name, item.weight, item.severity, True, True, [], item.label)
    if item.applies_if is not None and not evaluate(item.applies_if, ctx).matched:
        res.applicable = False
        return res
    if item.require is not None:
        hit = evaluate(item.require, ctx)
        res.passed = hit.matched
        res.evidence = hit.evidence if hit.matched else [
            s.evidence(idx=s.idx, note="未检出") for s in list(dict.fromkeys(hit.considered))[:2]]
    else:
        hit = evaluate(item.forbid, ctx)
        res.passed = not hit.matched
        res.evidence = hit.evidence
    if not res.passed and item.review_if is not None and (misheard := evaluate(item.review_if, ctx)).matched:
        res.passed, res.needs_review = True, True  # not deducted: a person decides
        res.evidence = [dict(e, needs_review=True, note=MISHEARD_NOTE) for e in misheard.evidence]
    return res


def _handling(item: Item, result: ItemResult, ctx: RuleContext) -> str:
    """How the agent handled a call the item's routing rule applies to (an emergency: transfer to 110)."""
    if result.passed:
        return "transferred"
    if item.self_referral is not None and evaluate(item.self_referral, ctx).matched:
        return "self_referred"
    return "refused"


def _review_unrecognised_referral(item: Item, result: ItemResult, ctx: RuleContext) -> None:
    """The item does not apply (no emergency recognised), yet the agent told the caller to call 110 themselves:
    the agent may have heard an emergency the ASR garbled.  Not a deduction: the call goes to a person."""
    referral = evaluate(item.self_referral, ctx)
    if referral.matched:
        result.needs_review = True
        result.evidence += [dict(e, needs_review=True, note=REFERRAL_NOTE) for e in referral.evidence]


def _routing_errors(item: Item, ctx: RuleContext, checker: AnswerChecker) -> list[AnswerError]:
    """One routing error: on the first agent turn, after the onset, that sends the caller elsewhere (the item's
    ``self_referral``, or 不归我们管 / 你去派出所); else on the turn that says what was done instead.  Saying it
    again (您直接打110就行, or in the read-back) is the same error, not another one."""
    kb_ids = checker.candidates(item.routing_kb_query or "", 1)
    onset = evaluate(item.applies_if, ctx).evidence if item.applies_if else []
    start = min((e["idx"] for e in onset if "idx" in e), default=-1)
    after = [s for s in ctx.segments if s.role == "agent" and s.idx > start]
    if not kb_ids or not after:
        return []
    referred = {e["idx"] for e in evaluate(item.self_referral, ctx).evidence} if item.self_referral else set()
    sent_away = [s for s in after if s.idx in referred or _SENT_AWAY.search(s.norm)]
    entry = checker.entries[kb_ids[0]]
    seg = sent_away[0] if sent_away else next((s for s in after if _ROUTING_WORDS.search(s.norm)), after[0])
    return [AnswerError(seg, entry.id, "routing", seg.text, entry.answer[:120], checker.severity("routing"))]


def score_call(
    transcript_segments: Iterable[Any],
    metadata: dict | None,
    scorecard: ScorecardDef,
    kb: Iterable[Any] | AnswerChecker | None,
    *,
    embed: Embed | None = None,
    retrieve: Retrieve | None = None,
    answer_params: AnswerParams = AnswerParams(),
    params: dict[str, float] | None = None,
    categorize: Callable[[str], Any] | None = None,
) -> ScoreResult:
    """Score a call.  ``kb`` is a list of KB entries (or a prepared ``AnswerChecker``); None skips answers.

    ``embed(list[str]) -> ndarray`` powers semantic rules; ``retrieve(query, k)`` finds KB entries
    (defaults to a lexical retriever over ``kb``); ``params`` overrides scorecard parameters; ``categorize(text)``
    (the ticket classifier) lets the ``emergency`` rule also recognise a call by its category.
    """
    segments = normalize(transcript_segments, scorecard.merge_gap_ms)
    ctx = make_context(segments, metadata or {}, scorecard, embed, params, categorize)
    checker = kb if isinstance(kb, AnswerChecker) or kb is None else AnswerChecker(kb, retrieve, answer_params)
    errors = checker.check(segments) if checker else []
    results: dict[str, ItemResult] = {}
    for item in sorted(scorecard.items, key=lambda i: i.routing_kb_query is None):
        if item.forbid and uses_answer_errors(item.forbid):
            continue
        results[item.code] = _evaluate_item(item, ctx)
        if item.routing_kb_query and results[item.code].applicable:
            results[item.code].handling = _handling(item, results[item.code], ctx)
        elif item.routing_kb_query and item.self_referral is not None:
            _review_unrecognised_referral(item, results[item.code], ctx)
        if item.routing_kb_query and checker and results[item.code].applicable and not results[item.code].passed:
            for err in _routing_errors(item, ctx, checker):
                err.detail["handling"] = results[item.code].handling
                errors.append(err)
    ctx.answer_errors = [e.to_dict() for e in errors if not e.needs_review]
    uncertain = [e.to_dict() for e in errors if e.needs_review]
    for item in scorecard.items:
        if item.code not in results:
            results[item.code] = _evaluate_item(item, ctx)
            results[item.code].applicable = checker is not None
            if uncertain and results[item.code].applicable:
                results[item.code].needs_review = True
                results[item.code].evidence += [answer_error_evidence(e, needs_review=True, note=REVIEW_NOTE)
                                                for e in uncertain]
    items = [results[i.code] for i in scorecard.items]
    total = sum(i.weight for i in items) or 1.0
    lost = sum(i.weight for i in items if i.applicable and not i.passed)
    return ScoreResult(
        scorecard=scorecard.name,
        version=scorecard.version,
        score=round(100.0 * (total - lost) / total, 2),
        items=items,
        answer_errors=ctx.answer_errors,
        serious_service_violation=any(i.applicable and not i.passed and i.severity == "serious"
                                      and not uses_answer_errors(_rule(scorecard, i.code)) for i in items),
        serious_answer_error=any(e["severity"] == "serious" for e in ctx.answer_errors),
        uncertain_answer_errors=uncertain,
    )


def _rule(card: ScorecardDef, code: str) -> Any:
    item = next(i for i in card.items if i.code == code)
    return item.require or item.forbid


def uses_answer_errors(cond: Any) -> bool:
    if isinstance(cond, dict):
        return cond.get("op") == "answer_errors" or any(uses_answer_errors(v) for v in cond.values())
    if isinstance(cond, list):
        return any(uses_answer_errors(v) for v in cond)
    return False


# ------------------------------------------------------------------ tuning
def _references(cond: Any, name: str) -> bool:
    if isinstance(cond, dict):
        return any(_references(v, name) for v in cond.values())
    if isinstance(cond, list):
        return any(_references(v, name) for v in cond)
    return cond == f"${name}"


def items_using(scorecard: ScorecardDef, param: str) -> list[str]:
    """The codes of the items whose conditions use the named parameter."""
    return [i.code for i in scorecard.items
            if _references([i.require, i.forbid, i.applies_if, i.review_if], param)]


def tune(
    scorecard: ScorecardDef,
    param: str,
    calls: list[tuple[list, dict]],
    expected: list[dict[str, bool]],
    *,
    kb: Any = None,
    embed: Embed | None = None,
    retrieve: Retrieve | None = None,
) -> dict:
    """Grid-search one named parameter; the objective is agreement of the items that use it.

    ``calls``: (segments, metadata) per call; ``expected``: per call, item code → labelled pass.
    Returns the best value, the agreement per grid value, and the items it affects.
    """
    codes, table = agreement_table(scorecard, param, calls, expected, kb=kb, embed=embed, retrieve=retrieve)
    return best_value(scorecard, param, codes, table, range(len(calls)))


def agreement_table(
    scorecard: ScorecardDef,
    param: str,
    calls: list[tuple[list, dict]],
    expected: list[dict[str, bool]],
    *,
    kb: Any = None,
    embed: Embed | None = None,
    retrieve: Retrieve | None = None,
) -> tuple[list[str], dict[float, list[tuple[int, int]]]]:
    """The items that use ``param``, and per grid value, per call: (those items agreeing with the label,
    those items labelled).  Scored once, it serves ``best_value`` on any subset of the calls (cross-validation)."""
    spec = scorecard.params.get(param)
    if spec is None:
        raise KeyError(f"unknown parameter {param}")
    codes = items_using(scorecard, param)
    checker = AnswerChecker(kb, retrieve) if kb is not None else None
    table: dict[float, list[tuple[int, int]]] = {}
    for value in spec.grid():
        per_call = table[value] = []
        for (segs, meta), exp in zip(calls, expected):
            labelled = [code for code in codes if code in exp]
            if not labelled:
                per_call.append((0, 0))
                continue
            res = score_call(segs, meta, scorecard, checker, embed=embed, params={param: value})
            per_call.append((sum(res.item(code).passed == exp[code] for code in labelled), len(labelled)))
    return codes, table


def best_value(scorecard: ScorecardDef, param: str, codes: list[str], table: dict[float, list[tuple[int, int]]],
               rows) -> dict:
    """``tune``'s answer from an ``agreement_table`` over the calls ``rows``: the grid value with the highest
    agreement, ties going to the value nearest the current one."""
    spec = scorecard.params[param]
    grid = []
    for value, per_call in table.items():
        agree, total = sum(per_call[i][0] for i in rows), sum(per_call[i][1] for i in rows)
        grid.append({"value": value, "agreement": round(agree / total, 4) if total else None})
    best = max(grid, key=lambda r: (r["agreement"] or 0, -abs(r["value"] - spec.value)))
    return {"param": param, "items": codes, "current": spec.value, "best": best["value"],
            "best_agreement": best["agreement"], "grid": grid}
