"""One fine-tuning loop for every strategy: vanilla, AD-DROP (with cross-tuning) and the prior experiment.

    vanilla               plain fine-tuning
    addrop                Algorithm 1: attribution (GA/IGA/AA/RD, pseudo label by default) -> Eq. 6-7 masks ->
                          masked second pass; with cross-tuning, plain epochs 1, 3, 5, ... and AD-DROP 2, 4, ...
    drop-high/-low/-random  the prior experiment (Section 2.2): gold-label GA in the chosen layers, a fixed share
                          p of each row dropped (the highest, the lowest, or random keys), at every epoch
    none                  the prior experiment's baseline: no drop, same bookkeeping (clean train loss)

The loaded model is never changed: a run trains a private copy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..config import TrainConfig, resolve_layers
from ..core.algorithm import drops_for, masks_in_epoch
from ..core.packing import RowDrops, packed_pass
from ..core.passes import eval_mode, model_inputs
from ..errors import UserError
from .batching import batches, encode, num_batches
from .data import hold_out, k_shot, load_splits, subset  # noqa: F401 (load_splits: callers import it here)
from .metrics import compute_metrics, half_metrics
from .models import LoadedModel, clone_model, load_model
from .precision import autocast, resolve_precision
from .preflight import check_schedule
from .probes import ProbeRecorder, choose_probes
from .runs import RunWriter, read_metrics, safe_run_id
from .weights import epoch_weights_file
from .selection import BestTracker


@dataclass
class Callbacks:
    """Hooks a caller (CLI, app worker) passes in. `should_stop` is checked before every step."""

    on_step: Callable[[dict], None] | None = None
    on_epoch: Callable[[dict], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_note: Callable[[str], None] | None = None  # a remark on the settings (e.g. a max length capped)


@dataclass
class Data:
    spec: object
    train: object
    dev: object
    train_enc: list
    dev_enc: list
    truncated: int = 0
    note: str | None = None  # e.g. max length capped to the model's


@dataclass
class RunResult:
    id: str
    path: str
    status: str  # finished | stopped | failed
    reason: str | None
    metrics: list[dict] = field(default_factory=list)


def data_key(cfg: TrainConfig) -> tuple:
    """The settings prepare_data reads: runs with the same key (and tokenizer and splits) share their Data."""
    return (cfg.seed, cfg.split_seed, cfg.holdout, cfg.shots, cfg.train_size, cfg.dev_size, cfg.max_length)


def prepare_data(cfg: TrainConfig, tokenizer, splits=None) -> Data:
    """Load the task, take the seeded subsets, tokenize (dynamic padding happens per batch)."""
    spec, train, dev = splits if splits is not None else load_splits(cfg)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    if cfg.holdout:  # validate on training examples held out (the same slice for every seed), never on dev
        train, dev = hold_out(train, cfg.holdout, split_seed)
    if cfg.shots:
        train = k_shot(train, cfg.shots, cfg.seed)
    there = f"{cfg.shots}-shot sampling gives" if cfg.shots else "there are"  # k-shot picks the training set
    notes = [f"{what} size {n:,} is more than the {len(split):,} examples {where}: all of them are used"
             for what, n, split, where in (("training", cfg.train_size, train, there),
                                           ("dev", cfg.dev_size, dev, "there are"))
             if n is not None and n > len(split)]
    train = subset(train, cfg.train_size, cfg.seed)
    dev = subset(dev, cfg.dev_size, split_seed)
    tr, dv = encode(tokenizer, train, cfg.max_length), encode(tokenizer, dev, cfg.max_length)
    if getattr(tr, "note", None):  # the max length capped to the model's
        notes.append(tr.note)
    return Data(spec, train, dev, tr, dv, getattr(tr, "truncated", 0) + getattr(dv, "truncated", 0),
                "; ".join(notes) or None)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def forward(model, batch: dict, drops: dict | RowDrops | None = None, packed: bool = False):
    """The model's output on a padded batch, with the masks `drops` ({layer: bool [B, H, T, T]}, or RowDrops already
    on the packed rows) or without; `packed`: through the packed layout (core/packing.py: the same logits and
    gradients without the padding)."""
    if packed:
        inputs, settings = packed_pass(model, batch, drops)
    else:
        if isinstance(drops, RowDrops):
            drops = drops.padded(batch["attention_mask"].shape[1])
        inputs, settings = model_inputs(model, batch), {"drops": drops}
    with model.addrop.pass_settings(**settings):
        return model(**inputs, labels=batch["labels"])


def train_step(model, batch: dict, optimizer, scheduler, max_grad_norm: float,
               drops: dict | RowDrops | None = None, packed: bool = False, precision: str = "fp32") -> float:
    """One optimisation step, with the AD-DROP masks `drops` ({layer: bool [B, H, T, T]}, or RowDrops) or without:
    the masked (or plain) forward pass (in `precision`, engine/precision.py), backward, gradient clipping, optimizer and
    scheduler. The trainer and the benchmark both run this, so the benchmark times what users run. Raises
    NonFiniteLoss before the backward pass."""
    with autocast(precision, next(model.parameters()).device):
        loss = forward(model, batch, drops, packed).loss
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"the training loss became {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_gradients(model, max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


def clip_gradients(model, max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_`, the same gradients bit for bit (for a finite norm). On the CPU, where
    reading the norm costs no device sync, the gradients are left as they are when the norm is within `max_norm`
    (clip_grad_norm_ multiplies them all by exactly 1 then: a pass over every gradient, 3% of a minilm step).
    Returns the total norm."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params or params[0].device.type != "cpu":
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if bool(max_norm / (norm + 1e-6) < 1.0):  # clip_grad_norm_'s own coefficient, before it is clamped to 1
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def batch_step(model, batch: dict, optimizer, scheduler, max_grad_norm: float, acfg=None, mask_gen=None,
               packed: bool = False, precision: str = "fp32") -> tuple[float, float | None]:
    """One batch of an epoch (as `batches` yields it): moved to the model's device, its AD-DROP masks drawn when
    `acfg` (the run's masking, TrainConfig.masking()) is given, then train_step; both passes in `precision`.
    (loss, dropped share or None)."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    drops, share = None, None
    if acfg is not None:
        with autocast(precision, device):
            drops, share = drops_for(model, batch, acfg, mask_gen, packed=packed)
    return train_step(model, batch, optimizer, scheduler, max_grad_norm, drops, packed, precision), share


def use_packing(layout: str, loaded: LoadedModel) -> bool:
    """Whether training and evaluation passes run packed: `layout` auto packs on the CPU where the model allows it
    (core/packing.py; on a GPU padding costs little), packed wherever it allows it, padded never."""
    ctrl = getattr(loaded.model, "addrop", None)
    can = ctrl is not None and ctrl.can_pack and not ctrl.per_token
    return can and (layout == "packed" or (layout == "auto" and loaded.device.type == "cpu"))


def evaluate(loaded: LoadedModel, enc, labels, spec, batch_size: int, packed: bool = False,
             precision: str = "fp32") -> tuple[float, dict]:
    """Mean loss and GLUE metrics, eval mode, no masks."""
    loss, preds = predict(loaded, enc, labels, spec, batch_size, packed, precision)
    return loss, compute_metrics(spec, preds, list(labels))


def predict(loaded: LoadedModel, enc, labels, spec, batch_size: int, packed: bool = False,
            precision: str = "fp32") -> tuple[float, list]:
    """Mean loss and the predictions (class ids, or scores for regression), eval mode, no masks."""
    model = loaded.model
    total, n, preds = 0.0, 0, []
    with eval_mode(model), torch.no_grad(), autocast(precision, loaded.device):
        for batch in batches(enc, labels, batch_size, is_regression=spec.is_regression):
            batch = {k: v.to(loaded.device) for k, v in batch.items()}
            out = forward(model, batch, packed=packed)
            bs = batch["labels"].shape[0]
            total += out.loss.item() * bs
            n += bs
            logits = out.logits.float()
            preds += (logits.view(-1) if spec.is_regression else logits.argmax(-1)).tolist()
    return total / max(n, 1), preds


def make_optimizer(model, cfg: TrainConfig, total_steps: int):
    """AdamW (no weight decay on biases and LayerNorm) with a linear warm-up, then a linear decay over
    `total_steps` or (lr_schedule constant) a constant rate."""
    from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, fused=_fused_ok(decay + no_decay))
    warmup = int(cfg.warmup_ratio * total_steps)
    if cfg.lr_schedule == "constant":
        return opt, get_constant_schedule_with_warmup(opt, warmup)
    sched = get_linear_schedule_with_warmup(opt, warmup, total_steps)
    return opt, sched


