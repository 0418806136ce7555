"""What a mask does to one example's prediction (`mask_effect`), against a random mask with the same number of
drops in every row (`random_like`), and per-head summaries (`head_summary`); `analyse` is all of it in one call."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...core.passes import eval_mode, model_inputs
from ...engine.models import LoadedModel
from .explain import Explanation, Mask, draw_mask
from .ranks import spearman_rows

CONDITIONS = ("no mask", "AD-DROP mask", "random mask")
SPEARMAN_SAMPLE = 40_000  # head_summary ranks at most this many (query, key) positions per head
RANDOM_SEED_OFFSET = 7919  # the random mask draws from seed + this prime, a stream apart from the AD-DROP mask's


def random_mask_generator(seed: int) -> torch.Generator:
    """The CPU generator of the random comparison mask for a given mask seed."""
    return torch.Generator().manual_seed(int(seed) + RANDOM_SEED_OFFSET)


def random_like(dropped: torch.Tensor, key_mask: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A random mask with exactly as many dropped keys in every row as `dropped`, among that row's real keys.

    dropped: bool [..., T, T] (query, key); key_mask: bool [T] or [1, T] (True = real token).
    """
    km = key_mask.bool().reshape(-1)
    T = dropped.shape[-1]
    if km.numel() != T:
        raise ValueError(f"key_mask has {km.numel()} positions, the mask {T}")
    counts = (dropped & km).sum(-1, keepdim=True)  # [..., T, 1] drops per row
    gen_device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.rand(dropped.shape, generator=generator, device=gen_device).to(dropped.device)
    noise = noise.masked_fill(~km.to(dropped.device), float("inf"))  # pads never drawn
    rank = noise.argsort(-1).argsort(-1)  # each key's rank in its row, 0 = first drawn
    return (rank < counts) & km.to(dropped.device)


def _forward(loaded: LoadedModel, batch: dict, drops: dict | None = None) -> torch.Tensor:
    model = loaded.model
    with eval_mode(model), torch.no_grad(), model.addrop.pass_settings(drops=drops):
        return model(**model_inputs(model, batch)).logits.detach().float()


def _three_conditions(loaded: LoadedModel, batch: dict, layers, addrop: dict, rand: dict) -> torch.Tensor:
    """[3, C] logits of no mask, the AD-DROP mask and the random mask in ONE forward pass of the example
    repeated three times (the first copy with nothing dropped): a third of the passes' fixed cost."""
    rep = {k: (v.repeat(3, *([1] * (v.dim() - 1))) if torch.is_tensor(v) and v.dim() >= 1 else v)
           for k, v in batch.items()}
    drops = {l: torch.cat([torch.zeros_like(addrop[l]), addrop[l], rand[l]]) for l in layers}  # [3, H, T, T]
    return _forward(loaded, rep, drops)


def plain_logits(loaded: LoadedModel, batch: dict) -> torch.Tensor:
    """[B, C] logits of a plain forward pass, no masks (eval mode)."""
    return _forward(loaded, batch)


@dataclass
class Effect:
    """What a mask does: one row per condition (no mask, AD-DROP mask, random mask)."""

    rows: list[dict]
    reference: str  # what the loss is measured against, in words
    regression: bool = False
    target_name: str = ""  # the attributed class c (classification), whose probability is column p_c

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def row(self, condition: str) -> dict:
        return next(r for r in self.rows if r["condition"] == condition)

    @property
    def addrop_flips(self) -> bool:
        return self.row("AD-DROP mask")["prediction"] != self.row("no mask")["prediction"]

    @property
    def random_flips(self) -> bool:
        return self.row("random mask")["prediction"] != self.row("no mask")["prediction"]


