"""The live copilot: one processor per call, transcript frames in, suggestions and alerts out.

It keeps the call's context: the caller's question builds up over several
turns, so retrieval runs on the latest caller turn and on the recent caller
context together, the category is predicted from everything the caller said,
and the ticket draft is refined turn by turn.  Partial transcripts are used
only for the 110 alert, where seconds matter.

Knowledge suggestions are a card stack: a card stays once shown, with the caller's
turn that brought it up and its best score, newest first.  A turn that matches
nothing (garbled, off-topic, "嗯") adds no card and removes none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from copilot.alerts import AlertDetector
from copilot.category import CategoryModel, CategoryPrediction
from copilot.ticket import TicketDrafter
from domain.call_events import (Event, KnowledgeHit, PoliceAlert, SensitiveFlag, Suggestion,
                           TranscriptFinal, TranscriptPartial)
from tickets.lifecycle import TicketDraft
from knowledge.facts import key_facts
from knowledge.retrieval import HybridIndex, SearchHit


@dataclass(frozen=True)
class CopilotParams:
    context_turns: int = 3  # recent caller turns combined into the contextual retrieval query
    context_chars: int = 120  # longest contextual query
    top_k: int = 3
    max_cards: int = 8  # the card stack keeps this many (the lowest scores fall off)
    min_caller_chars: int = 4  # shorter caller turns ("好的", "嗯") update nothing
    # the agent's words name the matter too ("您问的是异地就医备案"): a turn of at least agent_min_chars brings up its
    # best entry as a card when the ranker is this sure of it (the agent also greets, asks and reads back, so the
    # bar is higher than for the caller's words); shared calls through ASR, right card at hang-up 0.90 -> 1.0
    agent_min_chars: int = 8
    agent_card_min_score: float = 0.5
    # the ticket category is predicted from the opening of the conversation from the caller's first words, both
    # parties: the agent names the matter more clearly than the ASR hears the caller (corpus c101-c200 through ASR,
    # level 1: 0.84 from the caller's words alone, 0.95 from the conversation; docs/knowledge.md)
    category_chars: int = 300
    police_category_chars: int = 160  # the classifier's view for the 110 alert: the opening of what the caller said
    police_request_type: str = "求助"
    police_query: str = "正在发生的紧急警情，话务员三方转接110"  # finds the KB's emergency procedure card


@dataclass
class CopilotModels:
    """Models shared by every call (read-only after construction)."""

    index: HybridIndex
    category: CategoryModel
    detector: AlertDetector = field(default_factory=AlertDetector)
    drafter: TicketDrafter = field(default_factory=TicketDrafter)
    params: CopilotParams = field(default_factory=CopilotParams)
    on_suggested: Callable[[int, list], None] | None = None  # (tenant_id, new entry ids) → usage stats

    def new_processor(self, event: Event) -> "CallCopilot":
        return CallCopilot(self, event.call_id, event.tenant_id)


class CallCopilot:
    def __init__(self, engine: CopilotModels, call_id: str, tenant_id: int):
        self.engine = engine
        self.call_id = call_id
        self.tenant_id = tenant_id
        self.caller_turns: list[str] = []
        self.conversation: list[str] = []  # both parties' finals, from the caller's first on
        self.last_agent_text = ""
        self.draft = TicketDraft()
        self.draft_confidence: dict[str, float] = {}  # field -> 0..1, as the drafter filled it
        self.police_raised = False
        self.flags_raised: set[str] = set()
        self.cards: dict = {}  # entry id -> KnowledgeHit, in the order first shown
        self._predictions: dict[str, tuple[str, CategoryPrediction]] = {}  # view → (its text, the prediction)

    def _is_caller(self, event: TranscriptPartial | TranscriptFinal) -> bool:
        return event.role == "caller" or (event.role == "unknown" and event.leg == "caller")

    def _event(self, cls, **kw):
        return cls(tenant_id=self.tenant_id, call_id=self.call_id, **kw)

    def process(self, event: Event) -> list[Event]:
        if isinstance(event, TranscriptPartial):
            if self._is_caller(event) and event.text:
                return self._police(self.caller_turns + [event.text], start_ms=event.start_ms)
            return []
        if not isinstance(event, TranscriptFinal) or not event.text.strip():
            return []
        if not self._is_caller(event):
            self.last_agent_text = event.text
            if self.conversation:  # from the caller's first words on
                self.conversation.append(event.text.strip())
                if self._agent_card(event):  # the desk gets the new card at once
                    return [self._suggestion(event, self._predictions["ticket"][1], no_match=False)]
            return []
        text = event.text.strip()
        self.caller_turns.append(text)
        self.conversation.append(text)
        category = self._predict(category_text(self.conversation, self.engine.params.category_chars), "ticket")
        police_view = self._predict(category_text(self.caller_turns, self.engine.params.police_category_chars), "police")
        out: list[Event] = self._police(self.caller_turns, police_view, event.start_ms)
        for det in self.engine.detector.sensitive(text):
            if det.kind not in self.flags_raised:
                self.flags_raised.add(det.kind)
                out.append(self._event(SensitiveFlag, flag=det.kind, evidence=det.evidence))
        self.engine.drafter.update(self.draft, self.caller_turns, self.last_agent_text, self.draft_confidence,
                                   self.engine.params.police_request_type if self.police_raised else None)
        if len(text) >= self.engine.params.min_caller_chars:
            out.append(self._suggest(text, event, category))
        return out

    def close(self) -> list[Event]:
        return []

    def _predict(self, text: str, view: str) -> CategoryPrediction:
        """The category model on ``text``, predicted again only when the text of that view has changed."""
        cached = self._predictions.get(view)
        if cached is None or cached[0] != text:
            self._predictions[view] = cached = (text, self.engine.category.predict(text))
        return cached[1]

    def _police(self, turns: list[str], category: CategoryPrediction | None = None, start_ms: int = 0) -> list[Event]:
        if self.police_raised:
            return []
        det = self.engine.detector.police(turns, category)
        if det is None:
            return []
        self.police_raised = True
        self.draft.request_type = self.engine.params.police_request_type
        # the KB's own procedure for emergencies goes on the card stack, brought up by what the caller said
        result = self.engine.index.search(f"{det.kind}，{self.engine.params.police_query}", k=1)
        self._stack([h for h in result.hits if h.score >= self.engine.index.params.no_match_threshold],
                    det.evidence, start_ms)
        return [self._event(PoliceAlert, reason=det.kind, evidence=det.evidence)]

    def _agent_card(self, source: TranscriptFinal) -> bool:
        """The entry the agent's turn is about, as a card when the ranker is sure of it; whether it is new."""
        p, text = self.engine.params, source.text.strip()
        if len(text) < p.agent_min_chars:
            return False
        hits = self.engine.index.search(text, k=1, spoken=True).hits  # ASR transcripts
        return bool(self._stack([h for h in hits if h.score >= p.agent_card_min_score], text, source.start_ms,
                                role="agent"))

    def _suggest(self, text: str, source: TranscriptFinal, category: CategoryPrediction) -> Suggestion:
        p = self.engine.params
        context = "，".join(self.caller_turns[-p.context_turns:])[-p.context_chars:]
        merged: dict = {}
        for query in dict.fromkeys([text, context]):  # latest turn, then the built-up question
            result = self.engine.index.search(query, k=p.top_k, spoken=True)  # ASR transcripts
            for hit in result.hits:
                if hit.id not in merged or hit.score > merged[hit.id].score:
                    merged[hit.id] = hit
        hits: list[SearchHit] = sorted(merged.values(), key=lambda h: -h.score)[: p.top_k]
        no_match = not hits or hits[0].score < self.engine.index.params.no_match_threshold
        if not no_match:  # a hit below the no-match threshold never becomes a card
            self._stack([h for h in hits if h.score >= self.engine.index.params.no_match_threshold], text,
                        source.start_ms)
        return self._suggestion(source, category, no_match)

    def _suggestion(self, source: TranscriptFinal, category: CategoryPrediction, no_match: bool) -> Suggestion:
        """The desk's view: the card stack (newest on top), the category and the ticket draft."""
        show_path = category.confidence >= self.engine.category.params.min_confidence
        draft = self.draft.model_dump() | {
            "category": category.path if show_path else category.level1,
            "police_110": self.police_raised,
            "sensitive": sorted(self.flags_raised),
            "confidence": dict(self.draft_confidence),
        }
        return self._event(
            Suggestion,
            hits=list(reversed(self.cards.values())),
            no_good_match=no_match,
            category=category.path if show_path else category.level1,
            category_confidence=round(category.confidence if show_path else category.level1_confidence, 4),
            ticket_draft=draft,
            source_segment_ts=source.ts,
        )

    def _stack(self, hits: list[SearchHit], text: str, start_ms: int, role: str = "caller") -> list:
        """New cards go on top with the turn that brought them up; a card seen again keeps its place and its
        best score.  Returns the ids of the new cards."""
        new_ids = []
        for h in reversed(hits):  # the best hit of the turn ends on top
            card = self.cards.get(h.id)
            if card is None:
                new_ids.append(h.id)
                self.cards[h.id] = KnowledgeHit(entry_id=h.id, title=h.title, answer=h.body, score=round(h.score, 4),
                                                key_facts=key_facts(h.body), matched_spans=h.matched_spans,
                                                trigger=text, trigger_role=role, first_ms=start_ms)
            elif h.score > card.score:
                self.cards[h.id] = card.model_copy(update={"score": round(h.score, 4), "matched_spans": h.matched_spans})
        while len(self.cards) > self.engine.params.max_cards:  # the weakest card goes, never a good one
            del self.cards[min(self.cards, key=lambda i: self.cards[i].score)]
        if new_ids and self.engine.on_suggested:
            self.engine.on_suggested(self.tenant_id, new_ids[::-1])
        return new_ids


