"""K-fold splits for fitting on folds (the benchmarks' ``--folds K``, the retrieval ranker's stage choice): deterministic, seeded, and grouped.

Items that share a group (paraphrases of one KB entry, calls about one KB entry, or anything linked to
them) always land in the same fold, so nothing fitted on the training folds has seen a near-copy of a
held-out item.  Groups are merged transitively: two calls that share any KB entry are one group.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence


def assign_folds(groups: Sequence[Iterable[str]], k: int, seed: int = 12345,
                 strata: Sequence[str] | None = None) -> list[int]:
    """Fold index (0..k-1) of each item; ``groups[i]``: the group keys of item i (an empty one is its own group).

    Groups are shuffled with ``seed`` and then placed largest first into the fold holding the fewest items
    of the group's stratum (``strata[i]``, e.g. "emergency call", so rare cases reach every fold) and then
    the fewest items; folds come out near equal in size and the same inputs give the same folds.
    """
    if k < 2:
        raise ValueError("--folds needs K >= 2")
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    roots = []
    for i, keys in enumerate(groups):
        keys = [str(key) for key in keys] or [f"\0item{i}"]
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
        roots.append(keys[0])
    members: dict[str, list[int]] = {}
    for i, key in enumerate(roots):
        members.setdefault(find(key), []).append(i)
    if len(members) < k:
        raise ValueError(f"{len(members)} groups cannot fill {k} folds")
    order = sorted(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: ties keep the shuffled order
    sizes = [0] * k
    per_stratum: dict[str, list[int]] = {}
    fold_of = [0] * len(groups)
    for g in order:
        stratum = "+".join(sorted({strata[i] for i in members[g]})) if strata is not None else ""
        counts = per_stratum.setdefault(stratum, [0] * k)
        f = min(range(k), key=lambda j: (counts[j], sizes[j], j))
        sizes[f] += len(members[g])
        counts[f] += len(members[g])
        for i in members[g]:
            fold_of[i] = f
    return fold_of


def splits(fold_of: Sequence[int]) -> Iterator[tuple[list[int], list[int]]]:
    """(train indices, test indices) per fold."""
    for f in sorted(set(fold_of)):
        yield [i for i, x in enumerate(fold_of) if x != f], [i for i, x in enumerate(fold_of) if x == f]


def describe(fold_of: Sequence[int], seed: int, grouped_by: str) -> dict:
    """The split as the JSON reports it."""
    return {"k": len(set(fold_of)), "seed": seed, "grouped_by": grouped_by,
            "fold_sizes": [sum(x == f for x in fold_of) for f in sorted(set(fold_of))]}
