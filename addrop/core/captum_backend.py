"""GA and IGA through Captum, attributing at the controller's per-layer `nn.Identity` probes.

GA: `LayerGradientXActivation(multiply_by_inputs=False)` over all probes at once (the gradient only).
IGA: `LayerIntegratedGradients` at one probe per layer. Captum builds the IG baseline in input space, so at the
probe a baseline of token inputs would be the attention of an all-zero input, not 0. Instead the forward
function takes a per-example gate that multiplies the probabilities: input 1, baseline 0, `riemann_right` with
m steps interpolates the probe's activation as k/m * A, which is Eq. 3 exactly. A list of probes would scale all
layers at once (a different quantity), so layers are attributed one by one.
"""
from __future__ import annotations

import time

import torch

from ..config import AttributionConfig, resolve_layers
from ..errors import UserError
from .objective import Attribution, objective, real_only, target_classes
from .passes import eval_mode, iga_chunk, model_inputs


def _captum():
    try:
        import captum.attr as ca
    except ImportError:
        raise UserError("the Captum backend needs captum: pip install 'captum>=0.9'") from None
    return ca


def attribute_captum(model, batch: dict, cfg: AttributionConfig, labels: torch.Tensor | None = None) -> Attribution:
    """GA or IGA of `batch` through Captum (`cfg.method`; the other methods are refused by AttributionConfig)."""
    ca = _captum()
    ctrl = model.addrop
    layers = resolve_layers(cfg.layers, ctrl.num_layers)
    inputs = model_inputs(model, batch)
    names = list(inputs)
    if labels is None and "labels" in batch:
        labels = batch["labels"]
    key_mask = batch["attention_mask"].bool()
    B = key_mask.shape[0]
    t0 = time.perf_counter()
    with eval_mode(model):
        with torch.no_grad(), ctrl.pass_settings(record=layers) as s:
            logits = model(**inputs).logits
            att = torch.stack([s.probs[l] for l in layers])  # [L, B, H, T, T]
        target = target_classes(logits, cfg, labels)
        regression = logits.shape[-1] == 1

        # Captum hooks the modules it attributes at: these probes are this call's own (the model's shared
        # ctrl.probes would also fire for other threads' passes through a cached model)
        probes = {l: torch.nn.Identity() for l in layers}

        def forward(gate, *args, layer=None):
            n = gate.shape[0]
            kw = dict(zip(names, args))
            tgt = target.repeat(n // B)
            with ctrl.pass_settings(gate={layer: gate} if layer is not None else None, probes=probes):
                out = model(**kw).logits
            if regression:  # Captum selects no target: return F per example
                return torch.stack([objective(out[i:i + 1], tgt[i:i + 1]) for i in range(n)])
            return out

        ones = torch.ones(B, device=key_mask.device, dtype=att.dtype)
        tgt_arg = None if regression else target
        args = tuple(inputs[k] for k in names)
        if cfg.method == "ga":
            algo = ca.LayerGradientXActivation(forward, [probes[l] for l in layers], multiply_by_inputs=False)
            res = algo.attribute(ones, target=tgt_arg, additional_forward_args=args)
            res = res if isinstance(res, (list, tuple)) else [res]
            scores = torch.stack([r.detach() for r in res])
        else:
            per_layer = []
            H, T = att.shape[2], att.shape[-1]
            for l in layers:
                algo = ca.LayerIntegratedGradients(lambda g, *a, _l=l: forward(g, *a, layer=_l), probes[l],
                                                   multiply_by_inputs=True)
                # the m scaled copies run in chunks, as the native backend's (memory bounded the same way)
                chunk = iga_chunk(cfg, B, H, T, ctrl.num_layers - l)
                r = algo.attribute(ones, baselines=torch.zeros_like(ones), target=tgt_arg,
                                   additional_forward_args=args, n_steps=cfg.steps, method="riemann_right",
                                   internal_batch_size=B * chunk if chunk < cfg.steps else None)
                per_layer.append(r.detach())
            scores = torch.stack(per_layer)
    att, scores = real_only(att, key_mask), real_only(scores, key_mask)
    return Attribution(cfg.method, "captum", layers, att, scores, logits.detach(), target, key_mask,
                       time.perf_counter() - t0)
