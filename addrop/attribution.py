"""Per-head attribution of the attention maps, paper Eq. 2-5: GA, IGA, AA, RD (native backend).

All methods return an `Attribution` whose tensors are shaped [L, B, H, T, T] over the selected layers. The
model is put in eval mode for the attribution passes and its previous mode is restored afterwards.

Where IGA differs from the AD-DROP reference code: the reference recomputes the argmax at every scaled step and
scales the attention *output* (so each step's gradient is weighted by k/m). Here the target class is fixed
from the unscaled pass and the gradient is taken with respect to the scaled probabilities themselves, which is
Eq. 3 (and Hao et al. 2021) exactly; the m copies run batched, sharing the layers below the scaled one.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .attention import eval_mode
from .batching import length_groups, worth_grouping
from .config import AttributionConfig, resolve_layers
from .errors import UserError
from .models import model_inputs

_ELEMENT_BUDGET = 60_000_000  # attention-sized floats per IGA chunk (bounds memory)


@dataclass
class Attribution:
    """Attention and attribution of one batch. Tensors are [L, B, H, T, T] over `layers`."""

    method: str
    backend: str
    layers: list[int]
    attention: torch.Tensor  # [L, B, H, T, T] post-softmax probabilities of the unmasked pass
    scores: torch.Tensor  # [L, B, H, T, T] attribution
    logits: torch.Tensor  # [B, C]
    target: torch.Tensor  # [B] the class attributed (regression: the gold score, or nan for the prediction)
    key_mask: torch.Tensor  # [B, T] real tokens
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


@contextmanager
def frozen(model):
    """Parameters stop requiring grad for the duration: attribution passes then record no graph for weight
    gradients (about 12% faster on CPU). Only for a model no other thread uses at the time (a training copy):
    `requires_grad` is shared state."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def target_classes(logits: torch.Tensor, cfg: AttributionConfig, labels: torch.Tensor | None) -> torch.Tensor:
    """The class c whose logit F_c is attributed: pseudo (argmax, Eq. 4), gold, or one fixed label."""
    if logits.shape[-1] == 1:  # regression: F = -loss against the gold score when there is one
        if labels is not None:
            return labels.to(logits.dtype).view(-1)
        return torch.full((logits.shape[0],), float("nan"), device=logits.device)
    if cfg.target == "pseudo":
        return logits.argmax(-1)
    if cfg.target == "gold":
        if labels is None:
            raise UserError("target 'gold' needs the example's label; use target 'pseudo' or a fixed label")
        return labels.long().view(-1).to(logits.device)
    if not 0 <= cfg.label < logits.shape[-1]:
        raise UserError(f"label {cfg.label} is out of range: the model has {logits.shape[-1]} classes")
    return torch.full((logits.shape[0],), cfg.label, dtype=torch.long, device=logits.device)


