"""The "start here" search: the example where the AD-DROP mask moves the predicted class's probability most
relative to a random mask with the same number of drops per row (found only when that difference is meaningful,
MEANINGFUL or more)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...config import AttributionConfig
from ...engine.models import LoadedModel
from ...engine.tasks import is_blank
from .effects import head_summary, mask_effect
from .explain import draw_mask, explain


@dataclass
class FlipCase:
    """The result of the "start here" search."""

    index: int  # position in the searched texts
    text: str
    pair: str | None
    found: bool  # True: the AD-DROP mask lowers P(predicted) by MEANINGFUL or more beyond the random mask
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
    prob_before: float = float("nan")  # P(the unmasked prediction's class) without a mask, and under each mask
    prob_addrop: float = float("nan")
    prob_random: float = float("nan")

    @property
    def flips(self) -> bool:
        return self.after_addrop != self.before


MEANINGFUL = 0.05  # the AD-DROP mask must lower P(predicted) by this much more than the random mask


def _margin(row: dict, k: int) -> float:
    logits = row["logits"]
    if len(logits) < 2:
        return float(logits[0])
    others = max(v for i, v in enumerate(logits) if i != k)
    return logits[k] - others


def find_flip(loaded: LoadedModel, texts, pairs=None, golds=None, cfg: AttributionConfig | None = None,
              p: float = 0.3, q: float = 0.3, seed: int = 0, limit: int = 40, label_names=()) -> FlipCase | None:
    """Search up to `limit` examples for the one where the AD-DROP mask lowers the predicted class's probability
    most beyond what a random mask with the same number of drops per row does; `found` says whether that
    difference reaches MEANINGFUL. None: no texts, or a regression model (there is no predicted class)."""
    cfg = cfg or AttributionConfig(method="ga")
    if loaded.model.config.num_labels == 1:
        return None
    best: tuple[float, FlipCase] | None = None
    n = 0
    for i, text in enumerate(list(texts)[:limit]):
        if not text or is_blank(str(text)):
            continue
        pair = pairs[i] if pairs is not None else None
        n += 1
        expl = explain(loaded, text, pair, cfg, label_names=label_names)
        mask = draw_mask(expl, p, q, mode="high", seed=seed)
        eff = mask_effect(loaded, expl, mask)
        before, ad, rd = eff.row("no mask"), eff.row("AD-DROP mask"), eff.row("random mask")
        k = before["predicted"]
        name = f"p({expl.class_name(k)})"
        d_ad, d_rd = _margin(ad, k) - _margin(before, k), _margin(rd, k) - _margin(before, k)
        summ = head_summary(expl, mask)
        # a head to look at first: the strongest attribution among heads whose region is not inflated by
        # constant rows (with GA, the top layer's rows other than [CLS] are all zero and, under Eq. 6's ">=",
        # wholly candidates)
        typical = summ[summ["region_share"] <= p + 0.1]
        top = (typical if len(typical) else summ).sort_values("max_abs_attribution", ascending=False).iloc[0]
        score = rd[name] - ad[name]  # how much lower P(predicted) is under the AD-DROP mask than the random one
        case = FlipCase(i, text, pair, score >= MEANINGFUL, n, before["prediction"], ad["prediction"],
                        rd["prediction"], d_ad, d_rd, int(top["layer"]), int(top["head"]),
                        golds[i] if golds is not None else None,
                        {"method": cfg.method, "p": p, "q": q, "seed": seed}, before[name], ad[name], rd[name])
        if best is None or score > best[0]:
            best = (score, case)
    if best is None:
        return None
    best[1].searched = n
    return best[1]
