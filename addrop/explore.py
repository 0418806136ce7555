"""Library side of the attribution explorer (no Streamlit here).

One example at a time: its attention and attribution in every layer and head (`explain`), the AD-DROP mask
drawn from them (`draw_mask`, paper Eq. 6-7), a random mask with the same number of drops in every row
(`random_like`), what either mask does to the prediction (`mask_effect`), per-head summaries (`head_summary`),
the native/Captum cross-check (`compare_backends`), the "start here" search for an example whose prediction
flips under the AD-DROP mask but not under the random one (`find_flip`), and exports (`to_npz_bytes`,
`to_csv_text`, `settings_json`).

Shapes follow the library: the `Attribution` inside an `Explanation` keeps [L, B, H, T, T] with B = 1; the
arrays handed to the page drop the batch axis, [L, H, T, T] (layers, heads, query, key).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .attribution import Attribution, attribute, encode
from .config import AttributionConfig, resolve_layers
from .errors import UserError
from .masking import make_drops
from .models import Loaded, model_inputs

CONDITIONS = ("no mask", "AD-DROP mask", "random mask")
SPEARMAN_SAMPLE = 40_000  # head_summary ranks at most this many (query, key) positions per head


@dataclass
class Explanation:
    """One example's attention and attribution in every layer (the grid needs them all)."""

    text: str
    pair: str | None
    tokens: list[str]
    truncated: bool
    batch: dict  # tokenizer output on the model's device, batch of 1
    attribution: Attribution  # tensors [L, 1, H, T, T] over `layers` (all layers)
    cfg: AttributionConfig
    gold: float | int | None = None  # the example's label when it comes from a data set
    label_names: tuple[str, ...] = ()

    @property
    def layers(self) -> list[int]:
        return list(self.attribution.layers)

    @property
    def attention(self) -> np.ndarray:
        """[L, H, T, T] post-softmax attention of the unmasked pass."""
        return self.attribution.attention[:, 0].detach().float().cpu().numpy()

    @property
    def scores(self) -> np.ndarray:
        """[L, H, T, T] attribution scores."""
        return self.attribution.scores[:, 0].detach().float().cpu().numpy()

    @property
    def key_mask(self) -> torch.Tensor:
        """[1, T] real tokens (True)."""
        return self.attribution.key_mask

    @property
    def logits(self) -> np.ndarray:
        return self.attribution.logits[0].detach().float().cpu().numpy()

    @property
    def regression(self) -> bool:
        return self.attribution.logits.shape[-1] == 1

    @property
    def target(self) -> float:
        """The class attributed (an index), or for regression the gold score / nan."""
        return float(self.attribution.target[0].item())

    def class_name(self, k: int) -> str:
        return self.label_names[k] if 0 <= k < len(self.label_names) else f"class {k}"


@dataclass
class Mask:
    """The candidate region and the dropped positions for one example, [L, H, T, T] bool (B squeezed)."""

    region: torch.Tensor
    dropped: torch.Tensor
    masked_layers: list[int]  # layers where the mask applies (others are all False)
    p: float
    q: float
    mode: str
    seed: int

    def per_layer(self) -> dict[int, torch.Tensor]:
        """The controller's drops argument: {layer: bool [1, H, T, T]} for the masked layers."""
        return {l: self.dropped[l][None] for l in self.masked_layers}


def explain(loaded: Loaded, text: str, pair: str | None = None, cfg: AttributionConfig | None = None,
            gold=None, label_names=(), max_length: int | None = None) -> Explanation:
    """Tokenize one example (truncating to the model's limit) and attribute every layer and head with `cfg`."""
    cfg = replace(cfg or AttributionConfig(), layers=None)
    batch, tokens, truncated = encode(loaded, text, pair, max_length=max_length)
    labels = None
    if gold is not None:
        dtype = torch.float if loaded.model.config.num_labels == 1 else torch.long
        labels = torch.tensor([gold], dtype=dtype, device=loaded.device)
    if cfg.target == "gold" and labels is None:
        raise UserError("attributing the gold label needs an example with a label: pick one from the data set, "
                        "or attribute the predicted label")
    gen = torch.Generator().manual_seed(int(cfg.seed)) if cfg.method == "rd" else None  # RD: seeded scores
    att = attribute(loaded, batch, cfg, labels=labels, generator=gen)
    return Explanation(text=text, pair=pair if pair and pair.strip() else None, tokens=tokens, truncated=truncated,
                       batch=batch, attribution=att, cfg=cfg, gold=gold, label_names=tuple(label_names or ()))