def category_text(turns: list[str], chars: int) -> str:
    """What a category is predicted from: the opening ``chars`` of ``turns`` (the conversation from the caller's
    first words for the ticket category, the caller's words for the 110 alert's view)."""
    return "，".join(turns)[:chars]


def conversation(turns: Iterable[tuple[str, str]]) -> list[str]:
    """A whole transcript's (role, text) turns as the ticket category reads them: both parties, from the caller's
    first words (the agent's greeting before them says nothing of the matter)."""
    turns = list(turns)
    first = next((i for i, (role, _) in enumerate(turns) if role == "caller"), len(turns))
    return [text for _, text in turns[first:]]


def latency_ms(suggestion: Suggestion) -> float | None:
    """Time from the source transcript segment to this suggestion (same clock)."""
    return None if suggestion.source_segment_ts is None else (suggestion.ts - suggestion.source_segment_ts) * 1000



def copilot_factory(settings, db_engine, indexes=None) -> Callable[[Event], CallCopilot]:
    """A ``CallProcessorHost`` factory: one copilot per call over its tenant's live KB index.

    Pass the app's ``TenantIndexes`` (``app.state.knowledge_indexes``) so publishing an entry in the
    knowledge API updates the index the copilot searches.  Suggestions bump the entries' usage counts.
    """
    from copilot.category import load_category_model
    from copilot.places import Gazetteer
    from domain import tenant_settings
    from domain.db import session_scope
    from knowledge import service
    from knowledge.live import TenantIndexes

    indexes = indexes or TenantIndexes(settings)
    category = load_category_model(indexes.embedder, settings.category_model_path, settings.data_dir)
    engines: dict[int, CopilotModels] = {}

    def on_suggested(tenant_id: int, entry_ids: list) -> None:
        with session_scope(db_engine) as session:
            service.record_suggested(session, tenant_id, entry_ids)

    def factory(event: Event) -> CallCopilot:
        engine = engines.get(event.tenant_id)
        if engine is None:
            with session_scope(db_engine) as session:
                index = indexes.get(session, event.tenant_id)
                drafter = TicketDrafter(gazetteer=Gazetteer(tenant_settings.gazetteer(session, event.tenant_id)))
            engine = engines[event.tenant_id] = CopilotModels(index=index, category=category, drafter=drafter,
                                                              on_suggested=on_suggested)
        return engine.new_processor(event)

    return factory