def mask_effect(loaded: LoadedModel, expl: Explanation, mask: Mask, random_dropped: torch.Tensor | None = None,
                seed: int | None = None) -> Effect:
    """Prediction, attributed logit, probabilities and loss before the mask, after the AD-DROP mask, and after a
    random mask with the same number of drops per row (drawn here from `seed` when not given).

    The loss is the cross-entropy against the gold label when the example has one, else against the attributed
    class c (the pseudo label by default); for regression, the squared error against the gold score.
    """
    if random_dropped is None:
        gen = random_mask_generator(mask.seed if seed is None else seed)
        random_dropped = random_like(mask.dropped, expl.key_mask[0], gen)
    rand = {l: random_dropped[l][None] for l in mask.masked_layers}
    runs = [("no mask", None), ("AD-DROP mask", mask.per_layer()), ("random mask", rand)]
    regression = expl.regression
    if regression:
        ref = None if expl.gold is None else float(expl.gold)
        reference = "the gold score" if ref is not None else "no score (no gold label)"
    elif expl.gold is not None:
        ref = int(expl.gold)
        reference = f"the gold label ({expl.class_name(ref)})"
    else:
        ref = int(expl.target)
        reference = f"the attributed class ({expl.class_name(ref)})"
    rows = []
    all_logits = _three_conditions(loaded, expl.batch, mask.masked_layers, mask.per_layer(), rand)  # [3, C]
    for (name, drops), logits in zip(runs, all_logits):
        drop_n = 0 if drops is None else int(sum(d.sum().item() for d in drops.values()))
        row: dict = {"condition": name, "drops": drop_n}
        if regression:
            score = float(logits[0])
            row.update(prediction=round(score, 4), score=score,
                       loss=(score - ref) ** 2 if ref is not None else float("nan"))
        else:
            probs = torch.softmax(logits, -1)
            pred = int(probs.argmax())
            c = int(expl.target)
            row.update(prediction=expl.class_name(pred), predicted=pred, confidence=float(probs[pred]),
                       p_c=float(probs[c]), attributed_logit=float(logits[c]),
                       loss=float(torch.nn.functional.cross_entropy(
                           logits[None], torch.tensor([ref], device=logits.device))))
            for k in range(probs.shape[0]):
                row[f"p({expl.class_name(k)})"] = float(probs[k])
            row["logits"] = [float(v) for v in logits]
        rows.append(row)
    return Effect(rows, reference, regression, "" if regression else expl.class_name(int(expl.target)))


def idle_rows(expl: Explanation) -> np.ndarray:
    """bool [L, H, T]: real query rows whose attribution is the same for every real key (with GA: exactly zero,
    the rows that cannot reach the output, e.g. every row but [CLS] in the top layer). Under the paper's tie rule
    such a row is a candidate as a whole, yet dropping in it changes nothing."""
    sc = expl.scores  # [L, H, T, T]
    km = expl.key_mask[0].cpu().numpy().astype(bool)
    real = sc[:, :, :, km]  # [L, H, T, n]
    if real.shape[-1] == 0:
        return np.zeros(sc.shape[:3], dtype=bool)
    return (real.max(-1) == real.min(-1)) & km[None, None, :]


@dataclass
class DropCounts:
    """Dropped (query, key) positions over the masked layers, split by whether their row can act."""

    dropped: int  # all drops
    acting: int  # drops in rows whose attribution varies (rows that reach the output)
    idle: int  # drops in constant rows (they change nothing)
    positions: int  # real positions of the masked layers
    acting_positions: int  # real positions in rows that can act

    @property
    def share(self) -> float:
        return self.dropped / self.positions if self.positions else 0.0

    @property
    def acting_share(self) -> float:
        return self.acting / self.acting_positions if self.acting_positions else 0.0


def drop_counts(expl: Explanation, mask: Mask) -> DropCounts:
    """How many positions the mask drops in the masked layers, and how many of them lie in rows that can act."""
    km = expl.key_mask[0].cpu().numpy().astype(bool)
    n = int(km.sum())
    layers = [expl.layers.index(l) for l in mask.masked_layers]
    d = mask.dropped.cpu().numpy()[layers][..., km]  # [l, H, T, n] real keys (pad rows hold no drops)
    idle = idle_rows(expl)[layers]  # [l, H, T]
    rows = d.sum(-1)  # [l, H, T]
    H = d.shape[1]
    acting_rows = int((~idle[..., km]).sum())
    return DropCounts(int(rows.sum()), int(rows[~idle].sum()), int(rows[idle].sum()), len(layers) * H * n * n,
                      acting_rows * n)


