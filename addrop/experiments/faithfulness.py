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
from ..errors import UserError, listed
from .deletion_settings import DEFAULT_METHODS, DEFAULT_PS, FAITH_LABELS, FAITH_METHODS, DeletionSettings

__all__ = ["DEFAULT_METHODS", "DEFAULT_PS", "FAITH_LABELS", "FAITH_METHODS", "LOGIT_NOISE", "MEASURES", "NOISE",
           "DeletionSettings", "DeletionResult", "bootstrap_ci", "deletion_curves", "deletion_summary",
           "layers_used", "method_name"]

NOISE = 0.005  # changes of the probability below this are reported as no change
LOGIT_NOISE = 4 * NOISE  # of the logit: the probability moves by at most a quarter of it (the other logits fixed)
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
    out.update(layers=layers, layers_used=layers_used(s.layers, loaded.num_layers))  # in words, for headers
    return DeletionResult(table, arrays, out, time.perf_counter() - t0, len(sub))


def layers_used(asked, num_layers: int) -> str:
    """The layers a Layers value stands for, in words: 'layers 0-5 (all)', 'layer 5 (-1: the last)', 'layers 0, 3
    (-3: 2 below the last)'. Negative indices count from the top (config.parse_layers); out of range: UserError."""
    used = resolve_layers(parse_layers(asked), num_layers)
    if len(used) == num_layers:
        return "layer 0 (all)" if num_layers == 1 else f"layers 0-{num_layers - 1} (all)"
    notes = ["-1: the last" if l == -1 else "-2: the last but one" if l == -2 else f"{l}: {-l - 1} below the last"
             for l in parse_layers(asked) if l < 0]
    text = f"layer{'s' if len(used) > 1 else ''} {', '.join(map(str, used))}"
    return text + (f" ({'; '.join(dict.fromkeys(notes))})" if notes else "")


# per measure: the size below which a change is no change, the sign of a stronger effect, and the words
WORDS = {
    "prob_change": dict(noise=NOISE, sign=-1, fmt="+.3f", what="the predicted class's probability",
                        most="lowers the predicted class's probability most", verb="lowers it", more="more than",
                        less="less than", none=f"no method moves the predicted class's probability by {NOISE} or more"),
    "logit_change": dict(noise=LOGIT_NOISE, sign=-1, fmt="+.3f", what="the predicted class's logit",
                         most="lowers the predicted class's logit most", verb="lowers it", more="more than",
                         less="less than",
                         none=f"no method moves the predicted class's logit by {LOGIT_NOISE} or more"),
    "flip_rate": dict(noise=0.0, sign=1, fmt=".3f", what="the share of predictions that flip",
                      most="flips the largest share of predictions", verb="flips", more="more predictions than",
                      less="fewer predictions than", none="no method flips any prediction"),
}


def method_name(m: str) -> str:
    """'GA', 'IGA', 'AA', 'RD', and 'low' as the page writes it."""
    return m if m == "low" else m.upper()


def _moves(value: float, measure: str) -> bool:
    """Whether a mean change is a change: at least the measure's noise (for flip_rate: any flip)."""
    noise = WORDS[measure]["noise"]
    return abs(value) >= noise if noise else abs(value) > 0


def _compare(a, b, measure: str) -> str:
    """'more' or 'less' (a's effect against b's, where their 95% intervals are apart), 'overlap', or 'untested' (no
    intervals: bootstrap 0 or one example)."""
    lo, hi = f"{measure}_lo", f"{measure}_hi"
    if any(np.isnan(float(r[k])) for r in (a, b) for k in (lo, hi)):
        return "untested"
    stronger = WORDS[measure]["sign"] < 0
    if a[hi] < b[lo]:
        return "more" if stronger else "less"
    if a[lo] > b[hi]:
        return "less" if stronger else "more"
    return "overlap"


