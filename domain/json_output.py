"""The JSON a command prints (benchmarks, ``qa score``, ``qa tune``): on stdout and, optionally, to ``--json OUT``."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, json_out: Path | None) -> None:
    text = json.dumps(result, ensure_ascii=False, indent=2, default=str)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
    print(text)