def head_summary(expl: Explanation, mask: Mask | None = None):
    """One row per (layer, head): Spearman rank correlation of attention and attribution over the real
    (query, key) positions (a seeded sample of SPEARMAN_SAMPLE of them for long inputs), the share of real
    positions dropped and in the candidate region, the same two over the rows that can act (not constant: see
    `idle_rows`), and the largest absolute attribution."""
    import pandas as pd

    att, sc = expl.attention, expl.scores  # [L, H, T, T]
    L, H = att.shape[:2]
    km = expl.key_mask[0].cpu().numpy().astype(bool)
    real = np.outer(km, km)  # [T, T]
    n_real = int(real.sum())
    a = att[:, :, real].reshape(L * H, n_real)
    s = sc[:, :, real].reshape(L * H, n_real)
    pick = slice(None)
    if n_real > SPEARMAN_SAMPLE:  # long inputs: the same seeded sample of positions in every head
        pick = np.sort(np.random.default_rng(0).choice(n_real, SPEARMAN_SAMPLE, replace=False))
    rho = spearman_rows(a[:, pick].astype(np.float64), s[:, pick].astype(np.float64))
    frame = pd.DataFrame({
        "layer": np.repeat(expl.layers, H), "head": np.tile(np.arange(H), L), "spearman": rho,
        "max_abs_attribution": np.abs(s).max(-1) if n_real else np.zeros(L * H),
    })
    if mask is not None and n_real:
        frame["dropped_share"] = mask.dropped.cpu().numpy()[:, :, real].reshape(L * H, n_real).mean(-1)
        frame["region_share"] = mask.region.cpu().numpy()[:, :, real].reshape(L * H, n_real).mean(-1)
        act = ~idle_rows(expl)[:, :, km]  # [L, H, n] rows that can act
        n = int(km.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, m in (("acting_dropped_share", mask.dropped), ("acting_region_share", mask.region)):
                x = m.cpu().numpy()[:, :, km][..., km]  # [L, H, n, n]
                frame[name] = ((x & act[..., None]).sum((-1, -2)) / (act.sum(-1) * n)).reshape(L * H)
        frame["acting_rows"] = act.sum(-1).reshape(L * H)
    elif mask is not None:
        for name in ("dropped_share", "region_share", "acting_dropped_share", "acting_region_share"):
            frame[name] = 0.0
        frame["acting_rows"] = 0
    return frame


@dataclass
class Analysis:
    """Everything the explorer shows about one explanation and one mask draw."""

    mask: Mask
    random_dropped: torch.Tensor  # [L, H, T, T] same number of drops per row as mask.dropped
    effect: Effect
    summary: object  # pandas DataFrame, one row per (layer, head)
    counts: DropCounts | None = None  # the AD-DROP mask's drops, split by whether their row can act


def analyse(loaded: LoadedModel, expl: Explanation, p: float = 0.3, q: float = 0.3, mode: str = "high",
            ties: str = "paper", seed: int = 0, layers=None) -> Analysis:
    """The AD-DROP mask (Eq. 6-7), a random mask with the same number of drops in every row (drawn from
    seed + RANDOM_SEED_OFFSET), what both do to the prediction, and the per-head summary: one call for the
    explorer page."""
    mask = draw_mask(expl, p, q, mode, ties=ties, seed=seed, layers=layers)
    rand = random_like(mask.dropped, expl.key_mask[0], random_mask_generator(seed))
    return Analysis(mask, rand, mask_effect(loaded, expl, mask, rand), head_summary(expl, mask),
                    drop_counts(expl, mask))
