"""Packed attribution passes: the real tokens of a padded batch as ONE sequence, examples kept apart by a
block-diagonal attention mask, positions restarting at each example.

On a CPU, padding costs as much as real tokens, and small per-example matrix products use the cores badly. A
packed pass does the linear layers on exactly the real tokens in large products (measured in
docs/performance.md), and the attention of each
example is the diagonal block of the packed map: masked keys get exactly zero probability, so the numbers are
those of the per-example passes up to rounding. The top layer keeps only each example's first row (the
controller's `cls_rows`), which makes the logits [B, C] as usual.

`supported(model, ctrl)` finds the position-id convention (BERT counts from 0, RoBERTa-style models from
padding_idx + 1) by comparing packed and padded logits once at install; a model where neither matches, or whose
forward takes no position_ids, is simply not packed.
"""
from __future__ import annotations

import torch

from .passes import eval_mode, forward_params, model_inputs, check_batch

MAX_PACK_TOKENS = 512  # real tokens per packed pass at most: the packed maps are [H, N, N], quadratic in N


def pack(inputs: dict, key_mask: torch.Tensor, offset: int):
    """inputs: tensors [B, T] (input_ids, token_type_ids, ...) -> (packed inputs [1, N] with a [1, 1, N, N]
    additive mask and position ids, starts [B], lengths [B]); N = number of real tokens."""
    km = key_mask.bool()
    n = km.sum(-1)  # [B]
    starts = torch.cumsum(n, 0) - n  # [B] first packed position of each example
    out = {k: v[km][None] for k, v in inputs.items() if k != "attention_mask" and v.dim() == 2 and v.shape == km.shape}
    seg = torch.repeat_interleave(torch.arange(len(n), device=km.device), n)  # [N] example of each token
    pos = torch.arange(int(n.sum()), device=km.device) - starts[seg]  # [N] position within its example
    out["position_ids"] = (pos + offset)[None]
    dtype = torch.get_default_dtype()
    apart = seg[:, None] != seg[None, :]  # [N, N] keys of another example
    out["attention_mask"] = torch.zeros(apart.shape, dtype=dtype, device=km.device).masked_fill(
        apart, torch.finfo(dtype).min)[None, None]
    return out, starts, n


def groups(lengths: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
    """Indices of consecutive examples, each group holding at most max_tokens real tokens (an example longer than
    that on its own)."""
    out, start, total = [], 0, 0
    for i, k in enumerate(lengths.tolist()):
        if i > start and total + k > max_tokens:
            out.append(torch.arange(start, i, device=lengths.device))
            start, total = i, 0
        total += k
    out.append(torch.arange(start, len(lengths), device=lengths.device))
    return out


def unpack(t: torch.Tensor, starts: torch.Tensor, n: torch.Tensor, T: int) -> torch.Tensor:
    """[L, 1, H, N, N] packed maps -> [L, B, H, T, T], each example's diagonal block, zero on pads."""
    L, _, H = t.shape[:3]
    out = t.new_zeros(L, len(n), H, T, T)
    for b, (s, k) in enumerate(zip(starts.tolist(), n.tolist())):
        out[:, b, :, :k, :k] = t[:, 0, :, s:s + k, s:s + k]
    return out


def supported(model, ctrl) -> int | None:
    """The position-id offset under which packed logits equal padded ones, or None (then no packing)."""
    if not ctrl.can_cls_only or "position_ids" not in forward_params(type(model)):
        return None
    ids, mask = check_batch(model, [6, 4, 2], 6, seed=1)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    pad = getattr(model.config, "pad_token_id", None)
    offsets = [0] + ([pad + 1] if isinstance(pad, int) and pad >= 0 else [])
    try:
        with eval_mode(model), torch.no_grad():
            with ctrl.pass_settings():
                want = model(**model_inputs(model, batch)).logits
            for off in offsets:
                packed, starts, _ = pack(model_inputs(model, batch), mask.bool(), off)
                with ctrl.pass_settings(cls_rows=starts):
                    got = model(**packed).logits
                if got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-5):
                    return off
    except Exception:  # noqa: BLE001 - a model that cannot take a packed batch is simply not packed
        return None
    return None
