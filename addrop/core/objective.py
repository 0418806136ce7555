"""What attribution differentiates: F_c, the logit of class c (paper Eq. 2-5), and which class c is (Eq. 4), plus
the result type every attribution backend returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import AttributionConfig
from ..errors import UserError

IGNORE = -100  # the token label transformers' losses leave out


@dataclass
class Attribution:
    """Attention and attribution of one batch. Tensors are [L, B, H, T, T] over `layers`; the one exception is
    `attribute(..., keep_rows=True)` (packed training steps), whose scores stay on the packed rows, [L, R, H, W, W],
    with their packing in `extra["rows"]` (its `pairs()`, not `key_mask`, describes them) and no attention."""

    method: str
    backend: str
    layers: list[int]
    attention: torch.Tensor  # [L, B, H, T, T] post-softmax probabilities of the unmasked pass
    scores: torch.Tensor  # [L, B, H, T, T] attribution
    logits: torch.Tensor  # [B, C]
    target: torch.Tensor  # [B] the class attributed (regression: the gold score, or nan for the prediction;
    # token classification: [B, T], -100 on pads)
    key_mask: torch.Tensor  # [B, T] real tokens
    seconds: float = 0.0
    path: str = "padded"  # how the batch was run: padded | packed | by-length | per-example (core/attribution.py)
    extra: dict = field(default_factory=dict)


def target_classes(logits: torch.Tensor, cfg: AttributionConfig, labels: torch.Tensor | None) -> torch.Tensor:
    """The class c whose logit F_c is attributed: pseudo (argmax, Eq. 4), gold, or one fixed label."""
    if logits.shape[-1] == 1:  # regression: F = -loss against the gold score when there is one
        if labels is not None:
            return labels.to(logits.dtype).view(-1)
        return torch.full((logits.shape[0],), float("nan"), device=logits.device)
    if cfg.target == "pseudo":
        return logits.argmax(-1)  # [B], or [B, T] for a token-classification head
    if cfg.target == "gold":
        if labels is None:
            raise UserError("target 'gold' needs the example's label; use target 'pseudo' or a fixed label")
        return labels.long().view(logits.shape[:-1]).to(logits.device)
    if not 0 <= cfg.label < logits.shape[-1]:
        raise UserError(f"label {cfg.label} is out of range: the model has {logits.shape[-1]} classes")
    return torch.full(logits.shape[:-1], cfg.label, dtype=torch.long, device=logits.device)


def objective(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of F: the target logit, or for regression the negative squared error (the paper's
    appendix) or, with no gold score, the prediction itself; for token classification the negative
    cross-entropy of every token against its target (the pseudo labels or the gold ones; -100 left out). Examples do not interact, so one backward of the sum
    gives every example's own gradient."""
    if logits.dim() == 3:  # token classification [B, T, C]: F = the negative loss (the paper's Appendix A)
        return -torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.reshape(-1),
                                                  ignore_index=IGNORE, reduction="sum")
    if logits.shape[-1] == 1:
        pred = logits.view(-1)
        if torch.isnan(target).any():
            return pred.sum()
        return -((pred - target) ** 2).sum()
    return logits.gather(1, target.view(-1, 1)).sum()


def ignore_pads(target: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Token-level targets [B, T]: pads (and labels already -100) are left out of F."""
    if target.dim() != 2 or attention_mask is None or attention_mask.shape != target.shape:
        return target
    return target.masked_fill(~attention_mask.bool(), IGNORE)


def real_only(t: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Zero every position whose query row or key is a pad: [L, B, H, T, T]. Gradients there are not zero in a
    padded pass (a pad key's value vector still exists) but mean nothing, and a length-split pass never has them."""
    km = key_mask.bool()
    return t * (km[None, :, None, :, None] & km[None, :, None, None, :]).to(t.dtype)
