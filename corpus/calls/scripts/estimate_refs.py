#!/usr/bin/env python3
"""Estimated reference segmentation for calls that have no rendered audio yet.

    python3 scripts/estimate_refs.py [--ids c001-c200] [--force]

Writes refs/<id>.json (same fields as the rendered refs plus "estimated": true) and refs/<id>.rttm for
every dialogue without audio/<id>.opus. Timing model: each turn lasts len(spoken chars)/4.5 s (spoken
chars = tts_text, or the text with digits read out, without punctuation), caller tempo taken into account
when a render plan exists; gaps are uniform 0.3-1.2 s seeded by the call id; placement markers are
honoured exactly (preceded_by_silence_s / preceded_by_notified_hold_s = that gap, overlaps_previous_s =
start that many seconds before the previous turn ends). Refs of rendered calls are never touched
(unless --force is given and the audio is missing)."""
import os, sys, json, glob, re, random, hashlib, argparse
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from calllib import spoken  # noqa: E402

SR = 8000
CPS = 4.5
PUNCT = re.compile(r"[\s，。！？、；：,.!?;:…—“”‘’\"'（）()《》\-]")


def estimate(d):
    cid = d["id"]
    r = random.Random(int(hashlib.sha1(("est|" + cid).encode()).hexdigest()[:8], 16))
    plan = (d.get("audio") or {}).get("render_plan") or {}
    ctempo = (plan.get("caller_voice") or {}).get("tempo", 1.0)
    atempo = (plan.get("agent_voice") or {}).get("tempo", 1.0)
    segs = []
    prev_end = None
    for t in d["turns"]:
        txt = t.get("tts_text") or spoken(t["text"])
        n = len(PUNCT.sub("", txt))
        dur = n / CPS / (atempo if t["speaker"] == "agent" else ctempo)
        dur_s = max(1, int(round(dur * SR)))
        if prev_end is None:
            start = int(round(r.uniform(0.3, 0.7) * SR))
        elif "overlaps_previous_s" in t:
            start = segs[-1]["end_sample"] - int(round(t["overlaps_previous_s"] * SR))
        elif "preceded_by_silence_s" in t:
            start = prev_end + int(round(t["preceded_by_silence_s"] * SR))
        elif "preceded_by_notified_hold_s" in t:
            start = prev_end + int(round(t["preceded_by_notified_hold_s"] * SR))
        else:
            start = prev_end + int(round(r.uniform(0.3, 1.2) * SR))
        end = start + dur_s
        segs.append({"turn": t["turn"], "speaker": t["speaker"],
                     "channel": "left" if t["speaker"] == "agent" else "right",
                     "start": round(start / SR, 3), "end": round(end / SR, 3),
                     "start_sample": start, "end_sample": end,
                     "text": t["text"], "tts_text": t.get("tts_text") or t["text"], "estimated": True})
        prev_end = end if prev_end is None else max(prev_end, end)
    return segs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", default="c001-c200")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    lo, hi = a.ids.split("-")
    os.makedirs(os.path.join(ROOT, "refs"), exist_ok=True)
    n = 0
    for f in sorted(glob.glob(os.path.join(ROOT, "dialogues", "*.json"))):
        cid = os.path.basename(f)[:-5]
        if not (lo <= cid <= hi):
            continue
        if os.path.exists(os.path.join(ROOT, "audio", cid + ".opus")):
            continue  # rendered: exact refs exist
        rp = os.path.join(ROOT, "refs", cid + ".json")
        if os.path.exists(rp) and not a.force:
            try:
                old = json.load(open(rp, encoding="utf-8"))
                if old and not old[0].get("estimated"):
                    continue
            except Exception:
                pass
        d = json.load(open(f, encoding="utf-8"))
        segs = estimate(d)
        with open(rp, "w", encoding="utf-8") as fh:
            json.dump(segs, fh, ensure_ascii=False, indent=1); fh.write("\n")
        with open(os.path.join(ROOT, "refs", cid + ".rttm"), "w") as fh:
            for s in segs:
                fh.write(f"SPEAKER {cid} 1 {s['start']:.3f} {(s['end_sample'] - s['start_sample']) / SR:.3f} "
                         f"<NA> <NA> {s['speaker']} <NA> <NA>\n")
        n += 1
    print("estimated refs written:", n)


if __name__ == "__main__":
    main()
