"""Hybrid FAQ retrieval for live calls: dense + BM25 + pinyin, scored by a learned ranker.

Naively fusing ranked lists lets a weak signal outvote a strong one, so this
module does not fuse ranks.  Each retriever only proposes candidates: e5
(title, and title plus the head of the answer body) in faiss, BM25 over jieba
tokens of title and body, and BM25 over fuzzy-pinyin bigrams (robust to ASR
homophones).  A logistic ranker then scores every candidate from a handful of
features (absolute and relative similarities, lexical coverage).  Its output
is a calibrated probability that the entry answers the query, so one named
threshold (``RetrievalParams.no_match_threshold``) decides "no good match".

The index is incremental: ``add`` embeds only the new entries and ``remove``
drops one; nothing is rebuilt when an entry is published.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from knowledge.embedding import Embedder
from knowledge.text import char_bigrams, normalize_query, pinyin_tokens, question_types, word_tokens

RANKER_PATH = Path(__file__).with_name("ranker.json")  # typed queries
SPEECH_RANKER_PATH = Path(__file__).with_name("ranker_speech.json")  # ASR transcripts of callers
FEATURES = (
    "cos_title", "cos_title_gap", "cos_body", "cos_body_gap",
    "bm25_title", "bm25_body", "bm25_pinyin", "char_cover", "pinyin_cover", "type_match", "type_clash",
)


@dataclass(frozen=True)
class RetrievalParams:
    """Tunable knobs (tuned against labelled paraphrase sets; see eval/retrieval_bench.py)."""

    candidates_per_retriever: int = 20
    body_chars: int = 96  # head of the answer body embedded together with the title
    use_body_embedding: bool = True
    title_as_query: bool = True  # embed FAQ titles as queries: question-to-question similarity
    no_match_threshold: float = 0.2  # ranker probability below which the top hit is "no good match"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75


@dataclass(frozen=True)
class KBDoc:
    id: int | str
    title: str
    body: str = ""
    department: str = ""
    keywords: tuple[str, ...] = ()
    category: str = ""


@dataclass
class SearchHit:
    """One knowledge entry found for a query (its payload in a suggestion is ``KnowledgeHit``)."""

    id: int | str
    title: str
    body: str
    score: float  # calibrated probability that this entry answers the query
    matched_spans: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchResult:
    query: str
    normalized_query: str
    hits: list[SearchHit]
    no_good_match: bool
    latency_ms: float


class BM25Index:
    """Incremental BM25 over an inverted index; postings kept as numpy arrays per term."""

    def __init__(self, k1: float, b: float):
        self.k1, self.b = k1, b
        self._post: dict[str, tuple[list[int], list[int]]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._len = np.zeros(0, np.float32)
        self._alive = np.zeros(0, bool)
        self._total_len = 0.0
        self._n = 0

    def _grow(self, size: int) -> None:
        if size > len(self._len):
            cap = max(size, 2 * len(self._len), 64)
            self._len = np.concatenate([self._len, np.zeros(cap - len(self._len), np.float32)])
            self._alive = np.concatenate([self._alive, np.zeros(cap - len(self._alive), bool)])

    def add(self, slot: int, tokens: list[str]) -> None:
        self._grow(slot + 1)
        counts: dict[str, int] = {}
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
        for t, c in counts.items():
            slots, tfs = self._post.setdefault(t, ([], []))
            slots.append(slot)
            tfs.append(c)
            self._arrays.pop(t, None)
        self._len[slot] = len(tokens)
        self._alive[slot] = True
        self._total_len += len(tokens)
        self._n += 1

    def remove(self, slot: int) -> None:
        if slot < len(self._alive) and self._alive[slot]:
            self._alive[slot] = False
            self._total_len -= float(self._len[slot])
            self._n -= 1

    def scores(self, tokens: list[str], size: int) -> np.ndarray:
        out = np.zeros(size, np.float32)
        if not self._n:
            return out
        avgdl = max(self._total_len / self._n, 1.0)
        for t in set(tokens):
            if t not in self._post:
                continue
            arr = self._arrays.get(t)
            if arr is None:
                slots, tfs = self._post[t]
                arr = self._arrays[t] = (np.asarray(slots, np.int64), np.asarray(tfs, np.float32))
            slots, tfs = arr
            alive = self._alive[slots]
            df = int(alive.sum())
            if not df:
                continue
            idf = np.log(1.0 + (self._n - df + 0.5) / (df + 0.5))
            dl = self._len[slots]
            w = idf * tfs * (self.k1 + 1) / (tfs + self.k1 * (1 - self.b + self.b * dl / avgdl))
            np.add.at(out, slots[alive], w[alive])
        return out


class DenseIndex:
    """faiss inner-product index with ids = slots, plus the vectors for exact candidate scoring."""

    def __init__(self, dim: int):
        import faiss

        faiss.omp_set_num_threads(1)  # single queries: threads only add spin-wait latency
        self._faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._vecs = np.zeros((0, dim), np.float32)

    def add(self, slots: list[int], vecs: np.ndarray) -> None:
        need = max(slots) + 1
        if need > len(self._vecs):
            grown = np.zeros((max(need, 2 * len(self._vecs), 64), self._vecs.shape[1]), np.float32)
            grown[: len(self._vecs)] = self._vecs
            self._vecs = grown
        self._vecs[slots] = vecs
        self._faiss.add_with_ids(vecs, np.asarray(slots, np.int64))

    def remove(self, slot: int) -> None:
        self._faiss.remove_ids(np.asarray([slot], np.int64))

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        if self._faiss.ntotal == 0:
            return np.zeros(0, np.int64)
        _, ids = self._faiss.search(q.reshape(1, -1), min(k, self._faiss.ntotal))
        return ids[0][ids[0] >= 0]

    def cos(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return self._vecs[slots] @ q


@dataclass
class Ranker:
    """Linear ranking score over FEATURES (trained pairwise) plus Platt calibration.

    ``weights`` order candidates; ``calib_a * score + calib_b`` through a sigmoid
    turns a score into the probability that the candidate answers the query.  Weights that are
    ``plain_e5_weights()`` rank exactly as plain e5 retrieval does (``select_ranker`` falls back to them).
    """

    weights: list[float]
    calib_a: float = 1.0
    calib_b: float = 0.0
    trained_on: str = ""
    gate: dict = field(default_factory=dict)  # select_ranker's out-of-fold comparison of the ranking stages

    @classmethod
    def load(cls, path: Path = RANKER_PATH) -> "Ranker":
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data.pop("features")) != FEATURES:
            raise ValueError(f"ranker {path} was trained on different features; retrain it")
        return cls(**data)

    def save(self, path: Path = RANKER_PATH) -> None:
        body = {"features": list(FEATURES), **asdict(self)}
        path.write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    def score(self, x: np.ndarray) -> np.ndarray:
        return x @ np.asarray(self.weights, np.float32)

    def probability(self, score: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.calib_a * score + self.calib_b)))


class HybridIndex:
    """Typed queries and ASR transcripts share the candidates and features but not the ranker: a transcript's
    wrong characters make lexical and dense evidence weaker and pinyin evidence stronger, so ``spoken``
    queries are scored by a ranker trained on real transcripts (``hotline kb train-ranker --spoken``)."""

    def __init__(self, embedder: Embedder, params: RetrievalParams | None = None, ranker: Ranker | None = None,
                 speech_ranker: Ranker | None = None):
        self.embedder = embedder
        self.params = params or RetrievalParams()
        self.ranker = ranker or Ranker.load()
        self.speech_ranker = speech_ranker or Ranker.load(SPEECH_RANKER_PATH)
        p = self.params
        self._docs: list[KBDoc | None] = []
        self._slot: dict[int | str, int] = {}
        self._title_bigrams: list[set[str]] = []
        self._title_pinyin: list[set[str]] = []
        self._title_types: list[frozenset[str]] = []
        self._dense_title = DenseIndex(embedder.info.dim)
        self._dense_body = DenseIndex(embedder.info.dim) if p.use_body_embedding else None
        self._bm25_title = BM25Index(p.bm25_k1, p.bm25_b)
        self._bm25_body = BM25Index(p.bm25_k1, p.bm25_b)
        self._bm25_pinyin = BM25Index(p.bm25_k1, p.bm25_b)
        self.build_seconds = 0.0
        self._lock = threading.RLock()  # publishes may land while calls are searching

    def __len__(self) -> int:
        return len(self._slot)

    def get(self, doc_id: int | str) -> KBDoc | None:
        slot = self._slot.get(doc_id)
        return None if slot is None else self._docs[slot]

    # ------------------------------------------------------------ updates
    def add(self, docs: list[KBDoc]) -> None:
        """Add or replace entries (only these are embedded; nothing else is rebuilt)."""
        if not docs:
            return
        t0 = time.perf_counter()
        # Embed outside the lock: searches go on while new entries are encoded.
        encode_titles = self.embedder.queries if self.params.title_as_query else self.embedder.passages
        title_vecs = encode_titles([d.title for d in docs])
        body_vecs = (self.embedder.passages([f"{d.title} {d.body[: self.params.body_chars]}" for d in docs])
                     if self._dense_body is not None else None)
        with self._lock:
            for d in docs:
                if d.id in self._slot:
                    self._remove(d.id)
            start = len(self._docs)
            slots = list(range(start, start + len(docs)))
            self._dense_title.add(slots, title_vecs)
            if self._dense_body is not None:
                self._dense_body.add(slots, body_vecs)
            self._index_text(slots, docs)
        self.build_seconds += time.perf_counter() - t0

    def _index_text(self, slots: list[int], docs: list[KBDoc]) -> None:
        for slot, d in zip(slots, docs):
            self._docs.append(d)
            self._slot[d.id] = slot
            title = normalize_query(d.title)
            self._title_bigrams.append(char_bigrams(title))
            self._title_pinyin.append(set(pinyin_tokens(title)))
            self._title_types.append(question_types(title))
            self._bm25_title.add(slot, word_tokens(title + " " + " ".join(d.keywords)))
            self._bm25_body.add(slot, word_tokens(d.body))
            self._bm25_pinyin.add(slot, pinyin_tokens(title))

    def remove(self, doc_id: int | str) -> None:
        with self._lock:
            self._remove(doc_id)

    def _remove(self, doc_id: int | str) -> None:
        slot = self._slot.pop(doc_id, None)
        if slot is None:
            return
        self._docs[slot] = None
        self._dense_title.remove(slot)
        if self._dense_body is not None:
            self._dense_body.remove(slot)
        for idx in (self._bm25_title, self._bm25_body, self._bm25_pinyin):
            idx.remove(slot)

    # ------------------------------------------------------------ search
    def features(self, query: str) -> tuple[str, np.ndarray, np.ndarray]:
        """Normalised query, candidate slots and their feature matrix (rows follow FEATURES)."""
        nq = normalize_query(query) or query
        qv = self.embedder.queries([nq])[0]  # outside the lock
        with self._lock:
            return (nq, *self._features(nq, qv))

    def _features(self, nq: str, qv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = len(self._docs)
        if not self._slot:
            return np.zeros(0, np.int64), np.zeros((0, len(FEATURES)), np.float32)
        k = self.params.candidates_per_retriever
        words, pys = word_tokens(nq), pinyin_tokens(nq)
        s_title = self._bm25_title.scores(words, size)
        s_body = self._bm25_body.scores(words, size)
        s_py = self._bm25_pinyin.scores(pys, size)
        cand = [self._dense_title.search(qv, k)]
        if self._dense_body is not None:
            cand.append(self._dense_body.search(qv, k))
        for s in (s_title, s_body, s_py):
            top = np.argpartition(-s, min(k, size - 1))[:k]
            cand.append(top[s[top] > 0])
        slots = np.unique(np.concatenate(cand)).astype(np.int64)
        slots = slots[[self._docs[s] is not None for s in slots]]
        cos_t = self._dense_title.cos(qv, slots)
        cos_b = self._dense_body.cos(qv, slots) if self._dense_body is not None else cos_t
        qb, qp = char_bigrams(nq), set(pys)

        def rel(v: np.ndarray) -> np.ndarray:
            m = float(v.max()) if len(v) else 0.0
            return v / m if m > 0 else v

        cover = np.array([len(qb & self._title_bigrams[s]) / max(len(qb), 1) for s in slots], np.float32)
        pcover = np.array([len(qp & self._title_pinyin[s]) / max(len(qp), 1) for s in slots], np.float32)
        qt = question_types(nq)
        shared = np.array([len(qt & self._title_types[s]) for s in slots], np.float32)
        typed = np.array([bool(self._title_types[s]) for s in slots], np.float32)
        match = shared / max(len(qt), 1)
        clash = (shared == 0) * typed * bool(qt)  # both say what they ask about, and it differs
        x = np.column_stack([
            cos_t, cos_t - cos_t.max(), cos_b, cos_b - cos_b.max(),
            rel(s_title[slots]), rel(s_body[slots]), rel(s_py[slots]), cover, pcover, match, clash,
        ]).astype(np.float32)
        return slots, x

    def search(self, query: str, k: int = 3, *, spoken: bool = False) -> SearchResult:
        """Top ``k`` entries; ``spoken`` when the query is an ASR transcript rather than typed text."""
        t0 = time.perf_counter()
        nq = normalize_query(query) or query
        qv = self.embedder.queries([nq])[0]
        ranker = self.speech_ranker if spoken else self.ranker
        with self._lock:
            slots, x = self._features(nq, qv)
            prob = ranker.probability(ranker.score(x)) if len(slots) else np.zeros(0)
            order = np.argsort(-prob)[:k]
            docs = [self._docs[slots[i]] for i in order]
        hits = [SearchHit(d.id, d.title, d.body, float(prob[i]), matched_spans(nq, d.title),
                          dict(zip(FEATURES, map(float, x[i])))) for i, d in zip(order, docs)]
        no_match = not hits or hits[0].score < self.params.no_match_threshold
        return SearchResult(query, nq, hits, no_match, (time.perf_counter() - t0) * 1000)


def matched_spans(query: str, text: str, min_len: int = 2) -> list[str]:
    """Substrings of ``text`` (at least ``min_len`` chars) that also occur in ``query``."""
    blocks = SequenceMatcher(None, query, text, autojunk=False).get_matching_blocks()
    return [text[b.b : b.b + b.size] for b in blocks if b.size >= min_len]


def ranking_samples(index: HybridIndex, labelled: list[tuple[str, int | str | set]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per (query, expected entry id or set of ids): the candidates' feature matrix and which are expected."""
    out = []
    for query, expected in labelled:
        accepted = expected if isinstance(expected, set) else {expected}
        _, slots, x = index.features(query)
        out.append((x, np.array([index._docs[s].id in accepted for s in slots], bool)))
    return out


