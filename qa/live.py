"""Live QA checker: a per-call processor, ``TranscriptFinal`` in, ``QAWarning`` out.

Only scorecard items with a ``live`` hint are checked while the call runs:

- a ``forbid`` item warns as soon as a new sentence violates it (e.g. a forbidden phrase);
- a ``require`` item with ``live.when`` warns when that condition first matches the latest
  sentence while the requirement is still unmet (e.g. the agent starts closing without a read-back);
- a ``require`` item with ``live.after_ms`` warns once the call is that far in and still unmet
  (for items with ``applies_if``, counting from when it starts to apply, e.g. an emergency report).

Each item warns at most once per call, except forbidden wording, which warns per sentence.  A required item
the transcript meets after its warning (the agent reads back after all) is withdrawn with a ``resolved``
warning, so what still stands at the end agrees with the post-call score; so is one the words of which the ASR
seems to have misheard (the item's ``review_if``: the post-call score passes it, for a person to review).  Nothing warns after hang-up
(``CallState`` ended): a warning is for the agent still on the call; finals the ASR delivers late only
withdraw warnings.
"""
from __future__ import annotations

from domain.call_events import CallState, Event, QAWarning, TranscriptFinal
from qa.rules import evaluate
from qa.scorecard import Item, ScorecardDef
from qa.scoring import Embed, make_context
from qa.transcript import Segment


class LiveQAChecker:
    def __init__(self, scorecard: ScorecardDef, *, call_id: str = "", tenant_id: int = 0,
                 embed: Embed | None = None, metadata: dict | None = None):
        self.card = scorecard
        self.items = [i for i in scorecard.items if i.live is not None]
        self.call_id, self.tenant_id = call_id, tenant_id
        self.segments: list[Segment] = []
        self.metadata = dict(metadata or {})
        self._embed = embed
        make_context([], self.metadata, scorecard, embed)  # fail now, not mid-call, if semantic rules lack an embedder
        self._warned: set[str] = set()
        self._warned_idx: set[tuple[str, int]] = set()
        self._standing: set[str] = set()  # warned required items still unmet
        self.ended = False

    def process(self, event: Event) -> list[Event]:
        if isinstance(event, CallState):
            self.call_id = self.call_id or event.call_id
            self.ended = self.ended or event.state == "ended"
            return []
        if not isinstance(event, TranscriptFinal) or not event.text.strip():
            return []
        self.call_id = self.call_id or event.call_id
        self.tenant_id = self.tenant_id or event.tenant_id
        seg = Segment(event.role, event.start_ms, event.end_ms, event.text.strip())
        self.segments.append(seg)
        self.segments.sort(key=lambda s: (s.start_ms, s.end_ms))
        for i, s in enumerate(self.segments):
            s.idx = i
        ctx = make_context(self.segments, self.metadata, self.card, self._embed)
        out: list[Event] = [self._warning(item, f"已满足：{item.name}", resolved=True)
                            for item in self._met_since_warned(ctx)]
        if self.ended:  # late finals only withdraw warnings
            return out
        for item in self.items:
            message = self._check(item, ctx, seg)
            if message:
                out.append(self._warning(item, message))
        return out

    def _warning(self, item: Item, message: str, resolved: bool = False) -> QAWarning:
        return QAWarning(tenant_id=self.tenant_id, call_id=self.call_id, item=item.code, message=message,
                         resolved=resolved)

    def _met_since_warned(self, ctx) -> list[Item]:
        """Required items warned about that the transcript now meets (the post-call score passes them)."""
        met = [i for i in self.items if i.code in self._standing and self._met_or_misheard(i, ctx)]
        self._standing -= {i.code for i in met}
        return met

    @staticmethod
    def _met_or_misheard(item: Item, ctx) -> bool:
        """The requirement is met, or it sounds said but misheard (``review_if``): the post-call score then
        passes the item for a person to review, so the agent is not told it is missing."""
        return evaluate(item.require, ctx).matched or (item.review_if is not None
                                                       and evaluate(item.review_if, ctx).matched)

    def _check(self, item: Item, ctx, latest: Segment) -> str | None:
        hint = item.live
        if item.applies_if is not None:
            applies = evaluate(item.applies_if, ctx)
            if not applies.matched:
                return None
            since = min((e["start_ms"] for e in applies.evidence), default=0)
        else:
            since = 0
        if item.forbid is not None:
            hit = evaluate(hint.when or item.forbid, ctx)
            fresh = [e for e in hit.evidence if e.get("idx") == latest.idx and (item.code, latest.idx) not in self._warned_idx]
            if hit.matched and fresh:
                self._warned_idx.add((item.code, latest.idx))
                return f"{hint.message}：“{fresh[0].get('match') or latest.text}”"
            return None
        if item.code in self._warned or self._met_or_misheard(item, ctx):
            return None
        if hint.when is not None:
            trigger = evaluate(hint.when, ctx)
            if not any(e.get("idx") == latest.idx for e in trigger.evidence):
                return None
        elif hint.after_ms is None or latest.end_ms - since < hint.after_ms:
            return None
        self._warned.add(item.code)
        self._standing.add(item.code)
        return hint.message

    def close(self) -> list[Event]:
        return []


def live_checker_factory(engine, embed: Embed | None = None):
    """For ``serving.consumers.CallProcessorHost``: a checker per call with the tenant's active scorecard."""
    from domain.db import session_scope
    from qa import scorecard as sc
    from qa.service import active_scorecard

    def factory(event: Event) -> LiveQAChecker:
        with session_scope(engine) as session:
            card = sc.from_row(active_scorecard(session, event.tenant_id))
        return LiveQAChecker(card, call_id=event.call_id, tenant_id=event.tenant_id, embed=embed)

    return factory
