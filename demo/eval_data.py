"""The project's own evaluation data (CC0, written for this project) offered to evaluators on first start.

The browser's benchmarks read only inside the evaluation data folder (``serving.api.evaluations``); a fresh system
would offer nothing.  The demo start links the bundled sets into it (hard links: no extra disk, and nothing that
resolves outside the folder), unless an entry of that name is already there.  Licensed third-party sets are the
operator's to add.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED = {  # name in the folder → the project's file or folder
    "corpus-calls": REPO / "corpus" / "calls",  # 200 synthetic calls: audio, transcripts, labels, their KB
    "govqa-paraphrases.jsonl": REPO / "corpus" / "retrieval" / "govqa_paraphrases.jsonl",
    "category-utterances.jsonl": REPO / "corpus" / "category" / "utterances.jsonl",
    "govqa-colloquial.jsonl": REPO / "eval" / "data" / "govqa_colloquial.jsonl",
}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def seed_eval_data(root: Path) -> list[str]:
    """Put the bundled sets missing from ``root`` into it; the names added."""
    root.mkdir(parents=True, exist_ok=True)
    added = []
    for name, src in BUNDLED.items():
        dst = root / name
        if dst.exists() or not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(src), str(dst))
        added.append(name)
    return added
