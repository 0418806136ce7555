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

from dataclasses import dataclass

import torch

from .masking import RealPairs, segment_pairs
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


# ------------------------------------------------------------------------------------ packed training batches
# Training and evaluation passes pack a padded batch into ROWS of the batch's own width W (its longest example):
# the examples are placed in rows first-fit by decreasing length, several short ones sharing a row, each kept
# apart by the row's block-diagonal mask and with positions restarting at 0 (plus the model's offset). The
# linear layers then run on (almost) only real tokens, and attention never costs more than the padded batch's
# (R <= B rows of W keys). The top layer keeps each example's first row (`cls_rows`, flat indices into the
# R * W packed positions), so the logits are [B, C] in the batch's order.


class RowPacking:
    """Where each example of a batch goes: row `row[b]`, positions `start[b]` .. `start[b] + n[b]` of `width`.
    `src` / `dst`: for every real token, its (example, position) in the padded batch and its flat packed index."""

    def __init__(self, key_mask: torch.Tensor):
        km = key_mask.bool()
        n = km.sum(-1)  # [B] real tokens per example
        self.width = int(n.max()) if len(n) else 0
        free: list[int] = []  # room left in each row
        row, start = [0] * len(n), [0] * len(n)
        for b in sorted(range(len(n)), key=lambda i: -int(n[i])):  # first fit, longest first
            k = int(n[b])
            r = next((i for i, f in enumerate(free) if f >= k), None)
            if r is None:
                free.append(self.width)
                r = len(free) - 1
            row[b], start[b] = r, self.width - free[r]
            free[r] -= k
        self.rows = len(free)
        dev = km.device
        self.n = n
        self.row = torch.tensor(row, dtype=torch.long, device=dev)  # [B]
        self.start = torch.tensor(start, dtype=torch.long, device=dev)  # [B]
        self.src = km.nonzero(as_tuple=True)  # (example [N], position [N]) of each real token, example-major
        seg = self.src[0]
        self.pos = torch.arange(len(seg), device=dev) - (torch.cumsum(n, 0) - n)[seg]  # [N] position in example
        self.dst = self.row[seg] * self.width + self.start[seg] + self.pos  # [N] flat packed index
        self.cls_rows = self.row * self.width + self.start  # [B] each example's first token, packed

    def inputs(self, inputs: dict, offset: int, pad_id: int = 0) -> dict:
        """Padded inputs [B, T] -> packed [R, W] with position ids and an additive [R, 1, W, W] mask."""
        R, W = self.rows, self.width
        out = {}
        for k, v in inputs.items():
            if k == "attention_mask" or v.dim() != 2 or v.shape[0] != len(self.n):
                continue
            flat = v.new_full((R * W,), pad_id if k == "input_ids" else 0)
            flat[self.dst] = v[self.src]
            out[k] = flat.view(R, W)
        pos = torch.full((R * W,), offset, dtype=torch.long, device=self.row.device)
        pos[self.dst] = self.pos + offset
        out["position_ids"] = pos.view(R, W)
        seg = self.segments()
        dtype = torch.get_default_dtype()
        apart = seg[:, :, None] != seg[:, None, :]  # [R, W, W]
        out["attention_mask"] = torch.zeros(apart.shape, dtype=dtype, device=apart.device).masked_fill(
            apart, torch.finfo(dtype).min)[:, None]  # [R, 1, W, W]
        return out

    def segments(self) -> torch.Tensor:
        """[R, W] the example of every packed slot, or (pads) a negative segment of the slot's own row, -1 - r, so
        no row of the attention mask is all masked."""
        if not hasattr(self, "_segments"):
            R, W = self.rows, self.width
            seg = (-1 - torch.arange(R, device=self.row.device)).repeat_interleave(W)  # [R * W]
            seg[self.dst] = self.src[0]
            self._segments = seg.view(R, W)
        return self._segments

    def pairs(self) -> RealPairs:
        """The real (query row, key) pairs of the packed maps [L, R, H, W, W]: each example's block (masking.py)."""
        return segment_pairs(self.segments(), self.n)

    def drops(self, drops: dict | None) -> dict | None:
        """{layer: bool [B, H, T, T]} in padded coordinates -> {layer: bool [R, H, W, W]} (each example's block on
        its row; nothing else dropped: other examples' keys are masked anyway)."""
        if not drops:
            return drops
        d = torch.stack(list(drops.values()))  # [L, B, H, T, T]
        out = d.new_zeros((len(drops), self.rows, d.shape[2], self.width, self.width))
        for b, r, s, n, q, k in self._blocks():
            out[:, r, :, s:s + n, s:s + n] = d[:, b][..., q, k]
        return dict(zip(drops, out.unbind(0)))

    def unpack(self, t: torch.Tensor, T: int) -> torch.Tensor:
        """[L, R, H, W, W] packed maps -> [L, B, H, T, T], each example's block, zero elsewhere (pads)."""
        out = t.new_zeros(t.shape[0], len(self.n), t.shape[2], T, T)
        for b, r, s, n, q, k in self._blocks():
            out[:, b][..., q, k] = t[:, r, :, s:s + n, s:s + n]
        return out

    def _blocks(self) -> list[tuple]:
        """Per example b: (b, its row, its start there, its length n, q, k), q and k indexing its real positions in
        the padded batch as query rows and keys: slices where they are contiguous (right or left padding), index
        tensors otherwise. One slice copy per example is 4x faster than gathering every (query, key) pair."""
        if not hasattr(self, "_block_cache"):
            ex, pos = self.src
            blocks = []
            for b in range(len(self.n)):
                t = pos[ex == b]  # [n] real positions of example b
                n = len(t)
                if n and int(t[-1]) - int(t[0]) == n - 1:
                    q = k = slice(int(t[0]), int(t[0]) + n)
                else:
                    q, k = t[:, None], t
                blocks.append((b, int(self.row[b]), int(self.start[b]), n, q, k))
            self._block_cache = blocks
        return self._block_cache