def objective(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of F: the target logit, or for regression the negative squared error (the paper's
    appendix) or, with no gold score, the prediction itself. Examples do not interact, so one backward of the sum
    gives every example's own gradient."""
    if logits.shape[-1] == 1:
        pred = logits.view(-1)
        if torch.isnan(target).any():
            return pred.sum()
        return -((pred - target) ** 2).sum()
    return logits.gather(1, target.view(-1, 1)).sum()


def _forward(model, inputs: dict, ctrl, **settings):
    """One attribution pass: only the logits and the kept probabilities are read, so the top layer may skip every
    row but the first where the model allows it (attention.py, `cls_only`)."""
    with ctrl.pass_settings(cls_only=True, **settings) as s:
        logits = model(**inputs).logits
        return logits, dict(s.probs)


def attribute(loaded, batch: dict, cfg: AttributionConfig, labels: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> Attribution:
    """Attribution of `batch` (tokenizer output on the model's device) with the method and backend of `cfg`."""
    if cfg.backend == "captum":
        from .captum_backend import attribute_captum

        return attribute_captum(loaded, batch, cfg, labels)
    model, ctrl = loaded.model, loaded.model.addrop
    layers = resolve_layers(cfg.layers, ctrl.num_layers)
    inputs = model_inputs(model, batch)
    if labels is None and "labels" in batch:
        labels = batch["labels"]
    key_mask = batch["attention_mask"].bool()
    t0 = time.perf_counter()
    with eval_mode(model):
        if cfg.method in PACKED and ctrl.can_pack and worth_grouping(key_mask, 1):
            att, scores, logits, target = _assemble(_packed(model, ctrl, inputs, key_mask, layers, cfg, labels),
                                                    key_mask.shape)
        elif cfg.method in SUB_BATCH and worth_grouping(key_mask, SUB_BATCH[cfg.method]):
            att, scores, logits, target = _assemble(_by_length(model, ctrl, inputs, key_mask, layers, cfg, labels),
                                                    key_mask.shape)
        else:
            att, scores, logits, target = _one(model, ctrl, inputs, layers, cfg, labels, generator)
    att, scores = real_only(att, key_mask), real_only(scores, key_mask)
    return Attribution(cfg.method, "native", layers, att, scores, logits.detach(), target, key_mask,
                       time.perf_counter() - t0)


def real_only(t: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Zero every position whose query row or key is a pad: [L, B, H, T, T]. Gradients there are not zero in a
    padded pass (a pad key's value vector still exists) but mean nothing, and a length-split pass never has them."""
    km = key_mask.bool()
    return t * (km[None, :, None, :, None] & km[None, :, None, None, :]).to(t.dtype)


SUB_BATCH = {"ga": 4, "aa": 4, "iga": 1}  # CPU: examples per attribution pass when a padded batch is split
# by length (batching.length_groups: same numbers, ~1e-6; GA ~40% and IGA ~60% less work on typical GLUE
# batches than one padded pass; on a GPU one big pass is faster). IGA goes one example at a time: its m copies already make the batch, and any padding is paid m
# times (measured on SST-2 batches of 16, minilm, one thread: IGA 35.0 s at 1 and 2, 44.8 s at 4, 53.1 s at 8;
# GA 1.68 s at 1, 0.85 s at 4, 0.95 s at 8)


PACKED = ("ga", "aa")  # CPU: methods whose padded batches run as one packed sequence where the model allows it
PACK_TOKENS = 512  # real tokens per packed pass at most: the packed maps are [H, N, N], quadratic in N


def _packed(model, ctrl, inputs, key_mask, layers, cfg, labels):
    """Passes over the real tokens of the batch packed into sequences of at most PACK_TOKENS (packing.py): same
    numbers as the per-example passes up to rounding, in large matrix products."""
    from .packing import groups, pack, unpack

    T = key_mask.shape[1]
    for idx in groups(key_mask.sum(-1), PACK_TOKENS):
        packed, starts, n = pack({k: v[idx] for k, v in inputs.items()}, key_mask[idx], ctrl.pack_offset)
        a, s, lg, tg = _one(model, ctrl, packed, layers, cfg, labels[idx] if labels is not None else None, None,
                            cls_rows=starts)
        yield idx, unpack(a, starts, n, T), unpack(s, starts, n, T), lg, tg


def _by_length(model, ctrl, inputs, key_mask, layers, cfg, labels):
    """Passes over length-sorted sub-batches, each cut to its own longest example."""
    T = key_mask.shape[1]
    for idx, t in length_groups(key_mask, SUB_BATCH[cfg.method]):
        sub = {k: (v[idx][:, :t] if v.dim() == 2 and v.shape[1] == T else v[idx]) for k, v in inputs.items()}
        yield (idx, *_one(model, ctrl, sub, layers, cfg, labels[idx] if labels is not None else None, None))


def _assemble(pieces, shape) -> tuple:
    """(idx, att, scores, logits, target) per group, maps [L, b, H, t, t] with t <= T -> the batch's
    (att, scores, logits, target), maps [L, B, H, T, T] zero on pads (as a padded pass gives for scores)."""
    B, T = shape
    att = scores = logits = target = None
    for idx, a, s, lg, tg in pieces:
        if att is None:
            att = a.new_zeros(a.shape[0], B, a.shape[2], T, T)
            scores = s.new_zeros(att.shape)
            logits = lg.new_zeros(B, lg.shape[-1])
            target = tg.new_zeros(B)
        t = a.shape[-1]
        att[:, idx, :, :t, :t] = a
        scores[:, idx, :, :t, :t] = s
        logits[idx] = lg.detach()
        target[idx] = tg
    return att, scores, logits, target


def _one(model, ctrl, inputs, layers, cfg, labels, generator, **settings):
    """One attribution pass over a batch as given (`settings`: extra controller settings, e.g. cls_rows)."""
    if cfg.method == "ga":
        return _ga(model, ctrl, inputs, layers, cfg, labels, **settings)
    if cfg.method == "iga":
        return _iga(model, ctrl, inputs, layers, cfg, labels)
    with torch.no_grad():
        logits, probs = _forward(model, inputs, ctrl, keep=layers, **settings)
    att = torch.stack([probs[l] for l in layers]).detach()
    target = target_classes(logits, cfg, labels)
    if cfg.method == "aa":
        return att, att.clone(), logits, target
    gen_device = generator.device if generator is not None else att.device
    return att, torch.rand(att.shape, generator=generator, device=gen_device).to(att.device), logits, target


def _ga(model, ctrl, inputs, layers, cfg, labels, **settings):
    """Eq. 2/5: dF_c/dA for every head of every selected layer in ONE backward call, no parameter gradients."""
    with torch.enable_grad():
        logits, probs = _forward(model, inputs, ctrl, keep=layers, **settings)
        target = target_classes(logits, cfg, labels)
        kept = [probs[l] for l in layers]
        grads = torch.autograd.grad(objective(logits, target), kept, allow_unused=True)
    scores = torch.stack([g if g is not None else torch.zeros_like(a) for g, a in zip(grads, kept)])
    return torch.stack([a.detach() for a in kept]), scores, logits, target


def iga_chunk(cfg: AttributionConfig, batch_size: int, heads: int, length: int, layers_above: int) -> int:
    if cfg.iga_chunk:
        return min(cfg.iga_chunk, cfg.steps)
    per_copy = batch_size * heads * length * length * max(layers_above, 1) * 3
    return max(1, min(cfg.steps, _ELEMENT_BUDGET // max(per_copy, 1)))


def _iga(model, ctrl, inputs, layers, cfg, labels):
    """Eq. 3 per layer: A/m * sum_k dF_c(k/m A)/dA, other layers unscaled, c fixed from the unscaled pass.

    The unscaled pass is the k = m term of every layer at once (one backward, as GA). The other m - 1 scaled
    copies run as one batch (in chunks), repeated at the scaled layer's input so the layers below it are
    computed once. Models without a per-layer module list (ALBERT) repeat the whole input instead.
    """
    m = cfg.steps
    # k = m: the unscaled pass, which also fixes the target class
    att, total_m, logits, target = _ga(model, ctrl, inputs, layers, cfg, labels)  # [L, B, H, T, T]
    B, H, T = att.shape[1], att.shape[2], att.shape[-1]
    scores = torch.zeros_like(att)
    n_layers = ctrl.num_layers
    for i, l in enumerate(layers):
        c_max = iga_chunk(cfg, B, H, T, n_layers - l)
        total = total_m[i].clone()
        for k0 in range(1, m, c_max):
            ks = torch.arange(k0, min(k0 + c_max, m), device=att.device, dtype=att.dtype)
            c = len(ks)
            scale = (ks / m).repeat_interleave(B)  # [c*B], copy-major like Tensor.repeat
            if ctrl.can_expand:
                run_inputs, expand = inputs, {l: c}
            else:
                run_inputs, expand = {k: v.repeat(c, *([1] * (v.dim() - 1))) for k, v in inputs.items()}, {}
            with torch.enable_grad():
                out, kept = _forward(model, run_inputs, ctrl, keep=[l], scale={l: scale}, expand=expand)
                (g,) = torch.autograd.grad(objective(out, target.repeat(c)), [kept[l]])
            total += g.view(c, B, H, T, T).sum(0)
        scores[i] = att[i] * total / m
    return att, scores, logits.detach(), target


def encode(loaded, text: str, pair: str | None = None, max_length: int | None = None):
    """Tokenize one example for the explorer. Returns (batch on device, tokens, truncated: bool)."""
    if not text or not text.strip():
        raise UserError("the text is empty: type a sentence")
    if pair is not None and not pair.strip():
        pair = None
    limit = min(max_length or loaded.max_length, loaded.max_length)
    tok = loaded.tokenizer
    enc = tok(text, pair, truncation=False, return_tensors="pt")
    truncated = enc["input_ids"].shape[1] > limit
    if truncated:  # tokenized again only when too long (the tokenizer knows how to cut a pair)
        enc = tok(text, pair, truncation=True, max_length=limit, return_tensors="pt")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    batch = {k: v.to(loaded.device) for k, v in enc.items()}
    return batch, tokens, truncated
