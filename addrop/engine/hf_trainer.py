"""AD-DROP inside a user's own training script: `ADDropTrainer`, a `transformers.Trainer` with one extra argument.

    from addrop import ADDropConfig, ADDropTrainer

    trainer = ADDropTrainer(model=model, args=training_args, train_dataset=..., eval_dataset=...,
                            addrop=ADDropConfig(p=0.3, q=0.3, method="ga", task="sst-2", cross_tuning=True))
    trainer.train()

Everything else is the Trainer a user knows: the same arguments, optimizer, scheduler, logging, callbacks,
checkpoints and evaluation. On an AD-DROP epoch (with cross-tuning the even epochs 2, 4, ... counting from 1;
without it every epoch) each training batch first gets its attribution (GA by default, pseudo label, model in
eval mode, no parameter gradients), the Eq. 6-7 masks are drawn from it, and the loss is the one of the masked
forward pass (Algorithm 1). The masks are pinned to their layers for the whole `training_step`, forward and
backward, so gradient checkpointing (reentrant or not) recomputes the masked forward. On a CPU the masked steps
run packed (``layout="auto"``; core/packing.py: each batch's real tokens in rows of its own width, the same loss
and gradients as the padded pass to rounding) where the model, the batch and the setup allow it: no gradient
checkpointing, right padding, and nothing but input_ids, attention_mask, token_type_ids and [B] labels in the
batch; elsewhere they run padded, as the Trainer's. Evaluation, prediction and plain steps are the Trainer's own
and never mask. With ``addrop=None`` or ``enabled=False`` the class is exactly `transformers.Trainer` (the model is
not even touched). Layers default to the paper's for ``task`` (ADDropConfig), all layers without one.

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
import warnings
from dataclasses import asdict, dataclass, fields

import torch
from torch.utils.data import IterableDataset
from transformers import Trainer

from ..config import (LAYOUTS, PAPER, AttributionConfig, check_seed, is_csv_task, paper_layers, parse_layers,
                      resolve_layers)
from ..core.algorithm import drops_for, is_addrop_epoch
from ..core.attention import install
from ..core.grouping import right_padded
from ..core.packing import packed_pass
from ..errors import UserError
from .tasks import TASKS, get_task


def _known_task(name: str) -> bool:
    """A GLUE task or the demo set (in any spelling get_task takes), or a CSV's."""
    if is_csv_task(name):
        return True
    try:
        get_task(name)
    except UserError:
        return False
    return True


PACKABLE_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids", "labels"})


