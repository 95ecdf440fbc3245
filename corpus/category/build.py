"""Build corpus/category/utterances.jsonl from the hand-written src/*.tsv files and validate it.

Each src line: <L1/L2/L3 category path> TAB <request_type> TAB <utterance> [TAB <confusable path>].
The optional 4th column marks a hard case: the nearest other category a classifier may confuse it with;
it is emitted as "confusable_with".
Checks: the path is in taxonomy.json `paths`, the request_type is one of the five, no duplicate text,
and every level-2 node has at least MIN_PER_L2 utterances.
"""
import collections, glob, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
TAXONOMY = "/work/shared/data/synthetic_calls/taxonomy.json"
TYPES = {"咨询", "求助", "投诉", "举报", "建议"}
MIN_PER_L2 = 8


def main():
    tax = json.load(open(TAXONOMY, encoding="utf-8"))
    paths = set(tax["paths"])
    l2_all = {p.rsplit("/", 1)[0] for p in paths}
    out, errors, seen = [], [], set()
    for path in sorted(glob.glob(os.path.join(HERE, "src", "*.tsv"))):
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("\t")]
            if len(parts) not in (3, 4):
                errors.append(f"{path}:{n}: expected 3 or 4 tab-separated fields")
                continue
            cat, rtype, text = parts[:3]
            confusable = parts[3] if len(parts) == 4 else None
            if confusable is not None and (confusable not in paths or confusable == cat):
                errors.append(f"{path}:{n}: bad confusable_with {confusable}")
            if cat not in paths:
                errors.append(f"{path}:{n}: unknown category {cat}")
            if rtype not in TYPES:
                errors.append(f"{path}:{n}: bad request_type {rtype}")
            if text in seen:
                errors.append(f"{path}:{n}: duplicate text")
            seen.add(text)
            obj = {"text": text, "category": cat, "request_type": rtype}
            if confusable:
                obj["confusable_with"] = confusable
            out.append(obj)
    l2 = collections.Counter(o["category"].rsplit("/", 1)[0] for o in out)
    l3 = collections.Counter(o["category"] for o in out)
    for node in sorted(l2_all):
        if l2[node] < MIN_PER_L2:
            errors.append(f"level-2 {node}: only {l2[node]} utterances")
    missing_l3 = sorted(paths - set(l3))
    print(f"{len(out)} utterances, {len(l2)}/{len(l2_all)} level-2 nodes, {len(l3)}/{len(paths)} level-3 paths; "
          f"request_type {dict(collections.Counter(o['request_type'] for o in out))}")
    if missing_l3:
        print("level-3 paths without utterances:", missing_l3)
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    with open(os.path.join(HERE, "utterances.jsonl"), "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
