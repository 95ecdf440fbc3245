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
    def embedder(self):
        """The sentence embedder shared by retrieval and semantic QA rules (loaded once)."""
        from knowledge.embedding import load_embedder

        return load_embedder(self.app.state.settings.kb_embedder)

    def embed(self, texts: list[str]):
        return self.embedder.queries(texts)

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
        bus, engine = self.app.state.bus, self.app.state.engine
        self.consumers = [
            SegmentWriter(bus, engine).start(),
            CallProcessorHost(bus, "qa-live", self._live_qa).start(),
            CallProcessorHost(bus, "qa-post-call", self._post_call_qa).start(),
        ]
        return self

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        self.consumers = []
