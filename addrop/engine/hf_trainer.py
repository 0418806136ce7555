"""AD-DROP inside a user's own training script: `ADDropTrainer`, a `transformers.Trainer` with one extra argument.

    from addrop import ADDropConfig, ADDropTrainer

    trainer = ADDropTrainer(model=model, args=training_args, train_dataset=..., eval_dataset=...,
                            addrop=ADDropConfig(p=0.3, q=0.3, method="ga", task="sst-2", cross_tuning=True))
    trainer.train()

Everything else is the Trainer a user knows: the same arguments, optimizer, scheduler, logging, callbacks,
checkpoints and evaluation. On an AD-DROP epoch (with cross-tuning the even epochs 2, 4, ... counting from 1;
without it every epoch) each training batch first gets its attribution (GA by default, pseudo label, model in
eval mode, no parameter gradients), the Eq. 6-7 masks are drawn from it, and the loss is the one of the masked
forward pass (Algorithm 1). Evaluation and prediction never mask. With ``addrop=None`` or ``enabled=False`` the
class is exactly `transformers.Trainer` (the model is not even touched).

The model must route its attention through transformers' AttentionInterface (BERT, RoBERTa, ELECTRA,
DistilBERT, ALBERT, XLM-R, CamemBERT); `ADDropTrainer` switches it to addrop's attention function (eager
attention, numerically the same as ``attn_implementation="eager"``) and raises `UnsupportedModelError` (a
UserError) for other models. Checkpoints are the Trainer's own: config.json names no attention implementation,
so they load anywhere without addrop.

Masks are drawn from a generator seeded with ``seed + 1`` (``seed`` defaults to ``TrainingArguments.seed``),
exactly as ``addrop.engine.training.train`` does, so both trainers give the same losses for the same batches.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from transformers import Trainer

from ..config import PAPER, AttributionConfig, paper_layers, parse_layers, resolve_layers
from ..core.algorithm import drops_for, is_addrop_epoch
from ..core.attention import install
from ..errors import UserError


@dataclass
class ADDropConfig:
    """AD-DROP settings for `ADDropTrainer`: attribution method, candidate region p, drop probability q, layers,
    label attributed, IGA steps, cross-tuning, and the seed of the mask draws (None: the Trainer's seed)."""

    enabled: bool = True
    method: str = "ga"  # ga | iga | aa | rd
    p: float = 0.3
    q: float = 0.3
    # "paper" (default) = the paper's layers for `task` (0 for SST-2, MNLI, QNLI, QQP, STS-B; all for CoLA, MRPC,
    # RTE, and all when no task is named); None / "all" = every layer; or e.g. (0,) or "0,3"
    layers: tuple[int, ...] | str | None = PAPER
    target: str = "pseudo"  # pseudo | gold
    steps: int = 20  # IGA steps m
    cross_tuning: bool = True  # plain epochs 1, 3, ...; AD-DROP epochs 2, 4, ...
    seed: int | None = None
    task: str | None = None  # the GLUE task, for the paper's layers
    attribution_pass: str = "eval"  # eval (no dropout) | train (dropout on, as the reference code)

    def __post_init__(self):
        self.layers = parse_layers(self.layers)
        if self.layers == PAPER:
            self.layers = paper_layers(self.task)
        self.attribution()  # validates p, q, method, target, steps, attribution_pass

    def attribution(self, seed: int = 0) -> AttributionConfig:
        return AttributionConfig(method=self.method, backend="native", layers=self.layers, steps=self.steps,
                                 target=self.target, p=self.p, q=self.q, seed=seed,
                                 attribution_pass=self.attribution_pass)

    def is_addrop_epoch(self, epoch: int) -> bool:
        """Epochs count from 1; the cross-tuning schedule of addrop.core.algorithm."""
        return self.enabled and is_addrop_epoch(epoch, self.cross_tuning)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else "all"
        return d

    @classmethod
    def coerce(cls, value) -> "ADDropConfig | None":
        """None, an ADDropConfig, an AttributionConfig, a TrainConfig or a dict -> ADDropConfig (or None)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, AttributionConfig):
            return cls(method=value.method, p=value.p, q=value.q, layers=value.layers, target=value.target,
                       steps=value.steps, attribution_pass=value.attribution_pass)
        if hasattr(value, "attribution") and hasattr(value, "strategy"):  # a TrainConfig
            if value.strategy != "addrop":
                return cls(enabled=False)
            a = value.attribution
            return cls(method=a.method, p=a.p, q=a.q, layers=a.layers, target=a.target, steps=a.steps,
                       cross_tuning=value.cross_tuning, seed=value.seed, task=value.task,
                       attribution_pass=a.attribution_pass)
        if isinstance(value, dict):
            names = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise UserError(f"unknown AD-DROP setting(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
            return cls(**value)
        raise UserError(f"addrop must be an ADDropConfig, an AttributionConfig or a dict, not {type(value).__name__}")


class ADDropTrainer(Trainer):
    """`transformers.Trainer` with AD-DROP. Extra keyword argument: ``addrop`` (ADDropConfig, AttributionConfig,
    dict, or None for a plain Trainer). Adds ``addrop_epoch`` and ``addrop_dropped_share`` to the training logs."""

    def __init__(self, *args, addrop=None, **kwargs):
        self.addrop_config = ADDropConfig.coerce(addrop)
        super().__init__(*args, **kwargs)
        self._addrop_gen: torch.Generator | None = None
        self._addrop_shares: list[float] = []
        self._addrop_last_epoch: int | None = None
        self.addrop_epochs: list[int] = []  # the epochs (from 1) in which masked steps ran
        if self.addrop_enabled and self.args.n_gpu > 1:
            # DataParallel runs replicas in threads, and the mask settings are per thread: they would be lost
            raise UserError(f"AD-DROP cannot run under DataParallel ({self.args.n_gpu} GPUs in one process): launch "
                            "one process per GPU (torchrun or accelerate launch), or make one GPU visible")
        if self.addrop_enabled and self.model is not None:
            self._addrop_install(self.model)

    @property
    def addrop_enabled(self) -> bool:
        return self.addrop_config is not None and self.addrop_config.enabled

    # ------------------------------------------------------------------------------------------------ helpers
    def _addrop_install(self, model):
        model = self.accelerator.unwrap_model(model) if hasattr(self, "accelerator") else model
        ctrl = install(model)  # raises UnsupportedModelError (a UserError) for models we cannot reach
        acfg = self.addrop_config.attribution()
        resolve_layers(acfg.layers, ctrl.num_layers)  # range check now, not at the first AD-DROP step
        return model

    def current_epoch(self) -> int:
        """The running epoch, counting from 1 (from ``state.epoch``, which the Trainer advances per step)."""
        return int(math.floor((self.state.epoch or 0.0) + 1e-9)) + 1

    def _generator(self, device) -> torch.Generator:
        if self._addrop_gen is None:
            seed = self.addrop_config.seed if self.addrop_config.seed is not None else self.args.seed
            self._addrop_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)
        return self._addrop_gen

    def addrop_drops(self, model, inputs: dict):
        """Attribution -> region -> sampled drops for one batch: ({layer: bool [B,H,T,T]}, dropped share)."""
        unwrapped = self.accelerator.unwrap_model(model)
        if not hasattr(unwrapped, "addrop"):
            self._addrop_install(unwrapped)
        batch = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        if "input_ids" not in batch:
            raise UserError("AD-DROP needs input_ids in each training batch")
        if "attention_mask" not in batch:
            batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        device = batch["input_ids"].device
        acfg = self.addrop_config.attribution(seed=self.args.seed)
        return drops_for(unwrapped, batch, acfg, self._generator(device))

    # ------------------------------------------------------------------------------------------- overrides
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not (self.addrop_enabled and model.training):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        epoch = self.current_epoch()
        if not self.addrop_config.is_addrop_epoch(epoch):
            self._addrop_last_epoch = epoch
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        drops, share = self.addrop_drops(model, inputs)
        self._addrop_shares.append(float(share))
        self._addrop_last_epoch = epoch
        if not self.addrop_epochs or self.addrop_epochs[-1] != epoch:
            self.addrop_epochs.append(epoch)
        ctrl = self.accelerator.unwrap_model(model).addrop
        with ctrl.pass_settings(drops=drops):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self.addrop_enabled and "loss" in logs and self._addrop_last_epoch is not None:
            logs = dict(logs)
            logs["addrop_epoch"] = float(self.addrop_config.is_addrop_epoch(self._addrop_last_epoch))
            shares, self._addrop_shares = self._addrop_shares, []
            logs["addrop_dropped_share"] = sum(shares) / len(shares) if shares else 0.0
        return super().log(logs, *args, **kwargs)


__all__ = ["ADDropTrainer", "ADDropConfig"]
