"""Shared output of every benchmark: JSON on stdout and, optionally, to ``--json OUT``."""
from __future__ import annotations

import json
import os
from pathlib import Path


def emit(result: dict, json_out: Path | None) -> None:
    text = json.dumps(result, ensure_ascii=False, indent=2, default=str)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
    print(text)


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
