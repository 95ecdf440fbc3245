"""Cut each labelled call's first substantive caller turn out of its recording as a spoken retrieval query.

    python eval/data/make_call_queries.py DATA_DIR/synthetic_calls var/eval/callq

Writes OUT/queries.jsonl (query = reference text, expected_id = the call's first KB id, audio) and
OUT/audio/<call>.wav (caller channel only, 8 kHz as recorded).  Evaluation data: keep it under var/.
Run with ``hotline eval retrieval --kb DATA_DIR/synthetic_calls/kb.jsonl --queries OUT/queries.jsonl --from-audio``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import soundfile as sf


def main(calls: Path, out: Path, min_chars: int = 8) -> int:
    (out / "audio").mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for path in sorted((calls / "dialogues").glob("*.json")):
            d = json.loads(path.read_text(encoding="utf-8"))
            if not d.get("kb_ids"):
                continue
            refs = json.loads((calls / "refs" / f"{d['id']}.json").read_text(encoding="utf-8"))
            turn = next((r for r in refs if r["speaker"] == "caller" and len(r["text"]) >= min_chars), None)
            if turn is None:
                continue
            audio, rate = sf.read(calls / d["audio"]["file"])
            column = 0 if turn["channel"] == "left" else 1
            channel = audio[turn["start_sample"]:turn["end_sample"], column]
            rel = f"audio/{d['id']}.wav"
            sf.write(out / rel, channel, rate)
            f.write(json.dumps({"query": turn["text"], "expected_id": d["kb_ids"][0], "audio": rel},
                               ensure_ascii=False) + "\n")
            n += 1
    return n


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2])), "spoken queries written")
