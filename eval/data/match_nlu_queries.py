"""Write the nlu_queries.jsonl questions whose KB answer matches a gov_qa entry as a retrieval query set.

    python eval/data/match_nlu_queries.py DATA_DIR/msgabench_gov_affairs var/eval/nlu_matched.jsonl

The output holds evaluation data (not ours): keep it under var/, never commit it.  A query is kept
when the character-bigram Jaccard similarity of its KB answer to a gov_qa answer is at least 0.6.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def bigrams(text: str) -> set[str]:
    text = re.sub(r"[\W_]+", "", text)
    return {text[i : i + 2] for i in range(len(text) - 1)}


def main(data_dir: Path, out: Path, min_jaccard: float = 0.6) -> int:
    kb = [json.loads(line) for line in open(data_dir / "gov_qa.jsonl", encoding="utf-8")]
    answers = [(k["id"], bigrams(k["answer"])) for k in kb]
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    with open(out, "w", encoding="utf-8") as f:
        for line in open(data_dir / "nlu_queries.jsonl", encoding="utf-8"):
            row = json.loads(line)
            a = bigrams(row["kb_answer"])
            best_id, best = max(((i, len(a & b) / max(1, len(a | b))) for i, b in answers), key=lambda t: t[1])
            if best >= min_jaccard:
                f.write(json.dumps({"query": row["question"], "expected_id": best_id}, ensure_ascii=False) + "\n")
                kept += 1
    return kept


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2])), "queries written")
