#!/usr/bin/env python3
"""Write corpus/calls/kb.jsonl: shared kb001-kb060 (copied unchanged) + kb061-kb150 from kb_new.py."""
import json, os, sys, collections
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from kb_new import KB_NEW

SHARED = os.environ.get("SHARED_KB", "/work/shared/data/synthetic_calls/kb.jsonl")

def main():
    tax = json.load(open(os.path.join(ROOT, "taxonomy.json"), encoding="utf-8"))
    paths = set(tax["paths"])
    old = [l.rstrip("\n") for l in open(SHARED, encoding="utf-8") if l.strip()]
    out = list(old)
    ids = {json.loads(l)["id"] for l in old}
    for kid, cat, dept, q, a, kw in KB_NEW:
        assert cat in paths, (kid, cat)
        assert kid not in ids, kid
        ids.add(kid)
        out.append(json.dumps({"id": kid, "question": q, "answer": a, "department": dept,
                               "category": cat, "keywords": kw}, ensure_ascii=False))
    with open(os.path.join(ROOT, "kb.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    c = collections.Counter(json.loads(l)["category"].split("/")[0] for l in out)
    print(len(out), "entries"); print(dict(c))
    assert all(v >= 8 for v in c.values()) and len(c) == 12

if __name__ == "__main__":
    main()
