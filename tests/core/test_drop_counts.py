"""The count rule of the fixed-share masks (addrop/core/masking.py, count="equal" vs "reference"): with "equal"
drop-high, drop-low and drop-random take the same number of keys from every row, on random inputs; checked
against ranks from argsort and exact rational arithmetic. (A separate file from test_masking.py, which covers
Eq. 6-7 themselves.)"""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from addrop.core.masking import candidate_region, drop_count, make_drops

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTHS = list(range(1, 40))


def _mask(lengths, T=None) -> torch.Tensor:
    T = T or max(lengths)
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # [B, T]


def _random_scores(shape, seed) -> torch.Tensor:
    """Float draws, ties allowed in principle (the count rule must hold whatever the scores)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _want(lengths, p) -> torch.Tensor:
    """n - int(n(1-p)) with the decimal p the user typed."""
    return torch.tensor([n - math.floor(n * (1 - Fraction(str(p)))) for n in lengths])


@pytest.mark.parametrize("p", [0.1, 0.25, 0.3, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("seed", [0, 1])
def test_equal_rule_takes_the_same_count_from_every_row_for_each_mode(p, seed):
    km = _mask(LENGTHS)
    T = km.shape[1]
    s = _random_scores((2, len(LENGTHS), 3, T, T), seed)
    real_rows = km[None, :, None, :]  # [1, B, 1, T]
    want = _want(LENGTHS, p).view(1, -1, 1, 1).expand(2, -1, 3, T)
    counts = {}
    for mode in ("high", "low", "random"):
        region = candidate_region(s, km, p, mode=mode, count="equal", generator=torch.Generator().manual_seed(seed))
        per_row = region.sum(-1)  # [L, B, H, T]
        assert torch.equal(per_row[real_rows.expand_as(per_row)], want[real_rows.expand_as(want)]), mode
        assert not region[~(km[None, :, None, :, None] & km[None, :, None, None, :]).expand_as(region)].any()
        counts[mode] = per_row
    assert torch.equal(counts["high"], counts["low"]) and torch.equal(counts["low"], counts["random"])


def test_equal_rule_picks_the_highest_lowest_and_random_keys():
    km = _mask([13, 7])
    s = _random_scores((1, 2, 2, 13, 13), 3)
    filled = s.masked_fill(~km[None, :, None, None, :], float("inf"))
    ranks = filled.argsort(-1).argsort(-1)  # ascending rank among the real keys
    n = km.sum(-1).view(1, -1, 1, 1, 1)
    k = drop_count(km.sum(-1), 0.3).view(1, -1, 1, 1, 1)
    real = km[None, :, None, :, None] & km[None, :, None, None, :]
    high = candidate_region(s, km, 0.3, "high", count="equal")
    low = candidate_region(s, km, 0.3, "low", count="equal")
    assert torch.equal(high, (ranks >= n - k) & real)
    assert torch.equal(low, (ranks < k) & real)
    a = candidate_region(s, km, 0.3, "random", count="equal", generator=torch.Generator().manual_seed(0))
    b = candidate_region(s, km, 0.3, "random", count="equal", generator=torch.Generator().manual_seed(0))
    c = candidate_region(s, km, 0.3, "random", count="equal", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)  # seeded, and not the scores' order
    assert not torch.equal(a, high) and not torch.equal(a, low)


def test_reference_rule_keeps_the_asymmetric_counts_of_the_issue():
    """The reference rule on a 13-key row at p = 0.3: high takes 13 - int(9.1) = 4 keys, low int(3.9) = 3."""
    km = _mask([13])
    s = _random_scores((1, 1, 1, 13, 13), 0)
    high = candidate_region(s, km, 0.3, "high", count="reference").sum(-1)
    low = candidate_region(s, km, 0.3, "low", count="reference").sum(-1)
    assert (high == 4).all() and (low == 3).all()
    assert (candidate_region(s, km, 0.3, "low", count="equal").sum(-1) == 4).all()
    assert int(drop_count(torch.tensor([13]), 0.3)) == 4


@pytest.mark.parametrize("mode", ["high", "low", "random"])
def test_fixed_rate_drops_are_equal_counts_and_keep_one_key(mode):
    km = _mask([1, 2, 5, 13, 30], T=32)
    s = _random_scores((1, 5, 2, 32, 32), 7)
    _, dropped = make_drops(s, km, 0.3, 0.5, mode, fixed_rate=True, count="equal",
                            generator=torch.Generator().manual_seed(0))
    per_row = dropped.sum(-1)[0, :, 0, 0]  # first head, first query row of each example
    want = [min(int(k), n - 1) for k, n in zip(drop_count(km.sum(-1), 0.3), [1, 2, 5, 13, 30])]
    assert per_row.tolist() == want  # a one-key row keeps its key


def test_strict_ties_make_constant_rows_non_candidates_under_the_equal_rule():
    km = _mask([6])
    s = torch.zeros(1, 1, 1, 6, 6)
    s[..., 0, :] = torch.arange(6.0)  # only row 0 varies
    region = candidate_region(s, km, 0.5, "high", ties="strict", count="equal")
    assert region[0, 0, 0, 0].sum() == 3 and not region[0, 0, 0, 1:].any()
