#!/usr/bin/env python3
"""Automatic checks of rendered calls (nobody listened to the audio).

    python3 scripts/check_audio.py [--ids c001-c200]

For each audio/<id>.opus: decode with `opusdec --rate 8000`, compare the length with audio/<id>.json,
check that refs are exact (not estimated), that every turn has speech energy on its own channel, the
speaking rate per turn (chars/s of tts_text), and for calls without background noise that the other
channel is near-silent during single-speaker segments (channel isolation after Opus)."""
import os, sys, json, glob, subprocess, tempfile, wave, re, argparse
import numpy as np
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUNCT = re.compile(r"[\s，。！？、；：,.!?;:…—“”‘’\"'（）()《》\-]")


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--ids", default="c001-c200"); a = ap.parse_args()
    lo, hi = a.ids.split("-")
    bad, n, rates, tot = [], 0, [], 0.0
    for op in sorted(glob.glob(os.path.join(ROOT, "audio", "*.opus"))):
        cid = os.path.basename(op)[:-5]
        if not (lo <= cid <= hi):
            continue
        metap = os.path.join(ROOT, "audio", cid + ".json")
        if not os.path.exists(metap):
            bad.append(f"{cid}: no render metadata"); continue
        meta = json.load(open(metap, encoding="utf-8"))
        segs = json.load(open(os.path.join(ROOT, "refs", cid + ".json"), encoding="utf-8"))
        if any(s.get("estimated") for s in segs):
            bad.append(f"{cid}: refs are estimated but audio exists"); continue
        tmp = tempfile.mktemp(suffix=".wav")
        subprocess.run(["opusdec", "--quiet", "--rate", "8000", op, tmp], check=True)
        w = wave.open(tmp); y = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(float); w.close()
        os.remove(tmp)
        n += 1; tot += len(y) / 8000
        if abs(len(y) - meta["n_samples"]) > 8:
            bad.append(f"{cid}: length {len(y)} vs {meta['n_samples']}")
        for s in segs:
            ch = 0 if s["channel"] == "left" else 1
            seg = y[s["start_sample"]:s["end_sample"], ch]
            if len(seg) == 0 or np.sqrt(np.mean(seg ** 2)) < 100:
                bad.append(f"{cid}: turn {s['turn']} weak/empty on its channel")
            dur = (s["end_sample"] - s["start_sample"]) / 8000
            rates.append(len(PUNCT.sub("", s["tts_text"])) / dur)
        if not meta.get("noise"):
            for s in segs:
                ch = 0 if s["channel"] == "left" else 1
                other = [o for o in segs if o["channel"] != s["channel"]
                         and o["start_sample"] < s["end_sample"] and o["end_sample"] > s["start_sample"]]
                if other:
                    continue
                own = np.sqrt(np.mean(y[s["start_sample"]:s["end_sample"], ch] ** 2)) + 1e-9
                leak = np.sqrt(np.mean(y[s["start_sample"]:s["end_sample"], 1 - ch] ** 2))
                if 20 * np.log10(leak / own + 1e-12) > -34:  # Opus stereo crosstalk above -34 dB
                    bad.append(f"{cid}: turn {s['turn']} leaks into the other channel ({20 * np.log10(leak / own):.1f} dB)")
    print(f"{n} calls checked, {tot / 60:.1f} min; speaking rate chars/s min {min(rates) if rates else 0:.2f} "
          f"median {np.median(rates) if rates else 0:.2f} max {max(rates) if rates else 0:.2f}")
    print("\n".join(bad) if bad else "no problems found")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