def _against(subject: str, a, others: list, measure: str, names: dict) -> str:
    """'GA lowers it less than IGA but more than AA (the intervals are apart); its interval overlaps that of RD, so
    no difference is shown.' `names`: how to call a method (default: method_name)."""
    w, by = WORDS[measure], {}
    for o in others:
        by.setdefault(_compare(a, o, measure), []).append(names.get(o.method, method_name(o.method)))
    many = {k for k, v in by.items() if len(v) > 1}
    by = {k: listed(v) for k, v in by.items()}
    raises = w["sign"] < 0 and a[f"{measure}_lo"] > 0  # nan > 0 is False
    if raises:  # "lowers it less than" would read as if it lowered it: say where the value ends instead
        said = f"{subject} raises it (its whole interval is above 0)"
        said += "".join(f"{' and' if i == 0 else ' but'} leaves it {'higher' if k == 'less' else 'lower'} than {by[k]}"
                        for i, k in enumerate(k for k in ("less", "more") if k in by))
    else:
        said = " but ".join(f"{w[k]} {by[k]}" for k in ("less", "more") if k in by)
        said = f"{subject} {w['verb']} {said}" if said else subject
    if "less" in by or "more" in by:
        said += " (the intervals are apart)"
    rest = []
    if "overlap" in by:
        rest.append(f"its interval overlaps {'those' if 'overlap' in many else 'that'} of {by['overlap']}, so no "
                    "difference is shown")
    if "untested" in by:
        rest.append(f"it is not compared with {by['untested']} (no intervals)")
    if rest:
        said += ("; " if said != subject else ": ") + "; ".join(rest)
    return said + "."


def deletion_summary(table, measure: str = "prob_change") -> list[str]:
    """Plain sentences about one measure (a key of MEASURES) read off the table, per p: which method has the
    largest mean effect, where GA stands against the others (the paper's claim is about GA's top positions) and,
    when run, where low (GA's lowest positions) stands against RD and GA. "More" or "less" is said only where the
    95% intervals are apart. No general claim beyond what the rows show."""
    w = WORDS[measure]
    lo, hi = f"{measure}_lo", f"{measure}_hi"

    def num(r, lead: str = "95% interval ") -> str:
        if np.isnan(float(r[lo])) or np.isnan(float(r[hi])):
            return f"{r[measure]:{w['fmt']}} (no interval)"
        return f"{r[measure]:{w['fmt']}} ({lead}{r[lo]:{w['fmt']}} to {r[hi]:{w['fmt']}})"

    out = []
    for p, rows in table[table.p > 0].groupby("p"):
        order = {m: i for i, m in enumerate(FAITH_METHODS)}
        rows = sorted((r for _, r in rows.iterrows()), key=lambda r: order.get(r.method, len(order)))
        has = {r.method: r for r in rows}
        if not any(_moves(r[measure], measure) for r in rows):
            out.append(f"p = {p:g}: {w['none']}" + (" (GA included)." if "ga" in has else "."))
            continue
        best = max(rows, key=lambda r: r[measure] * w["sign"])
        if _moves(best[measure], measure) and best[measure] * w["sign"] > 0:
            line = f"p = {p:g}: {method_name(best.method)} {w['most']}: {num(best)}"
            rest = [r for r in rows if r.method != best.method]
        else:
            line, rest = f"p = {p:g}: no method lowers {w['what']} by {w['noise']:g} or more", rows
        if rest:
            line += "; " + "; ".join(f"{method_name(r.method)}: {num(r, '')}" for r in rest)
        line += "."
        others = [r for r in rows if r.method not in ("ga", "low")]
        if "ga" in has and others:
            line += " " + _against("GA (what AD-DROP uses)", has["ga"], others, measure, {})
        others = [has[m] for m in ("rd", "ga") if m in has]
        if "low" in has and others:
            names = {"ga": "GA's top positions"}
            line += " " + _against("low (dropping GA's lowest positions)", has["low"], others, measure, names)
        out.append(line)
    if out and "ga" not in set(table.method):
        out.append("GA is not among the methods: add it to see where GA's top positions stand (the paper's claim).")
    return out