# Nested stages of ranking, simplest first: plain e5 (cosine to the question), the dense stage (e5 over the
# question and over the question plus the head of the answer), the hybrid stage (lexical and pinyin evidence too).
STAGES: dict[str, tuple[str, ...]] = {
    "e5": ("cos_title",),
    "dense": ("cos_title", "cos_title_gap", "cos_body", "cos_body_gap"),
    "hybrid": FEATURES,
}


def plain_e5_weights() -> list[float]:
    """Weights that rank candidates by e5 cosine to the title alone: plain dense retrieval, the floor."""
    return [float(f == "cos_title") for f in FEATURES]


def fit_ranker(samples: list[tuple[np.ndarray, np.ndarray]], trained_on: str = "", C: float = 0.1,
               stage: str = "hybrid") -> Ranker:
    """Fit the ranker of a ``STAGES`` stage from ``ranking_samples``: weights on that stage's features only (plain
    e5: ``plain_e5_weights``, nothing to fit), and the calibration.

    Weights come from a pairwise logistic regression (correct entry minus each
    wrong candidate of the same query), so they optimise the ordering within a
    query; a one-feature Platt fit on the resulting scores calibrates them.
    """
    from sklearn.linear_model import LogisticRegression

    if stage == "e5":
        weights = np.asarray(plain_e5_weights())
    else:
        cols = [FEATURES.index(f) for f in STAGES[stage]]
        d = np.concatenate([x[good][0] - x[~good] for x, good in samples if good.any()])[:, cols]
        scale = d.std(axis=0) + 1e-6  # standardise so the L2 penalty treats every feature alike
        pairwise = LogisticRegression(C=C, fit_intercept=False, max_iter=5000)
        pairwise.fit(np.vstack([d / scale, -d / scale]), np.r_[np.ones(len(d)), np.zeros(len(d))])
        weights = np.zeros(len(FEATURES))
        weights[cols] = pairwise.coef_[0] / scale
    scores = np.concatenate([x for x, _ in samples]) @ weights
    platt = LogisticRegression(C=1.0, max_iter=2000).fit(scores.reshape(-1, 1), np.concatenate([g for _, g in samples]))
    return Ranker([float(w) for w in weights], float(platt.coef_[0][0]), float(platt.intercept_[0]), trained_on)


