"""What `hotline serve` runs beside the HTTP app: the bus consumers that turn live transcript
events into stored segments, copilot suggestions, live QA warnings and post-call QA results."""
from __future__ import annotations

from fastapi import FastAPI

from serving.api.deps import knowledge_indexes
from serving.consumers import CallProcessorHost, CallTopicWriter, SegmentWriter


class Runtime:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.consumers: list = []

    @property
    def indexes(self):
        """Per-tenant KB search indexes, shared with the knowledge API so a publish reaches live calls."""
        return knowledge_indexes(self.app)

    def embed(self, texts: list[str]):
        """Sentence embeddings for semantic QA rules (the retrieval embedder, loaded once)."""
        return self.indexes.embedder.queries(texts)

    def start(self) -> "Runtime":
        """Models and indexes load here, not on the first call: the KB embedder, each tenant's
        index of published entries and the category model."""
        from sqlalchemy import select

        from copilot.processor import copilot_factory
        from domain.db import session_scope
        from domain.models import Tenant
        from qa.live import live_checker_factory
        from qa.service import PostCallScorer

        bus, engine, settings = self.app.state.bus, self.app.state.engine, self.app.state.settings
        with session_scope(engine) as session:
            for tenant_id in session.scalars(select(Tenant.id)):
                self.indexes.get(session, tenant_id)
        self.consumers = [
            SegmentWriter(bus, engine).start(),
            CallTopicWriter(bus, engine).start(),
            CallProcessorHost(bus, "copilot", copilot_factory(settings, engine, self.indexes)).start(),
            CallProcessorHost(bus, "qa-live", live_checker_factory(engine, embed=self.embed)).start(),
            CallProcessorHost(bus, "qa-post-call",
                              lambda _first: PostCallScorer(engine, embed=self.embed, indexes=self.indexes)).start(),
        ]
        return self

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        self.consumers = []
