"""One example's attention and attribution in every layer and head (`explain`), and the AD-DROP mask drawn from
them (`draw_mask`, paper Eq. 6-7). Arrays handed to the page drop the batch axis: [L, H, T, T]."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ...config import AttributionConfig, resolve_layers
from ...core.algorithm import region_mode
from ...core.attribution import attribute
from ...core.masking import make_drops
from ...core.objective import Attribution
from ...engine.batching import encode_example
from ...engine.models import LoadedModel
from ...engine.tasks import is_blank
from ...errors import UserError

# RD's scores draw from seed + this prime: the mask (draw_mask) draws from the seed itself, so RD's random region
# and its q draw are not the scores over again (one seed for both made the region exactly "score < p")
RD_SCORE_OFFSET = 104_729


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


def explain(loaded: LoadedModel, text: str, pair: str | None = None, cfg: AttributionConfig | None = None,
            gold=None, label_names=(), max_length: int | None = None) -> Explanation:
    """Tokenize one example (truncating to the model's limit) and attribute every layer and head with `cfg`."""
    cfg = replace(cfg or AttributionConfig(), layers=None)
    batch, tokens, truncated = encode_example(loaded, text, pair, max_length=max_length)
    labels = None
    if gold is not None:
        dtype = torch.float if loaded.model.config.num_labels == 1 else torch.long
        labels = torch.tensor([gold], dtype=dtype, device=loaded.device)
    if cfg.target == "gold" and labels is None:
        raise UserError("attributing the gold label needs an example with a label: pick one from the data set, "
                        "or attribute the predicted label")
    gen = torch.Generator().manual_seed(int(cfg.seed) + RD_SCORE_OFFSET) if cfg.method == "rd" else None
    att = attribute(loaded, batch, cfg, labels=labels, generator=gen)
    return Explanation(text=text, pair=pair if pair and not is_blank(pair) else None, tokens=tokens, truncated=truncated,
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
    if expl.cfg.method == "rd" and mode == "high":  # RD: a per-key coin (core.algorithm.region_mode)
        mode = region_mode(expl.cfg)
    region, dropped = make_drops(expl.attribution.scores, expl.key_mask, p, q, mode, ties, fixed_rate, gen)
    region, dropped = region[:, 0], dropped[:, 0]  # [L, H, T, T]
    in_masked = torch.zeros(n_layers, dtype=torch.bool, device=region.device)
    in_masked[masked] = True
    in_masked = in_masked.view(-1, 1, 1, 1)  # [L, 1, 1, 1]
    return Mask(region & in_masked, dropped & in_masked, masked, p, q, mode, int(seed))
