"""Benchmark progress, for whoever started the run (the evaluations UI polls it)."""
from __future__ import annotations

import json
import os
from pathlib import Path


PROGRESS_ENV = "HOTLINE_EVAL_PROGRESS"


def progress(done: int, total: int, note: str = "") -> None:
    """Report progress to whoever started the benchmark (the UI sets HOTLINE_EVAL_PROGRESS to a file path)."""
    target = os.environ.get(PROGRESS_ENV)
    if not target:
        return
    path = Path(target)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"done": done, "total": total, "note": note}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
