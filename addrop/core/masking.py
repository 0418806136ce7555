"""AD-DROP masks, paper Eq. 6-7, as boolean tensors shaped [L, B, H, T, T] (layers, batch, heads, query, key).

`candidate_region` marks the candidate discard region S (True = candidate); `sample_drops` draws the dropped
positions inside it with probability q. The additive dtype-min form exists only inside attention.py.

Which (query row, key) pairs are real is a `RealPairs`: from a padded batch's key mask [B, T] (`real_pairs`), or
from the segments of a packed batch (`segment_pairs`: rows [R, W] of several examples each, as packing.RowPacking
places them), so a packed training step draws its masks where its scores already are, [L, R, H, W, W], without
moving them to the padded shape and back. Every function below that takes `key_mask` takes either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import COUNTS, MODES, TIES
from ..errors import UserError
from .grouping import length_groups

MASK_GROUP = 4  # examples per length group when the masks of a padded CPU batch are made (0: one padded call)


@dataclass(frozen=True)
class RealPairs:
    """The real (query row, key) pairs of a mask, each tensor broadcastable to [L, B, H, T, T]."""

    keys: torch.Tensor  # bool: a real key of the row's own example ([1, B, 1, 1, T] padded, [1, R, 1, W, W] packed)
    rows: torch.Tensor  # bool: a real query row ([1, B, 1, T, 1])
    n: torch.Tensor  # long: real keys of the row's example ([1, B, 1, 1, 1] padded, [1, R, 1, W, 1] packed; 0 on pads)
    total: int  # real pairs per layer and head: the sum over examples of n * n

    @property
    def device(self) -> torch.device:
        return self.keys.device


def real_pairs(key_mask: torch.Tensor | RealPairs) -> RealPairs:
    """The real pairs of a padded batch: key_mask [B, T] (True = real token); a RealPairs is returned as it is."""
    if isinstance(key_mask, RealPairs):
        return key_mask
    km = key_mask.bool()
    n = km.sum(-1)  # [B]
    return RealPairs(km[None, :, None, None, :], km[None, :, None, :, None], n.view(1, -1, 1, 1, 1),
                     int((n * n).sum()))


def segment_pairs(segments: torch.Tensor, lengths: torch.Tensor) -> RealPairs:
    """The real pairs of a packed batch: segments [R, W] (the example each slot holds, negative on pads), lengths
    [B] (real tokens of each example). A row's keys are the real slots of its own example: the block diagonal."""
    real = segments >= 0  # [R, W]
    keys = (segments[:, :, None] == segments[:, None, :]) & real[:, None, :]  # [R, W, W]
    n = torch.where(real, lengths[segments.clamp(min=0)], 0)  # [R, W] real keys of each slot's example
    return RealPairs(keys[None, :, None], real[None, :, None, :, None], n[None, :, None, :, None],
                     int((lengths * lengths).sum()))


