"""Build corpus/retrieval/govqa_paraphrases.jsonl from the hand-written src/*.tsv files and validate it.

Each src line: <gov_qa id> TAB <style> TAB <query>. The department is copied from gov_qa.jsonl;
same_question_ids lists every gov_qa id whose question text is identical after removing
whitespace and punctuation (exact duplicates and ?/？ variants).
"""
import collections, glob, json, os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # corpus/
GOVQA = "/work/shared/data/msgabench_gov_affairs/gov_qa.jsonl"
STYLES = {"colloquial", "elderly", "dialect", "indirect", "typo"}


def norm(s):
    return re.sub(r"[\s\W_]+", "", s)


def main():
    rows = {}
    for line in open(GOVQA, encoding="utf-8"):
        r = json.loads(line)
        rows[r["id"]] = r
    by_q = collections.defaultdict(list)
    for r in rows.values():
        by_q[norm(r["question"])].append(r["id"])
    out, errors, seen = [], [], set()
    for path in sorted(glob.glob(os.path.join(ROOT, "retrieval", "src", "*.tsv"))):
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                errors.append(f"{path}:{n}: expected 3 tab-separated fields")
                continue
            qid, style, query = (p.strip() for p in parts)
            if qid not in rows:
                errors.append(f"{path}:{n}: unknown id {qid}")
                continue
            if style not in STYLES:
                errors.append(f"{path}:{n}: bad style {style}")
            src = rows[qid]["question"]
            if norm(query) == norm(src) or norm(src) in norm(query):
                errors.append(f"{path}:{n}: copies the source question")
            if query in seen:
                errors.append(f"{path}:{n}: duplicate query")
            seen.add(query)
            obj = {"query": query, "id": qid, "department": rows[qid]["department"], "style": style}
            same = sorted(by_q[norm(src)])
            if len(same) > 1:
                obj["same_question_ids"] = same
            out.append(obj)
    depts = collections.Counter(o["department"] for o in out)
    styles = collections.Counter(o["style"] for o in out)
    ids = collections.Counter(o["id"] for o in out)
    print(f"{len(out)} queries, {len(ids)} distinct ids, {len(depts)} departments "
          f"({len([d for d in depts if d])} non-empty); styles {dict(styles)}")
    for d, c in depts.most_common():
        print(f"  {d or '(empty)'}\t{c}")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    with open(os.path.join(ROOT, "retrieval", "govqa_paraphrases.jsonl"), "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
