"""Spearman rank correlation of row pairs, in numpy (average ranks for ties, as scipy.stats.rankdata): importing
scipy.stats costs about 0.7 s, which the explorer's first mask draw paid after every server start."""
from __future__ import annotations

import numpy as np


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, tied values sharing their mean rank (scipy's method='average')."""
    x = np.asarray(x)
    n = x.shape[-1]
    flat = x.reshape(-1, n)
    order = np.argsort(flat, axis=-1, kind="stable")
    xs = np.take_along_axis(flat, order, -1)
    new = np.ones(xs.shape, dtype=bool)
    new[:, 1:] = xs[:, 1:] != xs[:, :-1]
    group = np.cumsum(new, -1) - 1 + n * np.arange(flat.shape[0])[:, None]  # a tie group's id, unique per row
    pos = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), xs.shape)
    sums = np.bincount(group.ravel(), weights=pos.ravel(), minlength=flat.size)
    counts = np.bincount(group.ravel(), minlength=flat.size)
    ranks = np.empty(flat.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (sums[group] / counts[group]), -1)
    return ranks.reshape(x.shape)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row pair of a, b [..., N] (nan for a constant row or N < 2)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[-1] < 2:
        return np.full(a.shape[:-1], np.nan)
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean(-1, keepdims=True)
    rb -= rb.mean(-1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(-1) * (rb ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(-1) / den
    return np.where(den == 0, np.nan, rho)
