"""Exports of one explanation: tensors as NPZ, long-form CSV, and the explorer's settings as JSON."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import torch

from ...config import AttributionConfig
from .explain import Explanation, Mask


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