def draw_mask(expl: Explanation, p: float = 0.3, q: float = 0.3, mode: str = "high", ties: str = "paper",
              seed: int = 0, layers=None, fixed_rate: bool = False) -> Mask:
    """Eq. 6-7 on the explanation's scores: the candidate region (size p) and the drops inside it (rate q).

    `layers` limits where the mask applies (None: every layer, as AD-DROP does). The draw uses a CPU generator
    seeded with `seed`, so the same settings give the same mask on any device.
    """
    AttributionConfig(p=p, q=q, mode=mode, ties=ties)  # validates p, q, mode and ties with UserError messages
    n_layers = len(expl.layers)
    masked = resolve_layers(tuple(layers) if layers is not None else None, n_layers)
    gen = torch.Generator().manual_seed(int(seed))
    region, dropped = make_drops(expl.attribution.scores, expl.key_mask, p, q, mode, ties, fixed_rate, gen)
    region, dropped = region[:, 0], dropped[:, 0]  # [L, H, T, T]
    keep = torch.zeros(n_layers, dtype=torch.bool, device=region.device)
    keep[masked] = True
    keep = keep.view(-1, 1, 1, 1)
    return Mask(region & keep, dropped & keep, masked, p, q, mode, int(seed))


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


def _forward(loaded: Loaded, batch: dict, drops: dict | None = None) -> torch.Tensor:
    model = loaded.model
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), model.addrop.pass_settings(drops=drops):
            return model(**model_inputs(model, batch)).logits.detach().float()
    finally:
        model.train(was)


def plain_logits(loaded: Loaded, batch: dict) -> torch.Tensor:
    """[B, C] logits of a plain forward pass, no masks (eval mode)."""
    return _forward(loaded, batch)


@dataclass
class Effect:
    """What a mask does: one row per condition (no mask, AD-DROP mask, random mask)."""

    rows: list[dict]
    reference: str  # what the loss is measured against, in words
    regression: bool = False

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


