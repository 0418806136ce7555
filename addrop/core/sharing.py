"""IGA copies that share the scaled layer's probabilities (the controller's `share` setting, attention.py).

Where an encoder layer's attention block adds the residual inside a module of its own, `attention.output(context,
residual)` (BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT), the c scaled copies of one layer need not recompute its
Q, K, V and softmax: the attention function computes the probabilities once, repeats them c times, and returns
the c contexts folded into the heads; the pre-hook here unfolds them to c * N rows at `attention.output` and
repeats the residual. `install_share` hooks a model only where that gives the same logits and gradients as
repeating the layer's input (`expand`); DistilBERT (residual added outside any module) and ALBERT (no per-layer
module list) keep the other paths.
"""
from __future__ import annotations

import torch
from torch import nn

from .passes import check_batch, eval_mode, has_submodule


# The module of an encoder layer whose inputs are the attention context and the residual, (hidden_states,
# input_tensor): where `share` unfolds the copies (BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT).
_SHARE_AT = "attention.output"
_SHARE_ARGS = ("hidden_states", "input_tensor")


def _share_hook(module, args, kwargs):
    """Forward pre-hook on a layer's `attention.output`: where that layer shared its probabilities across c copies
    (`share`), unfold the context [N, T, c * D] (memory order [N, T, c, D]) to [c * N, T, D], copy-major, and
    repeat the residual [N, T, D] c times. Registered before the top layer's cut (`_cls_hook`), which then cuts
    the c * N rows as it does expanded ones."""
    c = module._addrop_ctrl.state.share.get(module._addrop_layer)
    if not c:
        return None
    args, kwargs = list(args), dict(kwargs)

    def update(i, fn):
        if i < len(args):
            args[i] = fn(args[i])
        else:
            kwargs[_SHARE_ARGS[i]] = fn(kwargs[_SHARE_ARGS[i]])

    def unfold(ctx):  # [N, T, c * D] -> [c * N, T, D]
        N, T, CD = ctx.shape
        return ctx.view(N, T, c, CD // c).permute(2, 0, 1, 3).reshape(c * N, T, CD // c)

    update(0, unfold)
    update(1, lambda res: res.repeat(c, *([1] * (res.dim() - 1))))
    return tuple(args), kwargs


def install_share(model, ctrl, layers: nn.ModuleList | None) -> list:
    """Hook every layer's `attention.output` if the model has one and IGA's copies give the same logits and
    gradients sharing the scaled layer's probabilities as expanding its input (checked on a random input);
    otherwise leave the model alone. Returns the hooks. Call after the top layer's cut is hooked (attention.py):
    these hooks are prepended, so the copies are unfolded before the cut."""
    if layers is None or not all(has_submodule(layer, _SHARE_AT) for layer in layers):
        return []
    hooks = [layer.get_submodule(_SHARE_AT).register_forward_pre_hook(_share_hook, with_kwargs=True, prepend=True)
             for layer in layers]
    ctrl.can_share = True
    if _share_is_exact(model, ctrl):
        return hooks
    for h in hooks:
        h.remove()
    ctrl.can_share = False
    return []


def _share_is_exact(model, ctrl) -> bool:
    """A scaled two-copy IGA pass at the bottom and the top layer, sharing vs expanding: the same logits, kept
    probabilities and gradients at them."""
    ids, mask = check_batch(model, [7, 5], 7, seed=0)
    param = next(model.parameters())
    scale = torch.tensor([0.25, 0.25, 0.75, 0.75], device=ids.device, dtype=param.dtype)  # [c * N], copy-major

    def run(layer, how):
        with ctrl.pass_settings(record=[layer], scale={layer: scale}, cls_only=True, **{how: {layer: 2}}) as s:
            logits = model(input_ids=ids, attention_mask=mask).logits
            kept = s.probs[layer]
            (g,) = torch.autograd.grad(logits[:, 0].sum() - logits[:, -1].sum(), [kept], allow_unused=True)
        return logits.detach(), kept.detach(), g

    def same(a, b):
        if a is None or b is None:
            return a is None and b is None
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))

    try:
        with eval_mode(model), torch.enable_grad():
            for layer in sorted({0, ctrl.num_layers - 1}):
                a, b = run(layer, "expand"), run(layer, "share")
                if not all(same(x, y) for x, y in zip(a, b)):
                    return False
    except Exception:  # noqa: BLE001 - a layer that does not take the folded context: no sharing
        return False
    return True
