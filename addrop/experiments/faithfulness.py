"""Deletion curves: does the attribution find the attention positions a prediction depends on? (paper Section 2.2,
Table 2's claim that GA beats attention weights and random choice), measured over a data set.

For N dev examples and the chosen layers, every query row loses its top-p share of real keys by GA, IGA, AA or
RD ("low": the bottom-p share by GA), for each p; the whole region goes (q = 1) unless q is given. Per example the
change of the predicted class's probability and logit (masked minus clean) and whether the prediction flips; per
(method, p) the mean over examples with a bootstrap 95% interval. RD is averaged over several seeds per example
before the bootstrap. The predicted class c is the clean pass's argmax; the attribution is of F_c (pseudo label).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import AttributionConfig, parse_layers, resolve_layers
from ..core.attribution import attribute
from ..core.masking import dropped_share, make_drops, random_scores
from ..core.passes import eval_mode, model_inputs
from ..engine.batching import batches, encode
from ..engine.data import subset
from ..errors import UserError
from .deletion_settings import DEFAULT_METHODS, DEFAULT_PS, FAITH_LABELS, FAITH_METHODS, DeletionSettings

__all__ = ["DEFAULT_METHODS", "DEFAULT_PS", "FAITH_LABELS", "FAITH_METHODS", "MEASURES", "NOISE", "DeletionSettings",
           "DeletionResult", "bootstrap_ci", "deletion_curves", "deletion_summary"]

NOISE = 0.005  # changes of the probability below this are reported as no change
MEASURES = {"prob_change": "change of the predicted class's probability", "logit_change":
            "change of the predicted class's logit", "flip_rate": "share of predictions that flip"}


@dataclass
class DeletionResult:
    table: object  # pandas DataFrame: one row per (method, p)
    per_example: dict = field(default_factory=dict)  # (method, p) -> {measure: [N] array}
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    n: int = 0


def _forward(model, batch, drops=None) -> torch.Tensor:
    """Logits only: the top layer computes the [CLS] row alone where the model allows it (core/attention.py)."""
    with torch.no_grad(), model.addrop.pass_settings(drops=drops, cls_only=True):
        return model(**model_inputs(model, batch)).logits.float()


def _scores(model, batch, method: str, layers, ga, generator) -> tuple[torch.Tensor, str]:
    """[L, B, H, T, T] scores of `method` and the region's mode: GA, AA and low all come from the one GA pass
    (its attention is AA), RD from random scores, IGA from its own pass."""
    if method in ("ga", "low"):
        return ga.scores, ("low" if method == "low" else "high")
    if method == "aa":
        return ga.attention, "high"
    if method == "rd":
        return random_scores(ga.scores.shape, ga.key_mask, generator), "high"
    res = attribute(model, batch, AttributionConfig(method=method, layers=layers, target="pseudo"))
    return res.scores, "high"


def _masked_passes(model, batch, layers, jobs, chunk_rows):
    """Every job's masked forward pass, several jobs stacked along the batch axis per pass (the same logits as one
    pass each: examples do not interact). Yields ((method, p, seed, share), logits [B, C])."""
    B = batch["input_ids"].shape[0]
    per = max(1, chunk_rows // B)
    km = batch["attention_mask"].bool()
    for start in range(0, len(jobs), per):
        part = jobs[start:start + per]
        big = {k: v.repeat(len(part), *([1] * (v.dim() - 1))) for k, v in batch.items()}
        drops = {l: torch.cat([d[j] for _, d in part], 0) for j, l in enumerate(layers)}
        logits = _forward(model, big, drops).view(len(part), B, -1)
        for (key, d), lg in zip(part, logits):
            yield key + (dropped_share(d, km),), lg


def _measures(clean: torch.Tensor, masked: torch.Tensor, c: torch.Tensor) -> dict:
    rows = torch.arange(len(c))
    return {"prob_change": (masked.softmax(-1)[rows, c] - clean.softmax(-1)[rows, c]).numpy(),
            "logit_change": (masked[rows, c] - clean[rows, c]).numpy(),
            "flip_rate": (masked.argmax(-1) != c).float().numpy()}


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of the mean (resamples = 0: none)."""
    if resamples == 0 or len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def deletion_curves(loaded, spec, dev, settings: DeletionSettings | None = None,
                    progress: Callable[[float, str], None] | None = None) -> DeletionResult:
    """The deletion table for `loaded` on the first `settings.n` examples of a seeded subset of `dev`."""
    import pandas as pd

    s = settings or DeletionSettings()
    if spec.is_regression:
        raise UserError("deletion curves need a classification task (they follow the predicted class)")
    model = loaded.model
    layers = resolve_layers(parse_layers(s.layers), loaded.num_layers)
    sub = subset(dev, s.n, s.seed)
    enc = encode(loaded.tokenizer, sub, min(s.max_length, loaded.max_length))
    enc.sort(key=lambda e: len(e["input_ids"]))  # batches of like length: little padding (results are per example)
    per = {(m, p): {k: [] for k in MEASURES} | {"share": []} for m in s.methods for p in s.ps}
    t0 = time.perf_counter()
    todo = list(batches(enc, None, s.batch_size))
    for i, batch in enumerate(todo):
        batch = {k: v.to(loaded.device) for k, v in batch.items()}
        B = batch["input_ids"].shape[0]
        with eval_mode(model):
            ga = attribute(model, batch, AttributionConfig(method="ga", layers=layers, target="pseudo"))
            clean = _forward(model, batch)  # the same kind of pass as the masked ones
            c = clean.argmax(-1)
            if 0.0 in s.ps:  # nothing is a candidate: the pass must equal the clean one (the tests check it)
                none = _forward(model, batch, {l: torch.zeros(ga.scores.shape[1:], dtype=torch.bool,
                                                              device=clean.device) for l in layers})
            by_mode: dict = {"high": [], "low": []}  # mode -> [((method, seed), scores)], each scored once
            for m in s.methods:
                for k in range(s.rd_seeds if m == "rd" else 1):
                    gen = torch.Generator(device="cpu").manual_seed(s.seed * 1000 + k)
                    scores, mode = _scores(model, batch, m, layers, ga, gen)
                    by_mode[mode].append(((m, k), scores))
            jobs = []  # ((method, p, seed), dropped [L, B, H, T, T])
            for mode, scored in by_mode.items():
                if not scored:
                    continue
                keys, stack = [key for key, _ in scored], [sc for _, sc in scored]  # stacked along the batch axis
                scores = torch.cat(stack, 1)  # [L, K*B, H, T, T]
                km = ga.key_mask.repeat(len(stack), 1)
                for p in s.ps:
                    if p > 0:
                        q_gen = torch.Generator(device="cpu").manual_seed(s.seed * 1000 + 500)
                        _, dropped = make_drops(scores, km, p, s.q, mode, s.ties, s.q >= 1, q_gen,
                                                  count=s.count)
                        for j, (m, k) in enumerate(keys):
                            jobs.append(((m, p, k), dropped[:, j * B:(j + 1) * B]))
            got: dict = {}
            for key, logits in _masked_passes(model, batch, layers, jobs, s.chunk_rows):
                got.setdefault(key[:2], []).append(key[2:] + (logits,))
            for m in s.methods:
                for p in s.ps:
                    if p == 0:
                        outs = [(_measures(clean, none, c), 0.0)]
                    else:
                        outs = [(_measures(clean, lg, c), share) for _, share, lg in got[(m, p)]]
                    for key in MEASURES:
                        per[(m, p)][key].append(np.mean([o[0][key] for o in outs], axis=0))
                    per[(m, p)]["share"].append(float(np.mean([o[1] for o in outs])))
        if progress:
            progress((i + 1) / len(todo), f"batch {i + 1}/{len(todo)}")
    rows, arrays = [], {}
    for (m, p), d in per.items():
        row = {"method": m, "p": p, "q": s.q, "n": len(sub)}
        arrays[(m, p)] = {}
        for key in MEASURES:
            v = np.concatenate(d[key]) if d[key] else np.zeros(0)
            arrays[(m, p)][key] = v
            lo, hi = bootstrap_ci(v, s.bootstrap, s.seed)
            row.update({key: float(v.mean()) if len(v) else float("nan"), f"{key}_lo": lo, f"{key}_hi": hi})
        row["dropped_share"] = float(np.mean(d["share"])) if d["share"] else 0.0
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["method", "p"], key=lambda col: col.map(
        {m: i for i, m in enumerate(FAITH_METHODS)}) if col.name == "method" else col).reset_index(drop=True)
    out = asdict(s)
    out["layers"] = layers
    return DeletionResult(table, arrays, out, time.perf_counter() - t0, len(sub))