def mask_effect(loaded: Loaded, expl: Explanation, mask: Mask, random_dropped: torch.Tensor | None = None,
                seed: int | None = None) -> Effect:
    """Prediction, attributed logit, probabilities and loss before the mask, after the AD-DROP mask, and after a
    random mask with the same number of drops per row (drawn here from `seed` when not given).

    The loss is the cross-entropy against the gold label when the example has one, else against the attributed
    class c (the pseudo label by default); for regression, the squared error against the gold score.
    """
    if random_dropped is None:
        gen = torch.Generator().manual_seed(int(mask.seed if seed is None else seed) + 7919)
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
    for name, drops in runs:
        logits = _forward(loaded, expl.batch, drops)[0]  # [C]
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
                       attributed_logit=float(logits[c]),
                       loss=float(torch.nn.functional.cross_entropy(
                           logits[None], torch.tensor([ref], device=logits.device))))
            for k in range(probs.shape[0]):
                row[f"p({expl.class_name(k)})"] = float(probs[k])
            row["logits"] = [float(v) for v in logits]
        rows.append(row)
    return Effect(rows, reference, regression)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row pair of a, b [K, N] (average ranks for ties; nan for constant rows)."""
    from scipy.stats import rankdata

    if a.shape[-1] < 2:
        return np.full(a.shape[0], np.nan)
    ra, rb = rankdata(a, axis=-1), rankdata(b, axis=-1)
    ra -= ra.mean(-1, keepdims=True)
    rb -= rb.mean(-1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(-1) * (rb ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(-1) / den
    rho[den == 0] = np.nan
    return rho


def head_summary(expl: Explanation, mask: Mask | None = None):
    """One row per (layer, head): Spearman rank correlation of attention and attribution over the real
    (query, key) positions (a seeded sample of SPEARMAN_SAMPLE of them for long inputs), the share of real
    positions dropped and in the candidate region, and the largest absolute attribution."""
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
    rho = _spearman_rows(a[:, pick].astype(np.float64), s[:, pick].astype(np.float64))
    frame = pd.DataFrame({
        "layer": np.repeat(expl.layers, H), "head": np.tile(np.arange(H), L), "spearman": rho,
        "max_abs_attribution": np.abs(s).max(-1) if n_real else np.zeros(L * H),
    })
    if mask is not None and n_real:
        frame["dropped_share"] = mask.dropped.cpu().numpy()[:, :, real].reshape(L * H, n_real).mean(-1)
        frame["region_share"] = mask.region.cpu().numpy()[:, :, real].reshape(L * H, n_real).mean(-1)
    elif mask is not None:
        frame["dropped_share"] = 0.0
        frame["region_share"] = 0.0
    return frame


@dataclass
class Analysis:
    """Everything the explorer shows about one explanation and one mask draw."""

    mask: Mask
    random_dropped: torch.Tensor  # [L, H, T, T] same number of drops per row as mask.dropped
    effect: Effect
    summary: object  # pandas DataFrame, one row per (layer, head)


def analyse(loaded: Loaded, expl: Explanation, p: float = 0.3, q: float = 0.3, mode: str = "high",
            ties: str = "paper", seed: int = 0, layers=None) -> Analysis:
    """The AD-DROP mask (Eq. 6-7), a random mask with the same number of drops in every row (drawn from
    seed + 7919), what both do to the prediction, and the per-head summary: one call for the explorer page."""
    mask = draw_mask(expl, p, q, mode, ties=ties, seed=seed, layers=layers)
    rand = random_like(mask.dropped, expl.key_mask[0], torch.Generator().manual_seed(int(seed) + 7919))
    return Analysis(mask, rand, mask_effect(loaded, expl, mask, rand), head_summary(expl, mask))


@dataclass
class BackendComparison:
    native: Attribution
    captum: Attribution
    diff: np.ndarray  # [L, H, T, T] captum - native
    max_abs_diff: float
    max_rel_diff: float  # max |captum - native| / max |native| over real positions
    native_seconds: float
    captum_seconds: float


def compare_backends(loaded: Loaded, expl: Explanation) -> BackendComparison:
    """Attribute the explanation's example with both backends (GA and IGA only) and compare the scores."""
    if expl.cfg.method not in ("ga", "iga"):
        raise UserError(f"the Captum backend computes ga and iga only, not {expl.cfg.method}")
    labels = None
    if expl.gold is not None:
        dtype = torch.float if expl.regression else torch.long
        labels = torch.tensor([expl.gold], dtype=dtype, device=loaded.device)
    out = {}
    for backend in ("native", "captum"):
        if expl.cfg.backend == backend:
            out[backend] = expl.attribution
        else:
            out[backend] = attribute(loaded, expl.batch, replace(expl.cfg, backend=backend), labels=labels)
    a = out["native"].scores[:, 0].detach().float().cpu().numpy()
    b = out["captum"].scores[:, 0].detach().float().cpu().numpy()
    km = expl.key_mask[0].cpu().numpy().astype(bool)
    real = np.outer(km, km)[None, None]
    diff = b - a
    max_abs = float(np.abs(diff * real).max()) if diff.size else 0.0
    scale = float(np.abs(a * real).max()) if a.size else 0.0
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return BackendComparison(out["native"], out["captum"], diff, max_abs, rel, out["native"].seconds,
                             out["captum"].seconds)


@dataclass
class FlipCase:
    """The result of the "start here" search."""

    index: int  # position in the searched texts
    text: str
    pair: str | None
    found: bool  # True: the AD-DROP mask flips the prediction and the random mask does not
    searched: int
    before: str
    after_addrop: str
    after_random: str
    margin_change_addrop: float  # change of the (original prediction's) margin under the AD-DROP mask
    margin_change_random: float
    layer: int = 0  # a head worth looking at first: strong attribution, a typical region
    head: int = 0
    gold: float | int | None = None
    settings: dict = field(default_factory=dict)


def _margin(row: dict, k: int) -> float:
    logits = row["logits"]
    if len(logits) < 2:
        return float(logits[0])
    others = max(v for i, v in enumerate(logits) if i != k)
    return logits[k] - others


