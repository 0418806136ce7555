"""Algorithm 1 of the paper for one training batch: attribution -> candidate region -> sampled drops, and the
cross-tuning schedule that decides which epochs use them. The trainer (engine/training.py), ADDropTrainer
(engine/hf_trainer.py) and the benchmark all call these, so they cannot drift apart.
"""
from __future__ import annotations

import torch

from ..config import AttributionConfig, resolve_layers
from .attribution import as_model, attribute
from .masking import dropped_share, make_drops, random_scores
from .passes import frozen


def is_addrop_epoch(epoch: int, cross_tuning: bool = True) -> bool:
    """Epochs count from 1. Cross-tuning (Algorithm 1): odd epochs plain, even epochs AD-DROP; without it every
    epoch is an AD-DROP epoch."""
    return epoch % 2 == 0 if cross_tuning else True


def drops_for(model, batch: dict, acfg: AttributionConfig, generator: torch.Generator):
    """The masks of one training batch. Returns ({layer: bool [B, H, T, T]}, the share of real positions dropped).

    RD and the random region (drop-random) need no attribution pass: their scores are random. Otherwise the
    model's weights are frozen during the attribution pass (it is a private training copy, so this is safe).
    """
    model = as_model(model)
    key_mask = batch["attention_mask"].bool()
    layers = resolve_layers(acfg.layers, model.addrop.num_layers)
    if acfg.mode == "random" or acfg.method == "rd":
        B, T = key_mask.shape
        heads = model.config.num_attention_heads
        scores = random_scores((len(layers), B, heads, T, T), key_mask, generator)  # [L, B, H, T, T]
    else:
        with frozen(model):
            scores = attribute(model, batch, acfg, labels=batch.get("labels")).scores
    _, dropped = make_drops(scores, key_mask, acfg.p, acfg.q, acfg.mode, acfg.ties, acfg.fixed_rate, generator,
                            count=acfg.count or "reference")
    return {l: dropped[i] for i, l in enumerate(layers)}, dropped_share(dropped, key_mask)