def _uniform(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform draws from the generator's device (so a seed gives the same mask), moved to `device`."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _coin(shape, prob: float, generator: torch.Generator | None, device) -> torch.Tensor:
    """Independent coins, True with probability `prob` (bool, `shape`), drawn on the generator's device: one int32
    draw of 31 uniform bits each, True below ceil(prob * 2^31), so P = ceil(prob * 2^31) / 2^31 (a float32 uniform
    gives ceil(prob * 2^24) / 2^24). On a CPU an int32 draw costs a third less than a float one, and the coins are
    most of what RD's masks cost."""
    if prob >= 1.0 or prob <= 0.0:
        return torch.full(shape, prob >= 1.0, dtype=torch.bool, device=device)
    gen_device = generator.device if generator is not None else device
    bits = torch.empty(shape, dtype=torch.int32, device=gen_device).random_(generator=generator)  # [0, 2^31)
    return (bits < math.ceil(prob * 2 ** 31)).to(device)


def _coins_in(where: torch.Tensor, prob: float, generator: torch.Generator | None) -> torch.Tensor:
    """Independent coins (`_coin`) at the True positions of the bool tensor `where`, False elsewhere. From a CPU
    generator only those positions are drawn, one coin each in row-major order, wherever `where` lives (a mask's
    candidates are a tenth to a fifth of its positions, and the draws were most of what a mask cost), so a seed
    gives the same coins on any device; from a GPU generator every position is drawn (no host sync for the
    count)."""
    gen_device = generator.device if generator is not None else where.device
    if prob >= 1.0 or prob <= 0.0 or gen_device.type != "cpu":
        return where & _coin(where.shape, prob, generator, where.device)
    idx = where.reshape(-1).nonzero().squeeze(1)  # [K] flat positions to draw at
    out = torch.zeros(where.numel(), dtype=torch.bool, device=where.device)
    out[idx[_coin((len(idx),), prob, generator, where.device)]] = True
    return out.view(where.shape)


def _value_at_rank(s: torch.Tensor, keys: torch.Tensor, asc: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Per row, the value at ascending index `asc` among the row's n real keys (what sorting the row would give),
    with one partial top-k from whichever end is nearer instead of a full sort. asc, n: broadcastable to
    [L, B, H, T, 1]; rows without keys (n = 0, pads of a packed batch) get some value, never read."""
    desc = (n - 1 - asc).clamp(min=0)  # the same position counted from the top
    if int(desc.max()) <= int(asc.max()):
        vals = s.masked_fill(~keys, float("-inf")).topk(int(desc.max()) + 1, dim=-1, largest=True).values
        pos = desc
    else:
        vals = s.masked_fill(~keys, float("inf")).topk(int(asc.max()) + 1, dim=-1, largest=False).values
        pos = asc
    return vals.gather(-1, pos.expand(*s.shape[:-1], 1))


def candidate_region(scores: torch.Tensor, key_mask: torch.Tensor | RealPairs, p: float, mode: str = "high",
                     ties: str = "paper", generator: torch.Generator | None = None,
                     count: str = "reference") -> torch.Tensor:
    """Candidate discard region per query row, among the n real keys of that row.

    high (Eq. 6): threshold = the ascending-sorted row's value at index int(n(1-p)); keys at or above it.
    low: the keys strictly below the value at index int(pn) (the int(pn) lowest on tie-free rows).
    random: each real key with probability p.
    ties="strict" makes rows whose real keys all have the same score non-candidates (with GA, rows that cannot
    reach the output are constant; the paper's rule would make the whole row a candidate).
    Pads are never candidates, as keys or as query rows.
    count="equal" (the prior experiment's default): every mode takes exactly n - int(n(1-p)) keys per row, what
    high takes from a tie-free row (see `equal_count_region`); "reference" is the rule above.
    """
    # scores: [L, B, H, T, T]; key_mask: [B, T] or the RealPairs of the same shape
    if count == "equal":
        return equal_count_region(scores, key_mask, p, mode, ties, generator)
    rp = real_pairs(key_mask)
    valid = rp.keys & rp.rows  # [1, B, 1, T, T]
    if mode == "random":
        return _coins_in(valid.expand(scores.shape), p, generator)
    s = scores.float()
    n = rp.n.to(scores.device)  # real keys of each row
    # int(n(1-p)) as the decimal numbers say: float products such as 90 * 0.7 = 62.999... would floor one short
    if mode == "high":
        asc = (n.double() * (1.0 - p) + 1e-9).floor().long()
    elif mode == "low":
        asc = (n.double() * p + 1e-9).floor().long()
    else:
        raise ValueError(f"unknown mode {mode!r}")
    asc = torch.minimum(asc, n - 1).clamp(min=0)  # ascending index of the threshold among the row's real keys
    thr = _value_at_rank(s, rp.keys, asc, n)  # [L, B, H, T, 1]
    region = (s >= thr) if mode == "high" else (s < thr)
    region &= valid
    if ties == "strict":
        region &= ~_constant_rows(s, rp.keys)
    return region


def _constant_rows(s: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """[L, B, H, T, 1]: rows whose real keys all have the same score."""
    lo = s.masked_fill(~keys, float("inf")).amin(-1, keepdim=True)
    hi = s.masked_fill(~keys, float("-inf")).amax(-1, keepdim=True)
    return hi == lo


def drop_count(n: torch.Tensor, p: float) -> torch.Tensor:
    """Keys per row under count="equal": n - int(n(1-p)), Eq. 6's count on a tie-free row (exact decimals)."""
    return n - (n.double() * (1.0 - p) + 1e-9).floor().long()


def equal_count_region(scores: torch.Tensor, key_mask: torch.Tensor | RealPairs, p: float, mode: str = "high",
                       ties: str = "paper", generator: torch.Generator | None = None) -> torch.Tensor:
    """Exactly k = drop_count(n, p) real keys of every real row: the k highest scores (high), the k lowest (low)
    or k drawn uniformly (random), so the three strategies drop the same number of keys (the reference rule
    takes 4 keys of a 13-key row for high and 3 for low at p = 0.3). Ties are broken by torch.topk. ties="strict"
    still makes constant rows non-candidates."""
    # scores: [L, B, H, T, T]; key_mask: [B, T] or the RealPairs of the same shape
    rp = real_pairs(key_mask)
    if mode == "random":
        s = _uniform(scores.shape, generator, scores.device)
    elif mode in ("high", "low"):
        s = scores.float() if mode == "high" else -scores.float()
    else:
        raise ValueError(f"unknown mode {mode!r}")
    k = drop_count(rp.n.to(scores.device), p)  # keys to take from each row
    region = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    kmax = int(k.max()) if k.numel() else 0
    if kmax > 0:
        idx = s.masked_fill(~rp.keys, float("-inf")).topk(kmax, dim=-1).indices  # [L, B, H, T, kmax]
        take = torch.arange(kmax, device=scores.device) < k  # [1, B, 1, T or 1, kmax]
        region.scatter_(-1, idx, take.expand_as(idx))
    region &= rp.keys & rp.rows
    if ties == "strict" and mode != "random":
        region &= ~_constant_rows(scores.float(), rp.keys)
    return region


def sample_drops(region: torch.Tensor, q: float, generator: torch.Generator | None = None,
                 fixed_rate: bool = False) -> torch.Tensor:
    """Eq. 7: each candidate dropped with probability q (fixed_rate: every candidate dropped)."""
    if fixed_rate:
        return region.clone()
    return _coins_in(region, q, generator)


def keep_one(dropped: torch.Tensor, scores: torch.Tensor | None, key_mask: torch.Tensor | RealPairs,
             mode: str = "high", generator: torch.Generator | None = None) -> torch.Tensor:
    """No row may lose every real key: where one would, give back its lowest-scored key (highest for low mode).
    scores None (a random region): a key drawn uniformly, from scores drawn only when some row lost them all."""
    rp = real_pairs(key_mask)
    lost = (dropped | ~rp.keys).all(-1, keepdim=True) & rp.rows  # [L, B, H, T, 1] real rows left without a key
    if not lost.any():
        return dropped
    s = scores.float() if scores is not None else _uniform(dropped.shape, generator, dropped.device)
    if mode == "low":
        pick = s.masked_fill(~rp.keys, float("-inf")).argmax(-1, keepdim=True)
    else:
        pick = s.masked_fill(~rp.keys, float("inf")).argmin(-1, keepdim=True)
    give_back = torch.zeros_like(dropped).scatter_(-1, pick, True) & lost
    return dropped & ~give_back


def _check_settings(p, q, mode, ties, count) -> None:
    """UserError for settings no mask can be made with: p a share in (0, 1] (not a percentage), q a probability in
    [0, 1], and a known mode, tie rule and count. The configs check p and q more strictly (both in (0, 1))."""
    for name, v, low_ok in (("p", p, False), ("q", q, True)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not (
                (0.0 <= v if low_ok else 0.0 < v) and v <= 1.0):
            raise UserError(f"{name} must be a share {'from 0' if low_ok else 'above 0'} up to 1 (0.3 for 30%), "
                            f"got {v!r}")
    for name, v, allowed in (("mode", mode, MODES), ("ties", ties, TIES), ("count", count, COUNTS)):
        if v not in allowed:
            raise UserError(f"unknown {name} {v!r}: choose one of {', '.join(allowed)}")


def make_drops(scores: torch.Tensor | tuple, key_mask: torch.Tensor | RealPairs, p: float, q: float,
               mode: str = "high", ties: str = "paper", fixed_rate: bool = False,
               generator: torch.Generator | None = None, group: int = MASK_GROUP, count: str = "reference"):
    """Region and dropped positions in one call. Returns (region, dropped), both bool [L, B, H, T, T]. A padded CPU
    batch is done in length-sorted groups of `group` examples cut to their longest example (0: in one call), so
    pad rows and keys are not searched nor drawn (pads are never candidates nor dropped); a packed one (`key_mask`
    a RealPairs from `segment_pairs`) in one call. `count`: see candidate_region. `scores`: [L, B, H, T, T], or for
    mode random (which reads no score) just that shape: the key a row that lost every one gets back is then drawn
    uniformly (`keep_one`)."""
    _check_settings(p, q, mode, ties, count)
    shape = scores if isinstance(scores, tuple) else scores.shape
    parts = [None] if isinstance(key_mask, RealPairs) else length_groups(key_mask, group)
    if len(parts) == 1:
        return _make_drops(scores, key_mask, p, q, mode, ties, fixed_rate, generator, count)
    region = torch.zeros(shape, dtype=torch.bool, device=key_mask.device)
    dropped = torch.zeros_like(region)
    for idx, t in parts:
        sub = (shape[0], len(idx), shape[2], t, t) if isinstance(scores, tuple) else scores[:, idx, :, :t, :t]
        r, d = _make_drops(sub, key_mask[idx, :t], p, q, mode, ties, fixed_rate, generator, count)
        region[:, idx, :, :t, :t] = r
        dropped[:, idx, :, :t, :t] = d
    return region, dropped


def _make_drops(scores, key_mask, p, q, mode, ties, fixed_rate, generator, count="reference"):
    rp = real_pairs(key_mask)
    if isinstance(scores, tuple):  # mode random, no scores: only their shape
        if mode != "random":
            raise ValueError(f"mode {mode!r} needs scores, not only their shape")
        scores = torch.empty(scores, device=rp.device)  # never read: random regions draw, keep_one draws
        region = candidate_region(scores, rp, p, mode, ties, generator, count)
        return region, keep_one(sample_drops(region, q, generator, fixed_rate), None, rp, mode, generator)
    region = candidate_region(scores, rp, p, mode, ties, generator, count)
    dropped = keep_one(sample_drops(region, q, generator, fixed_rate), scores, rp, mode)
    return region, dropped


def random_scores(shape, key_mask: torch.Tensor, generator: torch.Generator | None = None,
                  group: int = MASK_GROUP) -> torch.Tensor:
    """Uniform scores [L, B, H, T, T] (RD), drawn only within each length group's width (zero elsewhere)."""
    parts = length_groups(key_mask, group)
    if len(parts) == 1:
        return _uniform(shape, generator, key_mask.device)
    out = torch.zeros(shape, device=key_mask.device)
    for idx, t in parts:
        out[:, idx, :, :t, :t] = _uniform((shape[0], len(idx), shape[2], t, t), generator, key_mask.device)
    return out


def dropped_share(dropped: torch.Tensor, key_mask: torch.Tensor | RealPairs) -> float:
    """Share of real (query row, key) positions dropped: padded rows and keys are not counted."""
    rp = real_pairs(key_mask)
    total = dropped.shape[0] * dropped.shape[2] * rp.total  # each example: n * n real pairs per layer and head
    # count_nonzero over the bool tensor: summing bools would first widen 2.6M of them to int64 (5x slower)
    return float((dropped & (rp.keys & rp.rows)).count_nonzero().item() / total) if total else 0.0