def find_flip(loaded: Loaded, texts, pairs=None, golds=None, cfg: AttributionConfig | None = None,
              p: float = 0.3, q: float = 0.3, seed: int = 0, limit: int = 40, label_names=()) -> FlipCase | None:
    """Search up to `limit` examples for one whose prediction flips under the AD-DROP mask but not under a random
    mask with the same number of drops per row. Without such a case, return the example where the AD-DROP mask
    lowers the prediction's margin the most beyond what the random mask does (found=False). None: no texts, or
    a regression model (there is no prediction to flip)."""
    cfg = cfg or AttributionConfig(method="ga")
    if loaded.model.config.num_labels == 1:
        return None
    best: tuple[float, FlipCase] | None = None
    n = 0
    for i, text in enumerate(list(texts)[:limit]):
        if not text or not str(text).strip():
            continue
        pair = pairs[i] if pairs is not None else None
        n += 1
        expl = explain(loaded, text, pair, cfg, label_names=label_names)
        mask = draw_mask(expl, p, q, mode="high", seed=seed)
        eff = mask_effect(loaded, expl, mask)
        before, ad, rd = eff.row("no mask"), eff.row("AD-DROP mask"), eff.row("random mask")
        k = before["predicted"]
        d_ad, d_rd = _margin(ad, k) - _margin(before, k), _margin(rd, k) - _margin(before, k)
        summ = head_summary(expl, mask)
        # a head to look at first: the strongest attribution among heads whose region is not inflated by
        # constant rows (with GA, the top layer's rows other than [CLS] are all zero and, under Eq. 6's ">=",
        # wholly candidates)
        typical = summ[summ["region_share"] <= p + 0.1]
        top = (typical if len(typical) else summ).sort_values("max_abs_attribution", ascending=False).iloc[0]
        case = FlipCase(i, text, pair, eff.addrop_flips and not eff.random_flips, n, before["prediction"],
                        ad["prediction"], rd["prediction"], d_ad, d_rd, int(top["layer"]), int(top["head"]),
                        golds[i] if golds is not None else None,
                        {"method": cfg.method, "p": p, "q": q, "seed": seed})
        if case.found:
            return case
        score = d_rd - d_ad  # how much more the AD-DROP mask hurts the margin than the random one
        if best is None or score > best[0]:
            best = (score, case)
    if best is None:
        return None
    best[1].searched = n
    return best[1]


# ----------------------------------------------------------------------------------------------- exports

def to_npz_bytes(expl: Explanation, mask: Mask | None = None, random_dropped: torch.Tensor | None = None) -> bytes:
    """tokens, layers, attention / attribution [L, H, T, T], key_mask [T], logits, and the masks when given."""
    arrays = {
        "tokens": np.array(expl.tokens),
        "layers": np.array(expl.layers),
        "attention": expl.attention,
        "attribution": expl.scores,
        "key_mask": expl.key_mask[0].cpu().numpy(),
        "logits": expl.logits,
    }
    if mask is not None:
        arrays["region"] = mask.region.cpu().numpy()
        arrays["dropped"] = mask.dropped.cpu().numpy()
    if random_dropped is not None:
        arrays["random_dropped"] = random_dropped.cpu().numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def to_csv_text(expl: Explanation, mask: Mask | None = None, layer: int | None = None, head: int | None = None) -> str:
    """Long form, one row per (layer, head, query, key) over real tokens: tokens, attention, attribution and
    (with a mask) region and dropped flags. `layer`/`head` restrict the rows."""
    import pandas as pd

    att, sc = expl.attention, expl.scores
    L, H, T, _ = att.shape
    km = expl.key_mask[0].cpu().numpy().astype(bool)
    idx = np.nonzero(km)[0]
    ls = [i for i, l in enumerate(expl.layers) if layer is None or l == layer]
    hs = [h for h in range(H) if head is None or h == head]
    li, hi, qi, ki = np.meshgrid(ls, hs, idx, idx, indexing="ij")
    li, hi, qi, ki = li.ravel(), hi.ravel(), qi.ravel(), ki.ravel()
    toks = np.array(expl.tokens)
    frame = pd.DataFrame({
        "layer": np.array(expl.layers)[li], "head": hi, "query": qi, "key": ki,
        "query_token": toks[qi], "key_token": toks[ki],
        "attention": att[li, hi, qi, ki], "attribution": sc[li, hi, qi, ki],
    })
    if mask is not None:
        frame["region"] = mask.region.cpu().numpy()[li, hi, qi, ki]
        frame["dropped"] = mask.dropped.cpu().numpy()[li, hi, qi, ki]
    return frame.to_csv(index=False)


def settings_json(**settings) -> str:
    """The explorer's settings as JSON (AttributionConfig objects become their dicts)."""
    def conv(v):
        if isinstance(v, AttributionConfig):
            return v.to_dict()
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            f = float(v)
            return f if math.isfinite(f) else None
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, (tuple, set)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return json.dumps(conv(settings), indent=2, ensure_ascii=False)