@dataclass
class ADDropConfig:
    """AD-DROP settings for `ADDropTrainer`.

    enabled: False gives the plain Trainer. method: ga | iga | aa | rd (the attribution, Eq. 2-5). p: the candidate
    region, the top share of each attention row by attribution (Eq. 6). q: the probability that a candidate is
    dropped (Eq. 7). layers: "paper" (the paper's layers for `task`; all without one), None / "all", or indices
    such as (0,) or "0,3". target: pseudo (the predicted class) | gold (the example's label). steps: IGA's m.
    cross_tuning: plain epochs 1, 3, ... and AD-DROP epochs 2, 4, ... (Algorithm 1); off: every epoch masked.
    seed: the mask draws' seed (None: the Trainer's). task: the GLUE task whose paper layers "paper" means.
    attribution_pass: eval (no dropout) | train (dropout on, as the reference code). seed_per_example: each
    example's masks from its own seed, so data-parallel runs match one process. layout: auto | packed | padded
    batches for the masked steps (auto: packed on a CPU where the model allows it)."""

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
    # each example's masks from its own seed (the run's seed, its place in the global batch order): the draws
    # then do not depend on the number of processes, so data-parallel AD-DROP epochs match one process's
    seed_per_example: bool = False
    # the masked steps' batches: auto = packed on a CPU where allowed (see the module docstring), packed = wherever
    # allowed, padded = as the Trainer's
    layout: str = "auto"

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if self.seed is not None:
            check_seed(self.seed)
        if self.target == "label":
            raise UserError("ADDropConfig attributes target 'pseudo' (the predicted class) or 'gold' (the example's "
                            "label); a fixed class ('label') is for attribute and train (--target label --label K)")
        self.layers = parse_layers(self.layers)
        if self.layers == PAPER:
            self.layers = paper_layers(self.task)
            if self.task is not None and not _known_task(self.task):
                warnings.warn(f"ADDropConfig: task {self.task!r} is not one addrop knows ({', '.join(TASKS)}), so "
                              "the paper's layers do not apply: AD-DROP goes in every layer. Set layers to choose.",
                              stacklevel=3)
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
                       attribution_pass=a.attribution_pass, layout=value.layout)
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
        self._addrop_micro = 0  # masked micro-batches so far (seed_per_example)
        self._addrop_packed: tuple[dict, dict] | None = None  # this step's packed inputs and controller settings
        self.addrop_packed_steps = 0  # masked steps that ran packed
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
        seeds = self._example_seeds(batch["input_ids"].shape[0]) if self.addrop_config.seed_per_example else None
        return drops_for(unwrapped, batch, acfg, self._generator(device), example_seeds=seeds)

    def _example_seeds(self, b: int) -> list[int]:
        """Per example: the run's seed and the example's place in the global order of training examples
        (micro-batch count x global batch + rank x local batch + index), the same in one process or several
        (with equal local batches, as the Trainer's sharded loader gives)."""
        world, rank = max(1, self.args.world_size), self.args.process_index
        base = self._addrop_micro * world * b + rank * b
        self._addrop_micro += 1
        seed = self.addrop_config.seed if self.addrop_config.seed is not None else self.args.seed
        return [(int(seed) + 1) * 1_000_003 + base + i for i in range(b)]

    # ------------------------------------------------------------------------------------------- overrides
    def training_step(self, model, inputs, num_items_in_batch=None):
        """On an AD-DROP epoch: the masks first (attribution pass), then the Trainer's own step with the masks
        pinned to their layers for the whole step, forward and backward, so a backward that re-runs the forward
        (gradient checkpointing, reentrant or not) applies them too."""
        drops = self._addrop_step_drops(model, inputs) if self.addrop_enabled else None
        if drops is None:
            return super().training_step(model, inputs, num_items_in_batch=num_items_in_batch)
        unwrapped = self.accelerator.unwrap_model(model)
        batch = self._prepare_inputs(inputs)
        if self._addrop_can_pack(unwrapped, batch):
            packed, settings = packed_pass(unwrapped, batch, drops)  # the masks move to the packed rows too
            self._addrop_packed = (dict(packed, labels=batch["labels"]), settings)
            self.addrop_packed_steps += 1
            try:
                return super().training_step(model, inputs, num_items_in_batch=num_items_in_batch)
            finally:
                self._addrop_packed = None
        with unwrapped.addrop.pin(drops):
            return super().training_step(model, inputs, num_items_in_batch=num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The Trainer's own loss; in a packed masked step, of the packed batch (logits [B, C] in the batch's
        order, so label smoothing and a compute_loss_func see what they would see padded)."""
        if self._addrop_packed is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        packed, settings = self._addrop_packed
        with self.accelerator.unwrap_model(model).addrop.pass_settings(**settings):
            return super().compute_loss(model, dict(packed), return_outputs, num_items_in_batch)

    def _addrop_can_pack(self, model, batch: dict) -> bool:
        """Whether this masked step can run packed (see the module docstring)."""
        layout, ctrl = self.addrop_config.layout, model.addrop
        if layout == "padded" or (layout == "auto" and batch["input_ids"].device.type != "cpu"):
            return False
        labels = batch.get("labels")
        checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
        return (ctrl.can_pack and not ctrl.per_token and not checkpointing
                and set(batch) <= PACKABLE_KEYS and "attention_mask" in batch
                and isinstance(labels, torch.Tensor) and labels.dim() == 1 and right_padded(batch["attention_mask"]))

    def train(self, *args, **kwargs):
        for message in self.addrop_warnings():
            warnings.warn(message, stacklevel=2)
        return super().train(*args, **kwargs)

    def addrop_warnings(self) -> list[str]:
        """Why this run would never reach an AD-DROP epoch (cross-tuning masks epochs 2, 4, ... only), so that
        it does not stay silently plain: an IterableDataset (no epochs the Trainer can count) or a run of at
        most one epoch."""
        cfg = self.addrop_config
        if not (self.addrop_enabled and cfg.cross_tuning) or self.train_dataset is None:
            return []
        ds = self.train_dataset
        if isinstance(ds, IterableDataset) or not hasattr(ds, "__len__"):
            return ["AD-DROP with cross-tuning masks epochs 2, 4, ... only, and an IterableDataset has no epochs "
                    "the Trainer can count: no step will be masked. Use a map-style dataset, or "
                    "ADDropConfig(cross_tuning=False) to mask every step."]
        per_step = max(1, self.args.train_batch_size * max(1, self.args.world_size)
                       * max(1, self.args.gradient_accumulation_steps))
        steps_per_epoch = max(1, math.ceil(len(ds) / per_step))
        total = self.args.max_steps if self.args.max_steps > 0 else math.ceil(self.args.num_train_epochs
                                                                             * steps_per_epoch)
        if total <= steps_per_epoch:
            return [f"this run is {total} optimizer steps, at most one epoch ({steps_per_epoch} steps), and "
                    "AD-DROP with cross-tuning masks epochs 2, 4, ... only: no step will be masked. Train for "
                    "more than one epoch, or use ADDropConfig(cross_tuning=False)."]
        return []

    def _addrop_step_drops(self, model, inputs) -> dict | None:
        epoch = self.current_epoch()
        self._addrop_last_epoch = epoch
        if not self.addrop_config.is_addrop_epoch(epoch):
            return None
        drops, share = self.addrop_drops(model, self._prepare_inputs(inputs))
        self._addrop_shares.append(float(share))
        if not self.addrop_epochs or self.addrop_epochs[-1] != epoch:
            self.addrop_epochs.append(epoch)
        return drops

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self.addrop_enabled and "loss" in logs and self._addrop_last_epoch is not None:
            logs = dict(logs)
            logs["addrop_epoch"] = float(self.addrop_config.is_addrop_epoch(self._addrop_last_epoch))
            shares, self._addrop_shares = self._addrop_shares, []
            logs["addrop_dropped_share"] = sum(shares) / len(shares) if shares else 0.0
        return super().log(logs, *args, **kwargs)


__all__ = ["ADDropTrainer", "ADDropConfig"]
