"""How much the attribution pass's mode matters: the Jaccard overlap of the candidate regions (Eq. 6) of an
eval-mode pass (no dropout, ours by default) and a train-mode pass (dropout on, as the reference code), and of
two train-mode passes with each other (how much dropout alone moves the region)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ...config import AttributionConfig
from ...core.attribution import attribute
from ...core.masking import candidate_region


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a and b| / |a or b| of two boolean tensors (1.0 when both are empty)."""
    union = (a | b).sum().item()
    return float((a & b).sum().item() / union) if union else 1.0


@dataclass
class PassOverlap:
    eval_vs_train: float  # mean over the train-mode draws
    train_vs_train: float  # mean over pairs of train-mode draws (nan with one draw)
    draws: int

    def sentence(self, close: float = 0.05) -> str:
        """What the two overlaps say, for a reader who has not met Jaccard: 1 = the same positions, 0 = none."""
        head = (f"Region overlap (Jaccard: 1 = the same candidate positions, 0 = none in common): eval vs train "
                f"{self.eval_vs_train:.2f}, train vs train {self.train_vs_train:.2f}. ")
        if self.train_vs_train != self.train_vs_train:  # one train-mode draw: nothing to compare with
            return head + "With one train-mode pass, dropout's own spread is not measured."
        gap = self.train_vs_train - self.eval_vs_train
        if gap <= close:
            return head + ("The eval-mode region differs from a train-mode one about as much as two train-mode "
                           "regions differ from each other: here the pass's mode seems to matter no more than "
                           f"dropout's randomness (from {self.draws} train-mode draws).")
        return head + (f"The eval-mode region is further from a train-mode one than two train-mode regions are from "
                       f"each other (by {gap:.2f}): this suggests the pass's mode changes which positions are "
                       f"candidates beyond dropout's randomness (from {self.draws} train-mode draws).")


def pass_overlap(model, batch: dict, cfg: AttributionConfig | None = None, draws: int = 2,
                 seed: int = 0) -> PassOverlap:
    """Candidate regions (cfg's method, layers, p, mode and ties) of one eval-mode pass and `draws` train-mode
    passes (dropout seeded with seed, seed + 1, ...), compared by Jaccard over every layer, head and real
    position. The model's mode and the global random state come back afterwards."""
    cfg = cfg or AttributionConfig()
    key_mask = batch["attention_mask"].bool()

    def region(pass_: str) -> torch.Tensor:
        res = attribute(model, batch, replace(cfg, attribution_pass=pass_, backend="native"))
        return candidate_region(res.scores, key_mask, cfg.p, cfg.mode, cfg.ties)

    state = torch.random.get_rng_state()
    try:
        ev = region("eval")
        trains = []
        for i in range(draws):
            torch.manual_seed(seed + i)
            trains.append(region("train"))
    finally:
        torch.random.set_rng_state(state)
    evt = sum(jaccard(ev, t) for t in trains) / len(trains)
    pairs = [(i, j) for i in range(len(trains)) for j in range(i + 1, len(trains))]
    tvt = sum(jaccard(trains[i], trains[j]) for i, j in pairs) / len(pairs) if pairs else float("nan")
    return PassOverlap(evt, tvt, draws)
