"""Our training epochs against what users would run instead: `transformers.Trainer` with
`DataCollatorWithPadding`, in one process, on the same examples, model, batch size, optimizer settings and threads.

Four epochs over the same tokenized examples, each from a fresh copy of the same model (copied outside the timed
range), interleaved per repeat (timing.interleaved):

    ours_vanilla   engine.training's loop: seeded shuffled batches, `train_step` in the layout a run uses
                   (packed on the CPU, core/packing.py)
    ours_ga        the same with an AD-DROP GA mask on every batch (all layers): an AD-DROP epoch of a run
    hf_vanilla     transformers.Trainer(...).train() for one epoch: its sampler, collator, fused AdamW, linear
                   schedule; building the Trainer is timed too (users pay for it)
    hf_addrop      ADDropTrainer (engine/hf_trainer.py), GA, all layers, cross-tuning off (every step masked)

Shared settings: lr 2e-5, weight decay 0.01 (not on biases and LayerNorm), warm-up 10% then linear decay,
clipping 1.0, fused AdamW, no logging, no evaluation, no checkpoints. Ratios are paired per repeat.
"""
from __future__ import annotations

import statistics
import tempfile
from typing import Callable

import torch

from ...config import AttributionConfig, TrainConfig
from ...engine.batching import batches
from ...engine.models import LoadedModel, clone_model
from ...engine.training import batch_step, make_optimizer, num_batches, use_packing
from .timing import interleaved, paired, stats

KEYS = ("ours_vanilla", "ours_ga", "hf_vanilla", "hf_addrop")
RATIOS = {  # ratio name: (numerator, denominator)
    "ours_vs_trainer": ("ours_vanilla", "hf_vanilla"),
    "ours_ga_vs_trainer": ("ours_ga", "hf_vanilla"),
    "addrop_trainer_vs_trainer": ("hf_addrop", "hf_vanilla"),
}


class _Examples(torch.utils.data.Dataset):
    """Tokenized examples as the Trainer's default collator takes them."""

    def __init__(self, enc, labels):
        self.enc, self.labels = enc, labels

    def __len__(self):
        return len(self.enc)

    def __getitem__(self, i):
        return {**self.enc[i], "labels": self.labels[i]}


def _settings(loaded: LoadedModel, batch_size: int, seed: int, precision: str = "fp32") -> TrainConfig:
    return TrainConfig(model=loaded.name, strategy="addrop", batch_size=batch_size, seed=seed, lr=2e-5,
                       precision=precision,
                       weight_decay=0.01, warmup_ratio=0.1, max_grad_norm=1.0, lr_schedule="linear",
                       attribution=AttributionConfig(method="ga", layers=None))


def our_epoch(loaded: LoadedModel, enc, labels, cfg: TrainConfig, masked: bool) -> None:
    """One epoch of engine.training's loop (shuffled batches, the run's layout), masked with GA or not."""
    model = loaded.model
    model.train()
    packed = use_packing(cfg.layout, loaded)
    opt, sched = make_optimizer(model, cfg, num_batches(len(enc), cfg.batch_size))
    shuffle = torch.Generator().manual_seed(cfg.seed)
    gen = torch.Generator(device=loaded.device).manual_seed(cfg.seed + 1)
    acfg = cfg.masking()
    for batch in batches(enc, labels, cfg.batch_size, shuffle=True, generator=shuffle):
        batch_step(model, batch, opt, sched, cfg.max_grad_norm, acfg if masked else None, gen, packed,
                   cfg.precision)


def trainer_epoch(loaded: LoadedModel, enc, labels, cfg: TrainConfig, addrop: bool) -> None:
    """One epoch of transformers.Trainer (or ADDropTrainer with GA on every step) with DataCollatorWithPadding."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    from ...engine.hf_trainer import ADDropTrainer

    with tempfile.TemporaryDirectory(prefix="addrop-bench-") as out:
        args = TrainingArguments(
            output_dir=out, num_train_epochs=1, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
            weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear",
            max_grad_norm=cfg.max_grad_norm, optim="adamw_torch_fused", seed=cfg.seed, logging_strategy="no",
            save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
            use_cpu=loaded.device.type == "cpu", bf16=cfg.precision == "bf16")
        kw = dict(model=loaded.model, args=args, train_dataset=_Examples(enc, labels),
                  data_collator=DataCollatorWithPadding(loaded.tokenizer))
        if addrop:
            a = cfg.attribution
            trainer = ADDropTrainer(**kw, addrop={"method": "ga", "p": a.p, "q": a.q, "layers": "all",
                                                  "cross_tuning": False})
        else:
            trainer = Trainer(**kw)
        trainer.remove_callback(PrinterCallback)  # no printed summary (disable_tqdm puts it there)
        trainer.train()


def compare_trainers(loaded: LoadedModel, enc, labels, batch_size: int = 16, repeats: int = 3, warmup: int = 1,
                     seed: int = 0, progress: Callable[[str], None] | None = None, precision: str = "fp32") -> dict:
    """Time the four epochs (module docstring) over `enc` (tokenized examples) and `labels`; JSON-ready record:
    per-epoch ms stats on both clocks and the paired ratios RATIOS (median as the headline, with stats)."""
    cfg = _settings(loaded, batch_size, seed, precision)  # resolved: fp32 or bf16 (the Trainer's bf16=True)
    fresh: dict[str, LoadedModel] = {}

    def prepare(key: str) -> LoadedModel:  # the copy a timed epoch trains, made before the clock starts
        fresh[key] = clone_model(loaded)
        return fresh[key]

    fns = {
        "ours_vanilla": lambda r: our_epoch(fresh.pop("ours_vanilla"), enc, labels, cfg, False),
        "ours_ga": lambda r: our_epoch(fresh.pop("ours_ga"), enc, labels, cfg, True),
        "hf_vanilla": lambda r: trainer_epoch(fresh.pop("hf_vanilla"), enc, labels, cfg, False),
        "hf_addrop": lambda r: trainer_epoch(fresh.pop("hf_addrop"), enc, labels, cfg, True),
    }
    timed = interleaved(fns, repeats, warmup, loaded.device, progress, before=prepare)
    out = {"examples": len(enc), "batch_size": batch_size, "repeats": repeats,
           "layout": "packed" if use_packing(cfg.layout, loaded) else "padded",
           "epoch_ms_stats": {k: stats(v) for k, v in timed.wall.items()},
           "cpu_epoch_ms_stats": {k: stats(v) for k, v in timed.cpu.items()}}
    for clock, t, dst in (("wall", timed.wall, "ratios"), ("cpu", timed.cpu, "cpu_ratios")):
        lists = {name: paired(t[a], t[b]) for name, (a, b) in RATIOS.items()}
        out[dst] = {name: statistics.median(v) for name, v in lists.items()}
        out[dst + "_stats"] = {name: stats(v) for name, v in lists.items()}
    return out


NOTE = ("same examples, model, batch size and threads; lr 2e-5, weight decay 0.01, warm-up 10% then linear decay, "
        "clipping 1.0, fused AdamW; the Trainer with DataCollatorWithPadding, building it timed too")
