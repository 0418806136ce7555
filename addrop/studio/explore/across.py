"""Attribution across training, read from a run's probes (engine/probes.py): the maps at one epoch, each probe's
prediction over epochs, and per head how much GA moved between consecutive epochs.

- `epoch_view(series, e, probe, head, p)`: tokens and the [T, T] attention, GA and candidate region (top-p by GA,
  the paper's rule) of the fully kept layer at the e-th snapshot.
- `predictions(series, label_names)`: a table epoch x probe with the probability of the gold class.
- `drift(series)`: [E-1, L, H] Spearman rank correlation of the [CLS] row's GA between consecutive snapshots,
  averaged over probes (1: the ranking did not move).
- `region_kept(series, p)`: [E-1, L, H] share of the [CLS] row's candidate region (top-p by GA) at snapshot e-1
  that is still in it at snapshot e, averaged over probes; `region_kept_chance` what a random region would keep.
- `drift_sentence(series, k, p)`: the two in words, against their chance levels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...core.masking import candidate_region
from ...engine.probes import ProbeSeries
from ...errors import counted
from .ranks import spearman_rows


def _real_len(series: ProbeSeries, probe: int) -> int:
    return int(series["key_mask"][0, probe].sum())


def epoch_view(series: ProbeSeries, e: int, probe: int, head: int, p: float) -> dict:
    """The fully kept layer's maps for one probe and head at snapshot index e (cut to the real tokens)."""
    n = _real_len(series, probe)
    att = series["full_att"][e, probe, head, :n, :n].astype(np.float32)
    ga = series["full_ga"][e, probe, head, :n, :n].astype(np.float32)
    region = candidate_region(torch.from_numpy(ga)[None, None, None], torch.ones(1, n, dtype=torch.bool), p)
    return {"tokens": series.meta["tokens"][probe][:n], "attention": att, "attribution": ga,
            "region": region[0, 0, 0].numpy(), "layer": series.meta["full_layer"], "epoch": series.epochs[e]}


def predictions(series: ProbeSeries, label_names=()) -> pd.DataFrame:
    rows = []
    probs = series["probs"].astype(np.float32)  # [E, P, C]
    for p, label in enumerate(series.meta["labels"]):
        text = series.meta["texts"][p]
        name = f"#{series.meta['indices'][p]} {text[:40]}{'…' if len(text) > 40 else ''}"
        for e, epoch in enumerate(series.epochs):
            if probs.shape[-1] == 1:
                rows.append({"epoch": epoch, "probe": name, "value": float(probs[e, p, 0]), "gold": label})
                continue
            gold = int(label)
            rows.append({"epoch": epoch, "probe": name, "value": float(probs[e, p, gold]),
                         "gold": label_names[gold] if gold < len(label_names) else gold,
                         "predicted": int(probs[e, p].argmax())})
    return pd.DataFrame(rows)


def _cls_rows(series: ProbeSeries):
    """[E, L, P, H, T] GA of the [CLS] row, and the real-key mask [P, T]."""
    return series["cls_ga"].astype(np.float32), series["key_mask"][0].astype(bool)


def drift(series: ProbeSeries) -> np.ndarray:
    ga, km = _cls_rows(series)
    E, L, P, H, _ = ga.shape
    out = np.full((max(E - 1, 0), L, H), np.nan)
    for e in range(1, E):
        per = np.zeros((P, L, H))
        for p in range(P):
            per[p] = spearman_rows(ga[e - 1, :, p][..., km[p]], ga[e, :, p][..., km[p]])  # [L, H]
        out[e - 1] = np.nanmean(per, 0) if np.isfinite(per).any() else np.nan
    return out


def cls_regions(series: ProbeSeries, p: float) -> np.ndarray:
    """[E, L, P, H, T] the [CLS] row's candidate region at every snapshot (top-p by GA, the paper's rule)."""
    ga, km = _cls_rows(series)
    E, L, P, H, T = ga.shape
    full = torch.zeros(E * L, P, H, T, T)
    full[..., 0, :] = torch.from_numpy(ga.reshape(E * L, P, H, T))
    region = candidate_region(full, torch.from_numpy(km), p)[..., 0, :]
    return region.reshape(E, L, P, H, T).numpy()


def region_kept(series: ProbeSeries, p: float) -> np.ndarray:
    r = cls_regions(series, p)
    before, after = r[:-1], r[1:]
    size = before.sum(-1)  # [E-1, L, P, H]
    kept = np.where(size > 0, (before & after).sum(-1) / np.maximum(size, 1), np.nan)
    return np.nanmean(kept, axis=2)


def region_kept_chance(series: ProbeSeries, p: float) -> np.ndarray:
    """[E-1, L, H] what `region_kept` would be by chance: the share of a row's real keys in the later region (a
    random region of that size keeps that share of the earlier one), averaged over probes."""
    r = cls_regions(series, p)
    n = np.maximum(series["key_mask"][0].astype(bool).sum(-1), 1)  # [P] real keys
    share = r[1:].sum(-1) / n[None, None, :, None]  # [E-1, L, P, H]
    return share.mean(axis=2)


def drift_sentence(series: ProbeSeries, k: int, p: float) -> str:
    """What the two drift charts show between snapshots k and k+1, against what unrelated rankings give: the mean
    rank correlation over heads (0 by chance) and the mean share of the region kept against its chance level."""
    rho = float(np.nanmean(drift(series)[k]))
    kept = float(np.nanmean(region_kept(series, p)[k]))
    chance = float(np.nanmean(region_kept_chance(series, p)[k]))
    a, b = series.epochs[k], series.epochs[k + 1]
    if not np.isfinite(rho) or not np.isfinite(kept):
        return f"Epoch {a} → {b}: no [CLS] row with two or more real keys to compare."
    if rho < 0.3 and kept - chance < 0.1:
        verdict = ("GA's ranking of the keys changed almost completely: little more than chance survives from one "
                   "epoch to the next")
    elif rho >= 0.7:
        verdict = "GA's ranking of the keys mostly stayed"
    else:
        verdict = "GA's ranking of the keys partly stayed"
    return (f"Epoch {a} → {b}, over every layer and head: mean rank correlation {rho:.2f} (1: the same ranking; "
            f"0: what two unrelated rankings give), and the top-{p:g} region kept {kept:.0%} of its positions, "
            f"against {chance:.0%} for a random region of the same size. {verdict}. These are averages over "
            f"{counted(series['probs'].shape[1], 'probe sentence')}.")
