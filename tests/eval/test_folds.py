"""The benchmarks' fold splitter: grouped, balanced, deterministic."""
from __future__ import annotations

import random

import pytest

from domain.folds import assign_folds, describe, splits


def _items(n: int = 200, seed: int = 1) -> list[list[str]]:
    """Paraphrase-like items: several per KB entry, some naming a second, duplicate entry too."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        entry = f"kb{rng.randrange(60)}"
        out.append([entry] + ([f"kb{rng.randrange(60, 70)}"] if rng.random() < 0.1 else []))
    return out


def test_no_group_straddles_train_and_test():
    items = _items()
    fold_of = assign_folds(items, 5, seed=3)
    for train, test in splits(fold_of):
        train_keys = {k for i in train for k in items[i]}
        assert not train_keys & {k for i in test for k in items[i]}
        assert sorted(train + test) == list(range(len(items)))


def test_links_merge_groups_transitively():
    # a-b and b-c: a, b and c are one group even though no item names both a and c
    fold_of = assign_folds([["a", "b"], ["b", "c"], ["c"], ["a"], ["d"], ["e"], ["f"]], 3, seed=0)
    assert len({fold_of[0], fold_of[1], fold_of[2], fold_of[3]}) == 1


def test_deterministic_for_a_seed_and_different_across_seeds():
    items = _items()
    assert assign_folds(items, 5, seed=7) == assign_folds(items, 5, seed=7)
    assert assign_folds(items, 5, seed=7) != assign_folds(items, 5, seed=8)


def test_folds_are_near_equal_and_items_without_keys_stand_alone():
    fold_of = assign_folds([[] for _ in range(103)], 5)
    sizes = describe(fold_of, 12345, "nothing")["fold_sizes"]
    assert sum(sizes) == 103 and max(sizes) - min(sizes) <= 1


def test_rare_stratum_reaches_every_fold():
    items = _items(150)
    strata = ["emergency" if i % 15 == 0 else "other" for i in range(150)]
    for i, s in enumerate(strata):
        if s == "emergency":
            items[i] = []  # an emergency call is its own group
    fold_of = assign_folds(items, 5, seed=2, strata=strata)
    per_fold = [sum(1 for i, s in enumerate(strata) if s == "emergency" and fold_of[i] == f) for f in range(5)]
    assert per_fold == [2, 2, 2, 2, 2]


def test_too_few_groups_is_an_error():
    with pytest.raises(ValueError):
        assign_folds([["a"], ["a"], ["b"]], 3)
    with pytest.raises(ValueError):
        assign_folds([["a"], ["b"]], 1)
