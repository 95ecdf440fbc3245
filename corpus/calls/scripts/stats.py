#!/usr/bin/env python3
"""Print the label distribution as markdown (whole corpus, c001-c080, c081-c200)."""
import os, json, glob, collections
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dist(ds):
    c = collections.defaultdict(collections.Counter)
    for d in ds:
        comp = d["compliance"]
        c["request_type"][d["request_type"]] += 1
        c["sentiment"][d["sentiment"]] += 1
        c["satisfaction"][d["satisfaction"]] += 1
        c["calls with answer errors"][not d["answer_accurate"]] += 1
        for e in d["answer_errors"]:
            c["answer error types (instances)"][e["error_type"]] += 1
        c["greeting"][comp["greeting"]] += 1
        c["closing"][comp["closing"]] += 1
        c["read_back"][comp["read_back"]] += 1
        c["forbidden phrase"][bool(comp["forbidden_phrases"])] += 1
        c["long silence (no hold notice)"][comp["long_silence_s"] is not None] += 1
        c["notified hold (hard negative)"][d.get("notified_hold_s") is not None] += 1
        c["interruption"][comp["interruption"]] += 1
        c["rude"][comp["rude"]] += 1
        c["any compliance violation"][comp["violation"]] += 1
        c["police_110"][d["police_110"]] += 1
        c["police_110_handling"][str(d.get("police_110_handling"))] += 1
        c["ticket"][d["ticket"] is not None] += 1
        c["caller gender"][d["caller"]["gender"]] += 1
        c["caller age_group"][d["caller"].get("age_group")] += 1
        c["caller uses dialect words"][bool(d["caller"].get("dialect_words"))] += 1
        c["level-1 category"][d["category"].split("/")[0]] += 1
        c["kb_ids per call"][len(d["kb_ids"])] += 1
    c["distinct agents"][len({d["agent"]["label"] for d in ds})] += 1
    return c


def main():
    ds = [json.load(open(f, encoding="utf-8")) for f in sorted(glob.glob(os.path.join(ROOT, "dialogues", "*.json")))]
    groups = [("all", ds), ("c001-c080", [d for d in ds if d["id"] <= "c080"]), ("c081-c200", [d for d in ds if d["id"] > "c080"])]
    dd = [(g, dist(x), len(x)) for g, x in groups]
    keys = list(dd[0][1].keys())
    print("| label | " + " | ".join(f"{g} ({n})" for g, _, n in dd) + " |")
    print("|---|" + "---|" * len(dd))
    for k in keys:
        vals = []
        for _, c, _ in dd:
            vals.append(", ".join(f"{a} {b}" for a, b in sorted(c[k].items(), key=lambda x: (-x[1], str(x[0])))))
        print(f"| {k} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main()
