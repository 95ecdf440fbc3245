#!/usr/bin/env python3
"""Validate corpus/calls: JSON loads, quotes are exact substrings of the labelled agent turns,
kb_ids exist, category paths valid, markers consistent; print label distribution and KB coverage.
Usage: python3 scripts/validate.py [--ids c001-c080]"""
import json, os, sys, glob, collections
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def main():
    rng = None
    if "--ids" in sys.argv:
        a, b = sys.argv[sys.argv.index("--ids") + 1].split("-")
        rng = (a, b)
    tax = set(json.load(open(os.path.join(ROOT, "taxonomy.json"), encoding="utf-8"))["paths"])
    kb = {}
    for l in open(os.path.join(ROOT, "kb.jsonl"), encoding="utf-8"):
        d = json.loads(l); kb[d["id"]] = d
        assert d["category"] in tax, d["id"]
    errs = []
    stats = collections.defaultdict(collections.Counter)
    kbuse = collections.Counter()
    files = sorted(glob.glob(os.path.join(ROOT, "dialogues", "*.json")))
    n = 0
    for f in files:
        cid = os.path.basename(f)[:-5]
        if rng and not (rng[0] <= cid <= rng[1]):
            continue
        try:
            d = json.load(open(f, encoding="utf-8"))
        except Exception as e:
            errs.append(f"{cid}: bad json {e}"); continue
        n += 1
        T = d["turns"]
        for i, t in enumerate(T):
            if t["turn"] != i: errs.append(f"{cid}: turn index {i}")
        if d["n_turns"] != len(T): errs.append(f"{cid}: n_turns")
        for k in d["kb_ids"]:
            if k not in kb: errs.append(f"{cid}: unknown kb {k}")
            kbuse[k] += 1
        if d["category"] not in tax: errs.append(f"{cid}: bad category {d['category']}")
        for e in d["answer_errors"]:
            t = T[e["turn"]]
            if t["speaker"] != "agent" or e["quote"] not in t["text"]:
                errs.append(f"{cid}: error quote not in agent turn {e['turn']}: {e['quote']}")
            if e["kb_id"] not in d["kb_ids"] and e["kb_id"] not in kb:
                errs.append(f"{cid}: error kb {e['kb_id']}")
            stats["error_type"][e["error_type"]] += 1
        if d["answer_accurate"] != (not d["answer_errors"]): errs.append(f"{cid}: answer_accurate")
        c = d["compliance"]; ev = d["compliance_evidence"]
        for q, tt in zip(c["forbidden_phrases"], ev["forbidden_turns"]):
            if T[tt]["speaker"] != "agent" or q not in T[tt]["text"]:
                errs.append(f"{cid}: forbidden {q} not in turn {tt}")
        for q in ev["rude_quotes"]:
            if not any(q in t["text"] for t in T if t["speaker"] == "agent"):
                errs.append(f"{cid}: rude quote {q}")
        if d["police_110"]:
            if d["police_110_handling"] not in ("transferred", "refused", "self_referred"): errs.append(f"{cid}: handling")
            if d["transferred_110"] != (d["police_110_handling"] == "transferred"): errs.append(f"{cid}: transferred")
        elif d["transferred_110"] is not None or d["police_110_handling"] is not None:
            errs.append(f"{cid}: 110 fields on non-police call")
        stats["request_type"][d["request_type"]] += 1
        stats["sentiment"][d["sentiment"]] += 1
        stats["satisfaction"][d["satisfaction"]] += 1
        stats["greeting"][c["greeting"]] += 1
        stats["closing"][c["closing"]] += 1
        stats["read_back"][c["read_back"]] += 1
        stats["forbidden"][bool(c["forbidden_phrases"])] += 1
        stats["long_silence"][c["long_silence_s"] is not None] += 1
        stats["notified_hold"][d.get("notified_hold_s") is not None] += 1
        stats["interruption"][c["interruption"]] += 1
        stats["rude"][c["rude"]] += 1
        stats["violation"][c["violation"]] += 1
        stats["answer_accurate"][d["answer_accurate"]] += 1
        stats["police_110"][d["police_110"]] += 1
        stats["police_110_handling"][d["police_110_handling"]] += 1
        stats["ticket"][d["ticket"] is not None] += 1
        stats["gender"][d["caller"]["gender"]] += 1
        stats["age_group"][d["caller"]["age_group"]] += 1
        stats["dialect"][bool(d["caller"]["dialect_words"])] += 1
        stats["agent"][d["agent"]["label"]] += 1
        stats["L1"][d["category"].split("/")[0]] += 1
    print(n, "dialogues")
    for k, v in stats.items():
        print(f"{k}: {dict(sorted(v.items(), key=lambda x: str(x[0])))}")
    new = [k for k in kb if k >= "kb061"]
    print("new KB entries never used:", [k for k in new if kbuse[k] == 0])
    print("KB entries used:", len(kbuse), "; used <2 times:", sum(1 for k in kb if kbuse[k] < 2))
    if errs:
        print("ERRORS:"); print("\n".join(errs)); sys.exit(1)
    print("OK")

if __name__ == "__main__":
    main()