@dataclass
class RowDrops:
    """AD-DROP masks drawn where a packed step's scores are (core.algorithm.drops_for with packed=True): {layer: bool
    [R, H, W, W]} on the rows of `layout`, so the training pass takes them without moving them from the padded
    shape and back."""

    layout: RowPacking
    masks: dict

    def padded(self, T: int) -> dict:
        """The same masks as {layer: bool [B, H, T, T]} of the padded batch (for a padded pass)."""
        if not self.masks:
            return {}
        out = self.layout.unpack(torch.stack(list(self.masks.values())), T)  # [L, B, H, T, T]
        return dict(zip(self.masks, out.unbind(0)))


def pack_rows(model, inputs: dict, key_mask: torch.Tensor, lay: RowPacking | None = None):
    """(RowPacking, packed inputs, controller settings) of a padded batch's model inputs (`lay`: its packing, when
    already made): under those settings the logits of `model(**packed)` are [B, C] in the batch's order."""
    lay = lay if lay is not None else RowPacking(key_mask)
    if len(lay.n) != key_mask.shape[0]:
        raise ValueError(f"a packing of {len(lay.n)} examples for a batch of {key_mask.shape[0]}")
    pad = getattr(model.config, "pad_token_id", 0)
    packed = lay.inputs(inputs, model.addrop.pack_offset, pad if isinstance(pad, int) and pad >= 0 else 0)
    return lay, packed, {"cls_rows": lay.cls_rows, "packed_rows": lay.rows}


def packed_pass(model, batch: dict, drops: dict | RowDrops | None = None):
    """(inputs, controller settings) of one packed training or evaluation pass over a padded batch, with the masks
    `drops` ({layer: bool [B, H, T, T]}, or already on the rows: RowDrops); the logits of `model(**inputs)` under
    those settings are [B, C] in the batch's order."""
    if isinstance(drops, RowDrops):
        lay, inputs, settings = pack_rows(model, model_inputs(model, batch), batch["attention_mask"], drops.layout)
        return inputs, dict(settings, drops=drops.masks)
    lay, inputs, settings = pack_rows(model, model_inputs(model, batch), batch["attention_mask"])
    return inputs, dict(settings, drops=lay.drops(drops))
