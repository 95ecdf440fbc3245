#!/usr/bin/env python3
"""Expand the call scripts (calls_a*.py) into dialogues/<id>.json and validate them."""
import json, os, sys, glob, importlib
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import calllib

def main():
    for f in sorted(glob.glob(os.path.join(HERE, "calls_a*.py"))):
        importlib.import_module(os.path.basename(f)[:-3])
    os.makedirs(os.path.join(ROOT, "dialogues"), exist_ok=True)
    n = 0
    for c in calllib.CALLS:
        d = calllib.expand(c)
        p = os.path.join(ROOT, "dialogues", d["id"] + ".json")
        # keep audio results of an earlier render
        if os.path.exists(p):
            old = json.load(open(p, encoding="utf-8"))
            same = ([(t["speaker"], t.get("tts_text") or t["text"]) for t in old["turns"]] ==
                    [(t["speaker"], t.get("tts_text") or t["text"]) for t in d["turns"]] and
                    [{k: v for k, v in t.items() if k.startswith(("preceded", "overlaps"))} for t in old["turns"]] ==
                    [{k: v for k, v in t.items() if k.startswith(("preceded", "overlaps"))} for t in d["turns"]])
            if old.get("audio", {}).get("rendered"):
                if same:
                    d["audio"] = old["audio"]
                else:  # text changed after rendering: drop the stale audio so it is rendered again
                    for q in (d["audio"]["file"], d["audio"]["ref"], d["audio"]["rttm"], f"audio/{d['id']}.json"):
                        if os.path.exists(os.path.join(ROOT, q)):
                            os.remove(os.path.join(ROOT, q))
                    print(d["id"], "text changed: stale audio removed")
        with open(p, "w", encoding="utf-8") as fh:
            json.dump(d, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
        n += 1
    print("wrote", n, "dialogues")

if __name__ == "__main__":
    main()
