"""Per-tenant search indexes over the published knowledge base, updated incrementally on publish."""
from __future__ import annotations

import threading
from sqlalchemy.orm import Session

from domain.settings import Settings
from knowledge import service
from knowledge.retrieval import HybridIndex, KBDoc, RetrievalParams


class TenantIndexes:
    def __init__(self, settings: Settings):
        from knowledge.embedding import configured_embedder

        self.settings = settings
        self.embedder = configured_embedder(settings)
        self.params = RetrievalParams(no_match_threshold=settings.kb_no_match_threshold)
        self._indexes: dict[int, HybridIndex] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, tenant_id: int) -> HybridIndex:
        with self._lock:
            index = self._indexes.get(tenant_id)
            if index is None:
                index = self._indexes[tenant_id] = HybridIndex(self.embedder, self.params)
                index.add(service.published_docs(session, tenant_id))
            return index

    def on_change(self, tenant_id: int, op: str, payload: KBDoc | int) -> None:
        """``service.IndexHook``: apply a publish/archive to an index already built (no rebuild)."""
        with self._lock:
            index = self._indexes.get(tenant_id)
            if index is None:
                return  # built from the database on first use
            if op == "upsert":
                index.add([payload])
            else:
                index.remove(payload)

