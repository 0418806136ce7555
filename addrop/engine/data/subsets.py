"""Seeded subsets of a split: n random examples, or k per class (few-shot)."""
from __future__ import annotations

import random
from typing import Sequence

from ...errors import UserError
from ..tasks import Split


def subset(split: Split, n: int | None, seed: int = 0) -> Split:
    """n random examples (seeded, kept in file order); the whole split, unchanged, when n is None or >= len."""
    if n is None or n >= len(split):
        return split
    if n < 1:
        raise UserError(f"subset size must be >= 1, got {n}")
    idx = sorted(random.Random(seed).sample(range(len(split)), n))
    return split.select(idx)


def k_shot(split: Split, k: int, seed: int = 0, label_names: Sequence[str] | None = None) -> Split:
    """k examples of every class (seeded, kept in file order). With `label_names`, every class must appear."""
    if k < 1:
        raise UserError(f"shots must be >= 1, got {k}")
    if split.is_regression:
        raise UserError("few-shot sampling (k per class) needs a classification task, not a regression task")
    groups: dict[int, list[int]] = {}
    for i, v in enumerate(split.labels):
        groups.setdefault(int(v), []).append(i)
    classes = range(len(label_names)) if label_names else sorted(groups)
    rng = random.Random(seed)
    chosen: list[int] = []
    for c in classes:
        idx = groups.get(c, [])
        if len(idx) < k:
            name = label_names[c] if label_names else c
            raise UserError(f"class {name!r} has only {len(idx)} training examples; choose shots <= {len(idx)}")
        chosen += rng.sample(idx, k)
    return split.select(sorted(chosen))


def hold_out(split: Split, n: int, seed: int = 0) -> tuple[Split, Split]:
    """(the rest, n held-out examples): a seeded slice of a training split to validate on instead of dev (both
    kept in file order, disjoint)."""
    if not 1 <= n < len(split):
        raise UserError(f"cannot hold out {n} of {len(split)} training examples: choose 1 to {len(split) - 1}")
    held = set(random.Random(seed).sample(range(len(split)), n))
    return (split.select([i for i in range(len(split)) if i not in held]), split.select(sorted(held)))
