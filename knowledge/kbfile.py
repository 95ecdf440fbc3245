"""Plain KB files for benchmarks and training: JSONL with id, question, answer[, department, keywords, category]."""
from __future__ import annotations

import json
from pathlib import Path

from domain.errors import AppError
from knowledge.retrieval import KBDoc

DEMO_KB = Path(__file__).with_name("demo_kb.jsonl")
DEMO_QUERIES = Path(__file__).with_name("demo_queries.jsonl")


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AppError("bad_jsonl", f"{path} 第 {n} 行不是合法的 JSON：{e.msg}") from e
    return rows


def load_kb_docs(path: Path) -> list[KBDoc]:
    docs = []
    for n, row in enumerate(read_jsonl(path), 1):
        if not row.get("id") or not row.get("question"):
            raise AppError("bad_kb", f"{path} 第 {n} 条缺少 id 或 question")
        docs.append(KBDoc(
            id=row["id"], title=row["question"], body=row.get("answer", ""), department=row.get("department", ""),
            keywords=tuple(row.get("keywords", ())), category=row.get("category", ""),
        ))
    return docs


def load_queries(path: Path) -> list[dict]:
    """Labelled queries: query (or audio) and expected_id; a paraphrase set's ``id`` (the entry it paraphrases)
    stands for expected_id, and its optional ``same_question_ids`` name entries with the identical question."""
    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        if "expected_id" not in row and "id" in row:
            row["expected_id"] = row["id"]
        if "query" not in row and "audio" not in row or "expected_id" not in row:
            raise AppError("bad_queries", f"{path} 第 {n} 条需要 query（或 audio）和 expected_id")
    return rows
