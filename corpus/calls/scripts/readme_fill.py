#!/usr/bin/env python3
"""Refresh the label table and render status sections of README.md."""
import os, re, glob, json, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__)); ROOT = os.path.dirname(HERE)
labels = subprocess.run([sys.executable, os.path.join(HERE, "stats.py")], capture_output=True, text=True, check=True).stdout
ids = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(ROOT, "dialogues", "*.json")))
done = [i for i in ids if os.path.exists(os.path.join(ROOT, "audio", i + ".json")) and os.path.exists(os.path.join(ROOT, "audio", i + ".opus"))]
dur = sum(json.load(open(os.path.join(ROOT, "audio", i + ".json")))["duration_s"] for i in done)
size = sum(os.path.getsize(os.path.join(ROOT, "audio", i + ".opus")) for i in done)
def rng(xs):
    out, start, prev = [], None, None
    for x in xs:
        n = int(x[1:])
        if start is None: start = prev = n
        elif n == prev + 1: prev = n
        else: out.append((start, prev)); start = prev = n
    if start is not None: out.append((start, prev))
    return ", ".join(f"c{a:03d}" if a == b else f"c{a:03d}–c{b:03d}" for a, b in out) or "none"
codecs = {}
for i in done:
    m = json.load(open(os.path.join(ROOT, "audio", i + ".json")))
    codecs[m["codec"]] = codecs.get(m["codec"], 0) + 1
status = (f"**Render status:** {len(done)} of {len(ids)} calls rendered ({rng(done)}), {dur / 60:.1f} min, "
          f"{size / 1e6:.1f} MB of Opus; codecs {codecs}. " +
          (f"Not rendered yet: {rng([i for i in ids if i not in done])} (estimated refs only; run the renderer to add them)."
           if len(done) < len(ids) else "All refs are exact (no estimated refs left)."))
s = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
s = re.sub(r"<!-- LABELS -->.*?<!-- /LABELS -->", "<!-- LABELS -->\n" + labels.strip() + "\n<!-- /LABELS -->", s, flags=re.S)
s = re.sub(r"<!-- RENDER -->.*?<!-- /RENDER -->", "<!-- RENDER -->\n" + status + "\n<!-- /RENDER -->", s, flags=re.S)
open(os.path.join(ROOT, "README.md"), "w", encoding="utf-8").write(s)
print(status)
