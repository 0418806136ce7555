"""The native/Captum cross-check of one explanation: both backends' scores and their difference."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ...core.attribution import attribute
from ...core.objective import Attribution
from ...engine.models import LoadedModel
from .explain import Explanation


@dataclass
class BackendComparison:
    native: Attribution
    captum: Attribution
    diff: np.ndarray  # [L, H, T, T] captum - native
    max_abs_diff: float
    max_rel_diff: float  # max |captum - native| / max |native| over real positions
    native_seconds: float
    captum_seconds: float


def compare_backends(loaded: LoadedModel, expl: Explanation) -> BackendComparison:
    """Attribute the explanation's example with both backends and compare the scores (the Captum backend computes
    config.CAPTUM_METHODS only: AttributionConfig refuses the others with a UserError)."""
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
