"""Per-head attribution of the attention maps, paper Eq. 2-5: GA, IGA, AA, RD (native backend; `backend="captum"`
hands over to captum_backend.py).

All methods return an `Attribution` whose tensors are shaped [L, B, H, T, T] over the selected layers. The
model is put in eval mode for the attribution passes (`attribution_pass="train"`: train mode, dropout on, the
gradient taken at the probabilities after attention dropout, as the reference code) and its previous mode is
restored afterwards.

Where IGA differs from the AD-DROP reference code: the reference recomputes the argmax at every scaled step and
scales the attention *output* (so each step's gradient is weighted by k/m). Here the target class is fixed
from the unscaled pass and the gradient is taken with respect to the scaled probabilities themselves, which is
Eq. 3 (and Hao et al. 2021) exactly; the m copies run batched, sharing the layers below the scaled one.

How a padded batch is run (`AttributionConfig.path`; the numbers agree to rounding whichever runs, tests check it):

    padded       one pass over the batch as given
    packed       the real tokens as one sequence (packing.py); GA and AA, where the model allows it
    by-length    length-sorted sub-batches of BY_LENGTH examples, each cut to its longest (grouping.py)
    per-example  the same with one example each (IGA: its m copies already make the batch, and padding would
                 be paid m times)
    auto         on a CPU: packed for GA/AA where possible, else by-length; per-example for IGA; padded for
                 RD and on accelerators (one big pass is faster there). docs/performance.md has the measurements.

A batch that is not right-padded (a tokenizer with padding_side="left") always runs padded: the other paths
assume each row's real tokens come first.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..config import AttributionConfig, resolve_layers
from ..errors import UserError
from .captum_backend import attribute_captum
from .grouping import length_groups, right_padded, worth_grouping
from .objective import Attribution, ignore_pads, objective, real_only, target_classes
from .packing import MAX_PACK_TOKENS, groups, pack, pack_rows, unpack
from .passes import iga_chunk, model_inputs, pass_mode

BY_LENGTH = 4  # examples per sub-batch on the by-length path
PACKABLE = ("ga", "aa")  # methods the packed path computes (IGA repeats copies per layer, RD needs no pass)


def as_model(model) -> nn.Module:
    """The torch module of a model or of anything that holds one as `.model` (engine.models.LoadedModel)."""
    return model if isinstance(model, nn.Module) else model.model


def choose_path(model, cfg: AttributionConfig, key_mask: torch.Tensor) -> str:
    """The path `cfg.path` names, or for auto the one that is fastest for this method, model and batch."""
    ctrl = as_model(model).addrop
    if not right_padded(key_mask) or ctrl.per_token:
        # left padding: packing and the cuts to a width assume right padding; a token-classification head has
        # an output (and a target) per token, which the sub-batch paths do not reassemble
        return "padded"
    if cfg.path == "auto":
        if cfg.method in PACKABLE + ("iga",) and ctrl.can_pack and worth_grouping(key_mask, 1):
            return "rows"  # the batch packed into rows of its own width (GA x0.8, IGA x0.8 of the other paths)
        if cfg.method in PACKABLE and worth_grouping(key_mask, BY_LENGTH):
            return "by-length"
        if cfg.method == "iga" and worth_grouping(key_mask, 1):
            return "per-example"
        return "padded"
    if cfg.path == "rows" and not ctrl.can_pack:
        raise UserError("this model cannot run packed passes (its packed logits differ from the padded ones); "
                        "use path auto, padded or by-length")
    if cfg.path == "packed":
        if cfg.method not in PACKABLE:
            raise UserError(f"the packed path computes {' and '.join(PACKABLE)} only, not {cfg.method}")
        if not ctrl.can_pack:
            raise UserError("this model cannot run packed passes (its packed logits differ from the padded ones); "
                            "use path auto, padded or by-length")
    return cfg.path


def attribute(model, batch: dict, cfg: AttributionConfig, labels: torch.Tensor | None = None,
              generator: torch.Generator | None = None, *, pack_tokens: int = MAX_PACK_TOKENS,
              attention: bool = True, keep_rows: bool = False) -> Attribution:
    """Attribution of `batch` (tokenizer output on the model's device) with the method, backend and path of `cfg`.

    `model`: a model with the addrop attention installed (`core.attention.install`), or a loaded model holding
    one. `labels`: the gold labels (target gold; regression), else `batch["labels"]` when present. `generator`:
    RD's random scores. `pack_tokens`: real tokens per packed pass at most. `attention=False` (training masks,
    which read the scores only): the attention maps are not put back into the batch's shape, and the result's
    `attention` is None. `keep_rows` (with attention=False; packed training steps): where the path is "rows", the
    scores stay on the packed rows, [L, R, H, W, W], and `extra["rows"]` holds their packing.RowPacking.
    """
    model = as_model(model)
    if cfg.backend == "captum":
        return attribute_captum(model, batch, cfg, labels)
    ctrl = model.addrop
    layers = resolve_layers(cfg.layers, ctrl.num_layers)
    inputs = model_inputs(model, batch)
    if labels is None and "labels" in batch:
        labels = batch["labels"]
    key_mask = batch["attention_mask"].bool()
    path = choose_path(model, cfg, key_mask)
    t0 = time.perf_counter()
    with pass_mode(model, cfg.attribution_pass):
        if path == "packed":
            pieces = _packed(model, ctrl, inputs, key_mask, layers, cfg, labels, pack_tokens)
            att, scores, logits, target = _assemble(pieces, key_mask.shape)
        elif path == "rows":
            att, scores, logits, target, lay = _packed_rows(model, ctrl, inputs, key_mask, layers, cfg, labels,
                                                            attention, keep_rows and not attention)
        elif path in ("by-length", "per-example"):
            size = BY_LENGTH if path == "by-length" else 1
            pieces = _by_length(model, ctrl, inputs, key_mask, layers, cfg, labels, size, generator)
            att, scores, logits, target = _assemble(pieces, key_mask.shape)
        else:
            att, scores, logits, target = _one(model, ctrl, inputs, layers, cfg, labels, generator)
    if path not in ("rows", "packed"):  # those two put each example's block back onto zeros: pads are 0 already
        att, scores = real_only(att, key_mask), real_only(scores, key_mask)
    if not attention:
        att = None
    extra = {"rows": lay} if path == "rows" and lay is not None else {}
    return Attribution(cfg.method, "native", layers, att, scores, logits.detach(), target, key_mask,
                       time.perf_counter() - t0, path=path, extra=extra)


def _packed(model, ctrl, inputs, key_mask, layers, cfg, labels, pack_tokens):
    """Passes over the real tokens of the batch packed into sequences of at most `pack_tokens` (packing.py): same
    numbers as the per-example passes up to rounding, in large matrix products."""
    T = key_mask.shape[1]
    for idx in groups(key_mask.sum(-1), pack_tokens):
        packed, starts, n = pack({k: v[idx] for k, v in inputs.items()}, key_mask[idx], ctrl.pack_offset)
        a, s, lg, tg = _one(model, ctrl, packed, layers, cfg, labels[idx] if labels is not None else None, None,
                            cls_rows=starts)
        yield idx, unpack(a, starts, n, T), unpack(s, starts, n, T), lg, tg


def _packed_rows(model, ctrl, inputs, key_mask, layers, cfg, labels, attention=True, keep_rows=False):
    """One pass over the batch packed into rows of its own width (packing.RowPacking, as training packs): the
    linear layers on the real tokens only, attention never wider than the padded batch's; IGA's copies are
    repeated per row. Maps come back [L, B, H, T, T], zero on pads (the attention None unless `attention`), and
    the packing None; with `keep_rows`, the scores as they are, [L, R, H, W, W], and the packing."""
    lay, packed, settings = pack_rows(model, inputs, key_mask)
    a, s, lg, tg = _one(model, ctrl, packed, layers, cfg, labels, None, **settings)
    if keep_rows:
        return None, s, lg, tg, lay
    T = key_mask.shape[1]
    return (lay.unpack(a, T) if attention else None), lay.unpack(s, T), lg, tg, None


def _by_length(model, ctrl, inputs, key_mask, layers, cfg, labels, size, generator):
    """Passes over length-sorted sub-batches of `size` examples, each cut to its own longest example."""
    T = key_mask.shape[1]
    for idx, t in length_groups(key_mask, size, force=True):
        sub = {k: (v[idx][:, :t] if v.dim() == 2 and v.shape[1] == T else v[idx]) for k, v in inputs.items()}
        yield (idx, *_one(model, ctrl, sub, layers, cfg, labels[idx] if labels is not None else None, generator))


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


def _forward(model, inputs: dict, ctrl, **settings):
    """One attribution pass: only the logits and the kept probabilities are read, so the top layer may skip every
    row but the first where the model allows it (attention.py, `cls_only`)."""
    with ctrl.pass_settings(cls_only=True, **settings) as s:
        logits = model(**inputs).logits
        return logits, dict(s.probs)


def _one(model, ctrl, inputs, layers, cfg, labels, generator, **settings):
    """One attribution pass over a batch as given (`settings`: extra controller settings, e.g. cls_rows)."""
    if cfg.method == "ga":
        return _ga(model, ctrl, inputs, layers, cfg, labels, **settings)
    if cfg.method == "iga":
        return _iga(model, ctrl, inputs, layers, cfg, labels, **settings)
    with torch.no_grad():
        logits, probs = _forward(model, inputs, ctrl, record=layers, **settings)
    att = torch.stack([probs[l] for l in layers]).detach()
    target = target_classes(logits, cfg, labels)
    if cfg.method == "aa":
        return att, att.clone(), logits, target
    gen_device = generator.device if generator is not None else att.device
    return att, torch.rand(att.shape, generator=generator, device=gen_device).to(att.device), logits, target


def _ga(model, ctrl, inputs, layers, cfg, labels, **settings):
    """Eq. 2/5: dF_c/dA for every head of every selected layer in ONE backward call, no parameter gradients."""
    with torch.enable_grad():
        logits, probs = _forward(model, inputs, ctrl, record=layers, **settings)
        target = ignore_pads(target_classes(logits, cfg, labels), inputs.get("attention_mask"))
        kept = [probs[l] for l in layers]
        grads = torch.autograd.grad(objective(logits, target), kept, allow_unused=True)
    scores = torch.stack([g if g is not None else torch.zeros_like(a) for g, a in zip(grads, kept)])
    return torch.stack([a.detach() for a in kept]), scores, logits, target


def _iga(model, ctrl, inputs, layers, cfg, labels, **settings):
    """Eq. 3 per layer: A/m * sum_k dF_c(k/m A)/dA, other layers unscaled, c fixed from the unscaled pass.

    The unscaled pass is the k = m term of every layer at once (one backward, as GA). The other m - 1 scaled
    copies run as one batch (in chunks) that shares the layers below the scaled one: where the model allows it
    (`ctrl.can_share`: BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT) the scaled layer's probabilities are computed
    once and repeated, so its Q, K, V and softmax are shared too; elsewhere the hidden states are repeated at
    the scaled layer's input (`expand`: DistilBERT), and models without a per-layer module list (ALBERT) repeat
    the whole input.
    """
    m = cfg.steps
    # k = m: the unscaled pass, which also fixes the target class
    att, total_m, logits, target = _ga(model, ctrl, inputs, layers, cfg, labels, **settings)  # [L, B, H, T, T]
    B, H, T = att.shape[1], att.shape[2], att.shape[-1]  # packed rows (settings): B counts rows, T their width
    scores = torch.zeros_like(att)
    n_layers = ctrl.num_layers
    for i, l in enumerate(layers):
        c_max = iga_chunk(cfg, B, H, T, n_layers - l)
        total = total_m[i].clone()
        for k0 in range(1, m, c_max):
            ks = torch.arange(k0, min(k0 + c_max, m), device=att.device, dtype=att.dtype)
            c = len(ks)
            scale = (ks / m).repeat_interleave(B)  # [c*B], copy-major like Tensor.repeat
            if ctrl.can_share:
                run_inputs, spread = inputs, {"share": {l: c}}
            elif ctrl.can_expand:
                run_inputs, spread = inputs, {"expand": {l: c}}
            else:
                run_inputs, spread = {k: v.repeat(c, *([1] * (v.dim() - 1))) for k, v in inputs.items()}, {}
            with torch.enable_grad():
                out, kept = _forward(model, run_inputs, ctrl, record=[l], scale={l: scale}, **spread, **settings)
                copies = target.repeat(c, *([1] * (target.dim() - 1)))  # [c*B] (tokens: [c*B, T])
                (g,) = torch.autograd.grad(objective(out, copies), [kept[l]])
            total += g.view(c, B, H, T, T).sum(0)
        scores[i] = att[i] * total / m
    return att, scores, logits.detach(), target
