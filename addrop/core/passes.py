"""Leaf helpers for the core's forward passes: which inputs a model takes, eval mode, frozen weights, and the
random input of the install-time checks. Nothing here knows about AD-DROP itself.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch
from torch import nn

_PARAMS: dict[type, frozenset] = {}


def forward_params(cls) -> frozenset:
    """The argument names of `cls.forward` (cached per class)."""
    if cls not in _PARAMS:
        _PARAMS[cls] = frozenset(inspect.signature(cls.forward).parameters)
    return _PARAMS[cls]


def has_submodule(module: nn.Module, path: str) -> bool:
    """Whether `module.get_submodule(path)` finds something."""
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


def model_inputs(model, batch: dict) -> dict:
    """Keep only the tensors this model's forward accepts (DistilBERT takes no token_type_ids; RoBERTa-style
    models with a single token type must not get segment ids from a BERT tokenizer)."""
    params = forward_params(type(model))
    out = {k: v for k, v in batch.items() if k in params and k != "labels"}
    if "token_type_ids" in out and getattr(model.config, "type_vocab_size", 2) < 2:
        out.pop("token_type_ids")
    return out


def set_mode(model, training: bool) -> None:
    """`model.train(training)`. nn.Module.train walks every submodule through Module.__setattr__ (0.7 ms on minilm,
    twice per attribution pass); where no submodule overrides train() (transformers' own override only acts with
    kernels in use) the flags are set directly, which is all Module.train does then."""
    mods = list(model.modules())
    if getattr(model, "use_kernels", False) or any(type(m).train not in _PLAIN_TRAIN for m in mods):
        model.train(training)
        return
    for m in mods:
        m.__dict__["training"] = training


def _plain_train() -> frozenset:
    out = {nn.Module.train}
    try:
        from transformers import PreTrainedModel
        out.add(PreTrainedModel.train)
    except ImportError:  # pragma: no cover - transformers is a requirement
        pass
    return frozenset(out)


_PLAIN_TRAIN = _plain_train()


@contextmanager
def eval_mode(model):
    """Passes inside run without dropout; the caller's mode comes back afterwards (the reference's IGA leaves the
    model in eval mode, silently turning dropout off for the rest of the epoch)."""
    was = model.training
    set_mode(model, False)
    try:
        yield
    finally:
        set_mode(model, was)


@contextmanager
def pass_mode(model, which: str = "eval"):
    """Attribution passes run in eval mode (no dropout) or, with which="train", in train mode (dropout on, as the
    reference code's first pass); the caller's mode comes back afterwards."""
    was = model.training
    set_mode(model, which == "train")
    # gradient checkpointing (active in train mode only) would run a reentrant layer's first forward without a
    # graph, so the recorded probabilities would get no gradient: attribution passes run without it
    ckpt = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for m in ckpt:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in ckpt:
            m.gradient_checkpointing = True
        set_mode(model, was)


@contextmanager
def frozen(model):
    """Parameters stop requiring grad for the duration: attribution passes then record no graph for weight
    gradients (faster; see docs/performance.md). Only for a model no other thread uses at the time (a training
    copy): `requires_grad` is shared state."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def check_batch(model, lengths: list[int], width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids [B, width] and an attention mask [B, width] with the given real lengths, on the model's
    device: the input of the install-time checks."""
    device = next(model.parameters()).device
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    first_id = 5  # above the special tokens of the supported tokenizers ([PAD], [UNK], [CLS], [SEP], [MASK])
    ids = torch.randint(first_id, max(vocab, first_id + 1), (len(lengths), width),
                        generator=torch.Generator().manual_seed(seed))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.to(device), mask.to(device)


_ELEMENT_BUDGET = 60_000_000  # attention-sized floats per IGA chunk (bounds memory)
_TENSORS_PER_LAYER = 3  # attention-sized tensors an IGA copy keeps per layer above the scaled one: scores,
# probabilities and their gradient


def iga_chunk(cfg, batch_size: int, heads: int, length: int, layers_above: int) -> int:
    """IGA copies per batched pass (cfg.iga_chunk, or as many as the memory budget allows): the native backend's
    chunks and the Captum backend's internal batch size both come from here."""
    if cfg.iga_chunk:
        return min(cfg.iga_chunk, cfg.steps)
    per_copy = batch_size * heads * length * length * max(layers_above, 1) * _TENSORS_PER_LAYER
    return max(1, min(cfg.steps, _ELEMENT_BUDGET // max(per_copy, 1)))