def _fused_ok(params) -> bool:
    """Fused AdamW (one kernel over all parameters; Hugging Face's default optimizer too) where torch has it:
    CPU and CUDA, floating point; the updates agree with the per-parameter loop to rounding (its speed-up is in
    docs/performance.md)."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def train(cfg: TrainConfig, runs_dir: str = "runs", loaded: LoadedModel | None = None, data: Data | None = None,
          callbacks: Callbacks | None = None) -> RunResult:
    """Fine-tune a private copy of `loaded` (or of `cfg.model`) and write the run record under `runs_dir`. Refuses
    (UserError) an AD-DROP run whose schedule never masks (one cross-tuned epoch), before anything loads.

    Returns a RunResult: id, path (the run's folder: config.json, metrics.jsonl, status.json, and
    model.safetensors with save_weights), status (finished | stopped | failed), reason and metrics (one dict per
    epoch). Read records back with `addrop.engine.runs`: load_run(path), list_runs(folder), and runs_table or
    metrics_frame for tables; load a kept model with load_model("run:PATH")."""
    check_schedule([cfg])
    cb = callbacks or Callbacks()
    if data is None:
        splits = load_splits(cfg)
        if loaded is None:
            loaded = load_model(cfg.model, cfg.device, num_labels=splits[0].num_labels, seed=cfg.seed)
        data = prepare_data(cfg, loaded.tokenizer, splits)
    elif loaded is None:
        loaded = load_model(cfg.model, cfg.device, num_labels=data.spec.num_labels, seed=cfg.seed)
    spec = data.spec
    heads = loaded.model.config.num_labels
    if heads != spec.num_labels:
        raise UserError(f"the model's head has {heads} outputs but task {spec.name} needs {spec.num_labels}")
    if len(data.train) == 0 or len(data.dev) == 0:
        raise UserError("the training or dev set is empty")
    layers = resolve_layers(cfg.attribution.layers, loaded.num_layers)  # range check before anything is written
    precision = resolve_precision(cfg.precision, loaded.device)
    probes = choose_probes(len(data.dev), cfg.probes, cfg.probe_ids)
    run_id = safe_run_id(cfg.name, prefix=cfg.strategy)
    config = cfg.record()  # what the run does (the mask settings it uses), not only what was asked
    if data.note:
        config["max_length"], config["note"] = getattr(data.train_enc, "max_length", cfg.max_length), data.note
        if cb.on_note:
            cb.on_note(data.note)
    config.update(name=run_id, num_train=len(data.train), num_dev=len(data.dev), truncated=data.truncated,
                  device=str(loaded.device), task_name=spec.name, primary_metric=spec.primary_metric,
                  num_labels=heads, model=loaded.name,
                  layout="packed" if use_packing(cfg.layout, loaded) else "padded",  # what "auto" came to
                  precision=precision)
    writer = RunWriter(runs_dir, run_id, config)
    # the best epoch's weights are copied only to be written: without save_weights nothing keeps them
    tracker = BestTracker(cfg.stop_on, spec.primary_metric, cfg.early_stopping, cfg.keep_best and cfg.save_weights,
                          keep_last=cfg.save_weights)  # a stopped run still writes its last finished epoch's
    with writer:
        recorder = None
        if probes:  # the fully kept layer: the first one the run masks (layer 0 for plain runs)
            recorder = ProbeRecorder(writer.path, loaded.tokenizer, data.dev, probes,
                                     layers[0] if cfg.uses_masks else 0, loaded.device)
        status, reason = _loop(cfg, loaded, data, writer, cb, tracker, recorder, precision)
        writer.finish(status, reason, summary=tracker.summary())
    return RunResult(writer.id, str(writer.path), status, reason, read_metrics(writer.path / "metrics.jsonl"))


def _write_stop_weights(cfg: TrainConfig, writer: RunWriter, tracker: BestTracker) -> str:
    """A run that writes its weights and is stopped during an epoch writes those of its best (keep_best) or last
    finished epoch; returns what the stop reason adds about them."""
    if not cfg.save_weights:
        return ""
    state, epoch = tracker.stop_weights()
    if state is None:
        return "; no epoch had finished, so no weights were written"
    writer.save_weights(state)
    tracker.weights_epoch = epoch
    return f"; model.safetensors holds epoch {epoch}'s weights"


def _loop(cfg: TrainConfig, loaded0: LoadedModel, data: Data, writer: RunWriter, cb: Callbacks,
          tracker: BestTracker, recorder: ProbeRecorder | None = None, precision: str = "fp32"):
    torch.manual_seed(cfg.seed)  # dropout
    loaded = clone_model(loaded0)
    model = loaded.model
    if recorder is not None:
        recorder.record(model, 0)  # GA draws no random numbers: the run's numbers are the same with probes
    model.train()
    spec = data.spec
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    mask_gen = torch.Generator(device=loaded.device).manual_seed(cfg.seed + 1)
    steps_per_epoch = num_batches(len(data.train), cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt, sched = make_optimizer(model, cfg, total)
    acfg = cfg.masking()
    packed = use_packing(cfg.layout, loaded0)
    step = 0
    t_start = time.perf_counter()
    try:
        for epoch in range(1, cfg.epochs + 1):
            masked = acfg is not None and masks_in_epoch(cfg, epoch)
            t0 = time.perf_counter()
            loss_sum, n_sum, shares = 0.0, 0, []
            for batch in batches(data.train_enc, data.train.labels, cfg.batch_size, shuffle=True,
                                 generator=shuffle_gen, is_regression=spec.is_regression,
                                 by_length=cfg.group_by_length):
                if cb.should_stop and cb.should_stop():
                    return "stopped", f"stopped by request during epoch {epoch}" + _write_stop_weights(
                        cfg, writer, tracker)
                try:
                    loss, share = batch_step(model, batch, opt, sched, cfg.max_grad_norm, acfg if masked else None,
                                             mask_gen, packed, precision)
                except NonFiniteLoss as e:
                    return "failed", f"{e} at epoch {epoch}, step {step + 1}"
                if share is not None:
                    shares.append(share)
                step += 1
                bs = batch["labels"].shape[0]
                loss_sum += loss * bs
                n_sum += bs
                if cb.on_step:
                    cb.on_step({"epoch": epoch, "step": step, "total_steps": total, "loss": loss,
                                "fraction": step / total, "elapsed": time.perf_counter() - t_start})
            seconds = time.perf_counter() - t0
            dev_loss, preds = predict(loaded, data.dev_enc, data.dev.labels, spec, cfg.batch_size * 2, packed,
                                      precision)
            metrics = compute_metrics(spec, preds, list(data.dev.labels))
            rec = {"epoch": epoch, "addrop_epoch": masked, "train_loss": loss_sum / max(n_sum, 1),
                   "dev_loss": dev_loss, **{f"dev_{k}": v for k, v in metrics.items()}, "seconds": seconds,
                   "dropped_share": (sum(shares) / len(shares)) if shares else 0.0,
                   **half_metrics(spec, preds, list(data.dev.labels))}  # half_a_*, half_b_*: two fixed halves
            if cfg.wants_clean_loss:
                rec["clean_train_loss"], _ = evaluate(loaded, data.train_enc, data.train.labels, spec,
                                                      cfg.batch_size * 2, packed, precision)
            if recorder is not None:
                recorder.record(model, epoch)
            if cfg.save_every_epoch:
                writer.save_weights(model.state_dict(), epoch_weights_file(epoch))
            writer.log_epoch(rec)
            if cb.on_epoch:
                cb.on_epoch(dict(rec))
            if tracker.update(rec, model):  # early stopping on the dev loss or metric (engine/selection.py)
                break
        if cfg.save_weights:
            writer.save_weights(tracker.state if tracker.state is not None else model.state_dict())
        return "finished", None
    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
        if not _is_oom(e):
            raise
        del opt, model, loaded
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return "failed", ("out of memory on the GPU: try a smaller batch size or max length "
                          f"(now {cfg.batch_size} and {cfg.max_length})")
