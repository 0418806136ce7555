"""The benchmark's training steps: one model, one optimizer, the trainer's own step (`engine.training.train_step`)
in the layout a run uses, with or without AD-DROP masks. measure.py, lengths.py and gpu.py time these."""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from ...config import AttributionConfig, TrainConfig, resolve_layers
from ...core.algorithm import drops_for
from ...core.masking import make_drops
from ...core.objective import objective, target_classes
from ...core.passes import eval_mode, model_inputs
from ...engine.models import LoadedModel
from ...engine.precision import autocast
from ...engine.training import make_optimizer, train_step, use_packing
from .timing import sync


class Stepper:
    """One model, one optimizer: the trainer's own step (`engine.training.train_step`), with or without masks."""

    def __init__(self, loaded: LoadedModel, total_steps: int, seed: int = 0, precision: str = "fp32"):
        self.loaded = loaded
        self.precision = precision  # resolved: fp32 or bf16 (engine/precision.py), every pass of every step
        self.cfg = TrainConfig(model=loaded.name, strategy="addrop", seed=seed)
        self.opt, self.sched = make_optimizer(loaded.model, self.cfg, max(total_steps, 10))
        self.gen = torch.Generator(device=loaded.device).manual_seed(seed + 1)
        self.drop_ms: dict[str, list[float]] = {}
        self.packed = use_packing(self.cfg.layout, loaded)  # the layout a run on this model and device uses

    def acfg(self, method: str, layers) -> AttributionConfig:
        """The attribution settings an addrop run with this method and these layers trains with."""
        return replace(self.cfg, attribution=AttributionConfig(method=method, layers=layers)).masking()

    def train_step(self, batch: dict, drops=None) -> float:
        """The trainer's step: masked (or plain) forward, backward, clipping, optimizer and scheduler."""
        model = self.loaded.model
        model.train()
        return train_step(model, batch, self.opt, self.sched, self.cfg.max_grad_norm, drops, self.packed,
                          self.precision)

    def addrop_step(self, batch: dict, acfg: AttributionConfig, key: str | None = None) -> float:
        """The trainer's AD-DROP step: Algorithm 1's masks for the batch, then the masked step."""
        t0 = time.perf_counter()
        with autocast(self.precision, self.loaded.device):
            drops, _ = drops_for(self.loaded.model, batch, acfg, self.gen, packed=self.packed)
        if key is not None:
            sync(self.loaded.device)
            self.drop_ms.setdefault(key, []).append((time.perf_counter() - t0) * 1000.0)
        return self.train_step(batch, drops)

    def reference_ga_step(self, batch: dict, acfg: AttributionConfig) -> float:
        """GA the way the reference code does it: one autograd call per layer (same padding as ours)."""
        with autocast(self.precision, self.loaded.device):
            scores = reference_ga(self.loaded, batch, acfg)
        layers = resolve_layers(acfg.layers, self.loaded.num_layers)
        key_mask = batch["attention_mask"].bool()
        _, dropped = make_drops(scores, key_mask, acfg.p, acfg.q, acfg.mode, acfg.ties, acfg.fixed_rate, self.gen)
        return self.train_step(batch, {l: dropped[i] for i, l in enumerate(layers)})


def reference_ga(loaded: LoadedModel, batch: dict, acfg: AttributionConfig) -> torch.Tensor:
    """[L, B, H, T, T] gradients of the target logit with respect to each layer's attention, one
    `torch.autograd.grad` call per layer on a retained graph (the reference implementation's way)."""
    model, ctrl = loaded.model, loaded.model.addrop
    layers = resolve_layers(acfg.layers, ctrl.num_layers)
    with eval_mode(model), torch.enable_grad():
        with ctrl.pass_settings(record=layers) as s:
            logits = model(**model_inputs(model, batch)).logits
            probs = dict(s.probs)
        obj = objective(logits, target_classes(logits, acfg, batch.get("labels")))
        grads = [torch.autograd.grad(obj, [probs[l]], retain_graph=True)[0] for l in layers]
    return torch.stack(grads)
