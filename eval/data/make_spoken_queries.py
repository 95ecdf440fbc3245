"""Speak a query set with espeak-ng (Mandarin) so `hotline eval retrieval --from-audio` can run on it.

    python eval/data/make_spoken_queries.py eval/data/govqa_colloquial.jsonl var/eval/spoken [--split test]

Writes OUT/queries.jsonl (query, expected_id, audio) and OUT/audio/NNNN.wav.  Generated audio is not
committed: rerun this script to regenerate it.  espeak-ng is robotic; it is a stand-in for real callers.
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("queries", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--split", default="", help="Only rows whose 'split' equals this.")
    ap.add_argument("--voice", default="cmn-latn-pinyin")
    ap.add_argument("--speed", type=int, default=150, help="Words per minute.")
    args = ap.parse_args()
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in open(args.queries, encoding="utf-8") if line.strip()]
    rows = [r for r in rows if not args.split or r.get("split") == args.split]
    with open(args.out / "queries.jsonl", "w", encoding="utf-8") as f:
        for n, row in enumerate(rows):
            rel = f"audio/{n:04d}.wav"
            subprocess.run(["espeak-ng", "-v", args.voice, "-s", str(args.speed), "-w", str(args.out / rel),
                            row["query"]], check=True, capture_output=True)
            f.write(json.dumps({"query": row["query"], "expected_id": row["expected_id"], "audio": rel},
                               ensure_ascii=False) + "\n")
    print(f"{len(rows)} spoken queries in {args.out}")


if __name__ == "__main__":
    main()
