"""Ticket category from what the caller said: a configurable 3-level taxonomy and a learned classifier.

The classifier joins character n-gram TF-IDF with e5 sentence embeddings (the
same embedder as KB retrieval) into a multinomial logistic regression over
full ``L1/L2/L3`` paths.  The bundled model is trained only on
text we wrote (the demo KB and its caller-style queries); it is built from that
text on first use and cached under the data directory.  `hotline category
train --data FILE` trains one on a deployment's own historical tickets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from domain.errors import AppError
from knowledge.taxonomy import Taxonomy  # noqa: F401 - re-exported for the CLI


@dataclass(frozen=True)
class CategoryParams:
    ngram_max: int = 2
    embedding_weight: float = 3.0  # scale of the sentence-embedding block next to the TF-IDF block
    C: float = 30.0
    min_confidence: float = 0.15  # below this path probability the agent is shown level 1 only


@dataclass
class CategoryPrediction:
    path: str
    confidence: float  # probability of the full path
    level1: str
    level1_confidence: float  # summed probability of the paths under level1
    alternatives: list[tuple[str, float]]


class CategoryModel:
    """Character n-gram TF-IDF plus sentence embeddings, into a multinomial logistic regression."""

    def __init__(self, vectorizer, classifier, params: CategoryParams, embedder, trained_on: str = ""):
        self.vectorizer = vectorizer
        self.classifier = classifier
        self.params = params
        self.embedder = embedder
        self.trained_on = trained_on

    def _features(self, texts: list[str]):
        from scipy.sparse import csr_matrix, hstack

        dense = self.embedder.queries(list(texts)) * self.params.embedding_weight
        return hstack([self.vectorizer.transform(texts), csr_matrix(dense)]).tocsr()

    @classmethod
    def train(cls, texts: list[str], labels: list[str], embedder, params: CategoryParams | None = None,
              trained_on: str = "") -> "CategoryModel":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        params = params or CategoryParams()
        if len(set(labels)) < 2:
            raise AppError("too_few_labels", "训练数据至少需要两个不同的分类")
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, params.ngram_max), sublinear_tf=True)
        vectorizer.fit(texts)
        model = cls(vectorizer, LogisticRegression(C=params.C, max_iter=5000), params, embedder, trained_on)
        model.classifier.fit(model._features(texts), labels)
        return model

    @classmethod
    def load(cls, embedder, path: Path) -> "CategoryModel":
        import joblib

        data = joblib.load(path)
        if data["embedder"] != embedder.info.name:
            raise AppError("category_model_mismatch",
                           f"分类模型用 {data['embedder']} 训练，当前向量模型是 {embedder.info.name}，请重新训练")
        return cls(data["vectorizer"], data["classifier"], CategoryParams(**data["params"]), embedder,
                   data.get("trained_on", ""))

    def save(self, path: Path) -> None:
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"vectorizer": self.vectorizer, "classifier": self.classifier, "params": self.params.__dict__,
                     "embedder": self.embedder.info.name, "trained_on": self.trained_on}, path, compress=3)

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]

    def predict(self, text: str, separator: str = "/") -> CategoryPrediction:
        probs = self.classifier.predict_proba(self._features([text]))[0]
        classes = self.classifier.classes_
        order = probs.argsort()[::-1]
        best = order[0]
        level1 = str(classes[best]).split(separator)[0]
        l1_conf = float(sum(p for c, p in zip(classes, probs) if str(c).split(separator)[0] == level1))
        return CategoryPrediction(
            path=str(classes[best]), confidence=float(probs[best]), level1=level1, level1_confidence=l1_conf,
            alternatives=[(str(classes[i]), float(probs[i])) for i in order[:3]],
        )

    def predict_many(self, texts: list[str]) -> list[str]:
        return [str(x) for x in self.classifier.predict(self._features(texts))]


def default_model_path(data_dir: Path) -> Path:
    return data_dir / "models" / "category_default.joblib"


def load_category_model(embedder, model_path: Path | None, data_dir: Path) -> CategoryModel:
    """The configured model, else the default one built from the shipped training text (once, then cached)."""
    if model_path:
        if not Path(model_path).exists():
            raise AppError("category_model_missing", f"分类模型文件不存在：{model_path}（请先运行 hotline category train）")
        return CategoryModel.load(embedder, Path(model_path))
    path = default_model_path(data_dir)
    if path.exists():
        try:
            cached = CategoryModel.load(embedder, path)
            if cached.trained_on == SHIPPED_TRAINED_ON.format(n=len(shipped_training_data()[0])):
                return cached
        except AppError:
            pass  # trained with another embedder (or on older shipped text): rebuild below
    texts, labels = shipped_training_data()
    model = CategoryModel.train(texts, labels, embedder, trained_on=SHIPPED_TRAINED_ON.format(n=len(texts)))
    model.save(path)
    return model


# what callers say, labelled with the taxonomy path, written for this project by an annotator who did not see the
# code (corpus/category/README.md); the evaluation calls in corpus/calls are another annotator's
CALLER_UTTERANCES = Path(__file__).resolve().parents[1] / "corpus" / "category" / "utterances.jsonl"
SHIPPED_TRAINED_ON = "shipped demo KB + demo queries + caller utterances ({n} examples)"


def shipped_training_data() -> tuple[list[str], list[str]]:
    """Our own writing only: demo KB entries, the caller-style demo queries (labelled by KB category) and the
    labelled caller utterances."""
    from knowledge.kbfile import DEMO_KB, DEMO_QUERIES, read_jsonl

    kb = read_jsonl(DEMO_KB)
    category = {row["id"]: row["category"] for row in kb}
    texts, labels = [], []
    for row in kb:
        texts.append(row["question"] + " " + " ".join(row.get("keywords", [])))
        labels.append(row["category"])
        texts.append(row["answer"].split("。")[0])
        labels.append(row["category"])
    for row in read_jsonl(DEMO_QUERIES):
        texts.append(row["query"])
        labels.append(category[row["expected_id"]])
    for row in read_jsonl(CALLER_UTTERANCES):
        texts.append(row["text"])
        labels.append(row["category"])
    return texts, labels


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """JSONL with ``text`` and ``label`` per line (a deployment's historical tickets)."""
    from knowledge.kbfile import read_jsonl

    texts, labels, bad = [], [], []
    for n, row in enumerate(read_jsonl(path), 1):
        text, label = str(row.get("text", "")).strip(), str(row.get("label", "")).strip()
        if not text or not label:
            bad.append(n)
            continue
        texts.append(text)
        labels.append(label)
    if bad:
        raise AppError("bad_training_data", f"{path} 有 {len(bad)} 行缺少 text 或 label（行号：{bad[:10]}）")
    return texts, labels