def reciprocal_rank(ranker: Ranker, sample: tuple[np.ndarray, np.ndarray]) -> float:
    """1 / rank of the first expected candidate under ``ranker`` (0 when no candidate is expected)."""
    x, good = sample
    order = np.argsort(-ranker.score(x), kind="stable")
    hit = np.flatnonzero(good[order])
    return 1.0 / (hit[0] + 1) if len(hit) else 0.0


def select_ranker(samples: list[tuple[np.ndarray, np.ndarray]], groups: list, trained_on: str = "", folds: int = 5,
                  seed: int = 12345) -> Ranker:
    """The ranker of the simplest stage that is not beaten out of fold: plain e5 is the floor.

    Each ``STAGES`` stage is fitted on K-1 folds of ``samples`` (grouped by ``groups``: the expected entry, so
    copies and paraphrases of one question stay together, or the query set, so a stage must win on a set
    written apart from the ones it learned from) and scored on the held-out fold.  A stage is kept only when
    its out-of-fold MRR is higher than every simpler stage's; the comparison is stored as ``Ranker.gate``.
    """
    from domain.folds import assign_folds, splits

    rr: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for train, test in splits(assign_folds(groups, folds, seed)):
        for stage in STAGES:
            fitted = fit_ranker([samples[i] for i in train], stage=stage)
            rr[stage] += [reciprocal_rank(fitted, samples[i]) for i in test]
    mrr = {stage: round(float(np.mean(v)), 4) for stage, v in rr.items()}
    kept = max(STAGES, key=lambda stage: mrr[stage])  # the first (simplest) of equal ones
    ranker = fit_ranker(samples, trained_on, stage=kept)
    ranker.gate = {"kept": kept, "out_of_fold_mrr": mrr, "folds": folds, "seed": seed, "queries": len(samples)}
    return ranker
