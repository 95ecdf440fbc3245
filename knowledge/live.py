"""Per-tenant search indexes over the published knowledge base, updated incrementally on publish, and
per-tenant ASR lexicons built from it, rebuilt when it changes."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from domain import tenant_settings
from domain.settings import Settings
from knowledge import service
from knowledge.retrieval import HybridIndex, KBDoc, RetrievalParams

if TYPE_CHECKING:
    from asr.hotwords import Lexicon


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


class TenantLexicons:
    """Each tenant's hot words and KB phrases for ASR (``asr.hotwords.Lexicon.from_kb`` over its published
    entries, with the tenant's own base terms from ``domain.tenant_settings``: terms, and the KB phrases that
    ASR hears as homophones).  The first use builds one; after that each use checks the published state (one
    small query) and, when an entry was published or archived since or the tenant's base terms changed,
    rebuilds it on a background thread: a large KB takes seconds, and the calls being transcribed keep the
    previous lexicon until the new one is ready."""

    def __init__(self):
        self._lexicons: dict[int, tuple[tuple, Lexicon]] = {}  # tenant → ((published state, base terms), lexicon)
        self._rebuilding: set[int] = set()  # tenants whose lexicon a background thread is rebuilding
        self._lock = threading.Lock()

    def get(self, session: Session, tenant_id: int) -> Lexicon:
        base = tuple(tenant_settings.get(session, tenant_id).lexicon.base_terms)
        state = (service.published_state(session, tenant_id), base)
        with self._lock:
            built = self._lexicons.get(tenant_id)
            if built is not None and (built[0] == state or tenant_id in self._rebuilding):
                return built[1]
        texts = [(d.title, d.body) for d in service.published_docs(session, tenant_id)]
        if built is None:
            self._build(tenant_id, state, texts)
            return self._lexicons[tenant_id][1]
        with self._lock:
            self._rebuilding.add(tenant_id)
        threading.Thread(target=self._build, args=(tenant_id, state, texts), daemon=True,
                         name=f"lexicon-{tenant_id}").start()
        return built[1]

    def _build(self, tenant_id: int, state: tuple, texts: list[tuple[str, str]]) -> None:
        from asr.hotwords import Lexicon

        try:
            lexicon = Lexicon.from_kb(texts, base=state[1])
            with self._lock:
                self._lexicons[tenant_id] = (state, lexicon)
        finally:
            with self._lock:
                self._rebuilding.discard(tenant_id)
