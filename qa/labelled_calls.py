"""Labelled calls in the synthetic-calls folder format: what QA tuning and the benchmarks both read.

Layout (see shared/data/synthetic_calls/README.md): ``kb.jsonl``, ``taxonomy.json``, ``dialogues/<id>.json``
(labels), ``audio/<id>.flac|opus`` (stereo, left agent / right caller), ``refs/<id>.json`` (reference segments).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from domain.errors import AppError

# label field (scorecard item ``label``) -> does the labelled call pass that item?
LABEL_PASS: dict[str, Callable[[dict], bool]] = {
    "greeting": lambda d: d["compliance"]["greeting"] == "ok",
    "closing": lambda d: d["compliance"]["closing"] == "ok",
    "read_back": lambda d: bool(d["compliance"]["read_back"]),
    "forbidden_phrases": lambda d: not d["compliance"]["forbidden_phrases"],
    "long_silence_s": lambda d: d["compliance"]["long_silence_s"] is None,
    "interruption": lambda d: not d["compliance"]["interruption"],
    "rude": lambda d: not d["compliance"]["rude"],
    "transferred_110": lambda d: not (d["police_110"] and not d["transferred_110"]),
    "answer_errors": lambda d: bool(d["answer_accurate"]),
}
COMPLIANCE_LABELS = ("greeting", "closing", "read_back", "forbidden_phrases", "long_silence_s", "interruption", "rude")


def load_calls(data: Path) -> list[dict]:
    if not (data / "dialogues").is_dir():
        raise AppError("not_labelled_calls", f"{data} 不是合成通话数据目录（缺少 dialogues/）", 422)
    calls = []
    for path in sorted((data / "dialogues").glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        d["refs"] = json.loads((data / "refs" / f"{d['id']}.json").read_text(encoding="utf-8"))
        calls.append(d)
    return calls


def load_kb(data: Path) -> list[dict]:
    return [json.loads(line) for line in (data / "kb.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def metadata_of(d: dict) -> dict:
    """What the system itself knows about a call (CDR + ticket), not labels about its quality."""
    seconds = d["audio"].get("duration_s") or max(r["end"] for r in d["refs"])  # audio not rendered yet: the refs
    return {"duration_ms": round(seconds * 1000), "ticket_created": d["ticket"] is not None,
            "hold_ms": 0, "transfers": 0}


def expected_items(d: dict, card) -> dict[str, bool]:
    return {i.code: LABEL_PASS[i.label](d) for i in card.items if i.label in LABEL_PASS}


def reference_segments(d: dict) -> list[dict]:
    """The call's reference transcript as QA reads segments (role, start/end in seconds, text)."""
    return [{"role": r["speaker"], "start": r["start"], "end": r["end"], "text": r["text"]} for r in d["refs"]]


def audio_path(data: Path, d: dict) -> Path:
    """The call's recording: the file its ``audio`` block names, else ``audio/<id>.flac`` or ``.opus``."""
    if d.get("audio", {}).get("file"):
        return data / d["audio"]["file"]
    for suffix in (".flac", ".opus"):
        if (data / "audio" / f"{d['id']}{suffix}").is_file():
            return data / "audio" / f"{d['id']}{suffix}"
    raise AppError("no_audio", f"通话 {d['id']} 没有录音文件（audio/{d['id']}.flac 或 .opus）", 422)