def deletion_summary(table) -> list[str]:
    """Plain sentences read off the table: per p, which method lowered the predicted probability most, and
    whether its interval clears AA's and RD's (where they were run). No general claim beyond what the rows show."""
    out = []
    for p, rows in table[table.p > 0].groupby("p"):
        best = rows.loc[rows.prob_change.idxmin()]
        if abs(best.prob_change) < NOISE:
            out.append(f"p = {p:g}: no method moves the predicted class's probability by {NOISE} or more.")
            continue
        line = (f"p = {p:g}: {best.method.upper()} lowers the predicted class's probability most "
                f"({best.prob_change:+.3f}, 95% interval {best.prob_change_lo:+.3f} to {best.prob_change_hi:+.3f})")
        for other in ("aa", "rd"):  # the baselines of the paper's claim: attention weights, random positions
            them = rows[rows.method == other]
            if len(them) and best.method != other:
                r = them.iloc[0]
                apart = best.prob_change_hi < r.prob_change_lo
                line += (f"; {other.upper()}: {r.prob_change:+.3f} ({r.prob_change_lo:+.3f} to "
                         f"{r.prob_change_hi:+.3f}), " + ("the intervals do not overlap" if apart else
                                                          "the intervals overlap"))
        out.append(line + ".")
    return out
