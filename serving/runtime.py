"""What `hotline serve` runs beside the HTTP app: the bus consumers that turn live transcript
events into stored segments, copilot suggestions, live QA warnings and post-call QA results."""
from __future__ import annotations

import logging
import threading
from functools import cached_property

from fastapi import FastAPI

from domain.db import session_scope
from domain.events import Event
from serving.consumers import CallProcessorHost, SegmentWriter

log = logging.getLogger("hotline.runtime")


class Runtime:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.consumers: list = []
        self._lock = threading.Lock()
        self._scorecards: dict[int, object] = {}

    @cached_property
    def indexes(self):
        """Per-tenant KB search indexes, shared with the knowledge API so a publish reaches live calls."""
        from knowledge.live import TenantIndexes

        state = self.app.state
        if getattr(state, "knowledge_indexes", None) is None:
            state.knowledge_indexes = TenantIndexes(state.settings)
        return state.knowledge_indexes

    @cached_property
    def category_model(self):
        from copilot.category import load_category_model

        settings = self.app.state.settings
        return load_category_model(self.indexes.embedder, settings.category_model_path, settings.data_dir)

    def embed(self, texts: list[str]):
        """Sentence embeddings for semantic QA rules (the retrieval embedder, loaded once)."""
        return self.indexes.embedder.queries(texts)

    def _record_suggested(self, tenant_id: int, entry_ids: list) -> None:
        from knowledge.service import record_suggested

        with session_scope(self.app.state.engine) as session:
            record_suggested(session, tenant_id, entry_ids)

    def _copilot(self, first: Event):
        from copilot.processor import CopilotEngine

        with session_scope(self.app.state.engine) as session:
            index = self.indexes.get(session, first.tenant_id)
        engine = CopilotEngine(index=index, category=self.category_model, on_suggested=self._record_suggested)
        return engine.new_processor(first)

    def scorecard(self, tenant_id: int):
        """The tenant's active scorecard (stored as the default 12345 card on first use)."""
        from qa import scorecard as sc
        from qa.service import active_scorecard

        with self._lock:
            if tenant_id not in self._scorecards:
                with session_scope(self.app.state.engine) as session:
                    self._scorecards[tenant_id] = sc.from_row(active_scorecard(session, tenant_id))
            return self._scorecards[tenant_id]

    def _live_qa(self, first: Event):
        from qa.live import LiveQAChecker

        return LiveQAChecker(self.scorecard(first.tenant_id), call_id=first.call_id, tenant_id=first.tenant_id,
                             embed=self.embed)

    def _post_call_qa(self, _first: Event):
        from qa.service import PostCallScorer

        return PostCallScorer(self.app.state.engine, embed=self.embed)

    def start(self) -> "Runtime":
        """Load the shared models first, so the first call pays no start-up cost."""
        bus, engine = self.app.state.bus, self.app.state.engine
        self.category_model  # noqa: B018 - warm-up
        self.consumers = [
            SegmentWriter(bus, engine).start(),
            CallProcessorHost(bus, "copilot", self._copilot).start(),
            CallProcessorHost(bus, "qa-live", self._live_qa).start(),
            CallProcessorHost(bus, "qa-post-call", self._post_call_qa).start(),
        ]
        return self

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        self.consumers = []
