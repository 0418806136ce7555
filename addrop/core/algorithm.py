"""Algorithm 1 of the paper for one training batch: attribution -> candidate region -> sampled drops, and the
cross-tuning schedule that decides which epochs use them. The trainer (engine/training.py), ADDropTrainer
(engine/hf_trainer.py) and the benchmark all call these, so they cannot drift apart.
"""
from __future__ import annotations

import torch

from ..config import PRIOR_MODES, AttributionConfig, resolve_layers
from .attribution import as_model, attribute
from .masking import dropped_share, make_drops
from .packing import RowDrops, RowPacking
from .passes import frozen


def is_addrop_epoch(epoch: int, cross_tuning: bool = True) -> bool:
    """Epochs count from 1. Cross-tuning (Algorithm 1): odd epochs plain, even epochs AD-DROP; without it every
    epoch is an AD-DROP epoch."""
    return epoch % 2 == 0 if cross_tuning else True


def masks_in_epoch(cfg, epoch: int) -> bool:
    """Whether epoch (from 1) of the run `cfg` (a TrainConfig) applies masks: AD-DROP's cross-tuning schedule,
    every epoch for the prior experiment's drop-* strategies, never for vanilla and none."""
    if cfg.strategy == "addrop":
        return is_addrop_epoch(epoch, cfg.cross_tuning)
    return cfg.strategy in PRIOR_MODES


def region_mode(acfg: AttributionConfig) -> str:
    """The candidate region a setting draws: RD is a per-key coin with probability p (the reference's random
    region), whatever `mode` says; other methods use `mode` (high: AD-DROP's Eq. 6)."""
    return "random" if acfg.method == "rd" else acfg.mode


def drops_for(model, batch: dict, acfg: AttributionConfig, generator: torch.Generator,
              example_seeds: list[int] | None = None, packed: bool = False):
    """The masks of one training batch. Returns ({layer: bool [B, H, T, T]}, the share of real positions dropped).

    `packed` (a training pass that runs packed, engine.training.use_packing): the masks are drawn on the packed
    rows where the attribution's scores are (attribution path "rows"; RD and the random region always) and come
    back as a packing.RowDrops for that pass; the same rule on the same real (row, key) pairs, the coins drawn over
    the packed shape (so a seed gives other coins than in the padded shape).

    `example_seeds` (one int per example): each example's draws come from its own generator over its own real
    tokens, so they do not depend on which other examples share the batch, on padding, or on the process that
    holds it (data-parallel runs then draw what one process would); `generator` is then not used.

    RD and the random region (drop-random) need no attribution pass. RD is drawn as the reference code draws it:
    each real key a candidate with probability p (a per-key coin, not a fixed count per row), then dropped with
    probability q; a row that would lose all of them gets one back, drawn uniformly (no scores are drawn else).
    Otherwise the model's weights are frozen during the attribution pass (a private training copy, so safe).
    """
    model = as_model(model)
    key_mask = batch["attention_mask"].bool()
    layers = resolve_layers(acfg.layers, model.addrop.num_layers)
    random = acfg.mode == "random" or acfg.method == "rd"
    if example_seeds is not None:
        scores = None
        if not random:
            with frozen(model):
                scores = attribute(model, batch, acfg, labels=batch.get("labels"), attention=False).scores
        dropped = drops_per_example(scores, key_mask, acfg, example_seeds, len(layers),
                                    model.config.num_attention_heads)
        return {l: dropped[i] for i, l in enumerate(layers)}, dropped_share(dropped, key_mask)
    heads = model.config.num_attention_heads
    lay = None
    if random:
        lay = RowPacking(key_mask) if packed else None
        B, T = (lay.rows, lay.width) if packed else key_mask.shape
        scores = (len(layers), B, heads, T, T)  # only the shape: random regions read no score
    else:
        with frozen(model):
            res = attribute(model, batch, acfg, labels=batch.get("labels"), attention=False, keep_rows=packed)
        scores, lay = res.scores, res.extra.get("rows")
    pairs = lay.pairs() if lay is not None else key_mask  # scores [L, R, H, W, W] on the rows, or [L, B, H, T, T]
    _, dropped = make_drops(scores, pairs, acfg.p, acfg.q, region_mode(acfg), acfg.ties, acfg.fixed_rate, generator,
                            count=acfg.count or "reference")
    masks = {l: dropped[i] for i, l in enumerate(layers)}
    return (RowDrops(lay, masks) if lay is not None else masks), dropped_share(dropped, pairs)


def drops_per_example(scores: torch.Tensor | None, key_mask: torch.Tensor, acfg: AttributionConfig,
                      seeds: list[int], num_layers: int, heads: int) -> torch.Tensor:
    """Dropped positions bool [L, B, H, T, T], example i drawn over its real tokens only with a CPU generator
    seeded with seeds[i] (scores None: RD / random region, whose scores are drawn from it too)."""
    B, T = key_mask.shape
    dropped = torch.zeros((num_layers, B, heads, T, T), dtype=torch.bool, device=key_mask.device)
    mode = region_mode(acfg)
    for i, seed in enumerate(seeds):
        idx = key_mask[i].nonzero().squeeze(-1)  # [n] real positions (either padding side)
        n = len(idx)
        gen = torch.Generator().manual_seed(int(seed))
        if scores is None:
            sc = (num_layers, 1, heads, n, n)  # only the shape: random regions read no score
        else:
            sc = scores[:, i:i + 1].index_select(-2, idx).index_select(-1, idx)  # [L, 1, H, n, n]
        km = torch.ones((1, n), dtype=torch.bool, device=key_mask.device)
        _, d = make_drops(sc, km, acfg.p, acfg.q, mode, acfg.ties, acfg.fixed_rate, gen, group=0)
        rows = torch.zeros((num_layers, heads, n, T), dtype=torch.bool, device=key_mask.device)
        rows[..., idx] = d[:, 0]
        dropped[:, i].index_copy_(-2, idx, rows)
    return dropped
