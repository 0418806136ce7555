"""Training cost of AD-DROP against plain fine-tuning, measured in one process on the same batches.

`run_bench(...)` measures, on fixed batches of real sentences (SST-2 train from the GLUE folder when there is
one, else the demo set), with dynamic padding (`batching.batches`):

- training steps exactly as the trainer runs them (`engine.training.train_step`, same optimizer, clipping and
  scheduler): vanilla and AD-DROP (`core.algorithm.drops_for` -> the masked step) for GA,
  IGA (m = 20), AA and RD, all layers masked and layer 0 only;
- a GA step done the reference way (one `torch.autograd.grad` call per layer) beside ours;
- each step's matrix-product FLOPs and its floor at the device's measured matrix-product rate (flops.py);
- a cross-tuned epoch pair (one plain epoch, one AD-DROP GA epoch) against two vanilla epochs;
- the native GA and IGA attribution against Captum's: time ratio and largest relative difference;
- the explorer's latency for one sentence (`explorer_view`, what studio.explore.explain and draw_mask compute:
  tokenize, attribution of every layer and head, the mask), GA and IGA;
- one epoch of ours (vanilla, AD-DROP GA) against `transformers.Trainer` and ADDropTrainer on the same
  examples (trainers.py);
- how cost grows with the length T (lengths.py: steps and the explorer at T = 32 ... 512, log-log exponents);
- the peak memory of each of them.

Steps run in the layout a run on this model and device uses (`engine.training.use_packing`: packed on the CPU).

Timing: warm-up runs first; then every repeat runs each method once, in an order rotated by one place per
repeat, so that drift and neighbours' load hit all methods alike. Each headline ratio is the 20% trimmed mean
over repeats of (method time / vanilla time of the same repeat): repeats slowed by a neighbour's load are cut
from both ends; min, median and max are reported beside it. Two clocks: wall clock
(synchronised on GPUs), the headline figures; and process CPU time (`cpu` in the record), which does not count
time spent waiting for a core on a shared machine. Speed is measured here, never asserted by a test.

Peak memory (`peak_mem_mb`): on CUDA, `torch.cuda.max_memory_allocated` during one run of the method minus
what was allocated before it; elsewhere, the peak of live tensor bytes that torch's profiler (profile_memory)
records during one run, above the level at its start. Both count tensors only (not the allocator's cache, the
Python heap or the model's own weights), in one separate, untimed run per method.

The allocator: glibc returns big blocks to the OS on free and maps them again on the next step, which costs
15-20% system time per step and adds noise. `MALLOC_ENV` keeps them in the heap; glibc reads these variables
at start-up only, so `python -m addrop bench` re-executes itself with them set (see addrop/cli/bench.py). Called
in-process without them (tests), the run sets the same thresholds with mallopt() for its duration and puts the
defaults back afterwards; the record says which (`malloc_env`).
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable

import torch

from ...config import METHODS, AttributionConfig
from ...core.attribution import attribute
from ...core.masking import make_drops
from ...engine.batching import batches, encode, encode_example
from ...engine.data import default_glue_dir, load_data, subset
from ...engine.models import LoadedModel, load_model, resolve_device
from ...errors import UserError
from .flops import flop_record
from .machine import allocator_tuned, load_average, machine_info, malloc_env_status, peak_rss_mb
from .report import STEP_KEYS, check_targets
from .timing import interleaved, paired, peak_memory_mb, stats, torch_threads, trimmed_mean
from ...engine.precision import resolve_precision
from .lengths import length_sweep
from .steps import Stepper
from .trainers import compare_trainers

@dataclass
class Settings:
    """How much to measure. `quick` is the CI setting: every key, few repeats."""

    warmup: int = 1
    repeats: int = 20  # step repeats (each method once per repeat; 5 rounds over the step batches)
    step_batches: int = 4  # distinct batches the steps cycle through (repeat r uses batch r mod n)
    epoch_batches: int = 20  # batches per epoch of the cross-tuned pair
    epoch_repeats: int = 5
    attr_repeats: int = 3  # native against Captum
    explorer_repeats: int = 10
    iga_steps: int = 20
    trainer_repeats: int = 3  # epochs against the Hugging Face Trainer (trainers.py), over epoch_batches batches
    sweep_lengths: tuple = (32, 64, 128, 256, 512)  # the length sweep (lengths.py), batch 4
    sweep_repeats: int = 3
    sweep_cap_s: float = 20.0  # a method stops at the first length where one run takes longer
    precision: str = "fp32"  # of the training steps and epochs (engine/precision.py); the explorer's passes: fp32

    @classmethod
    def quick(cls) -> "Settings":
        return cls(warmup=1, repeats=3, step_batches=1, epoch_batches=2, epoch_repeats=2, attr_repeats=2,
                   explorer_repeats=3, trainer_repeats=1, sweep_lengths=(16, 32), sweep_repeats=1, sweep_cap_s=5.0)


def _default_glue():
    """The default GLUE folder (engine.data.default_glue_dir) when it holds SST-2."""
    root = default_glue_dir()
    return root if root is not None and (root / "SST-2" / "train.tsv").is_file() else None


def bench_data(tokenizer, n_batches: int, batch_size: int, data: str = "auto", seed: int = 0):
    """(source name, task spec, batches, dev split): a seeded subset of SST-2 train (the GLUE folder) or of the
    demo set, n_batches * batch_size sentences in dynamically padded batches."""
    root = _default_glue() if data in ("auto", "sst-2") else None
    if data == "sst-2" and root is None:
        raise UserError("SST-2 not found: set ADDROP_GLUE_DIR to a GLUE folder holding SST-2/train.tsv")
    if root is not None:
        spec, train, dev = load_data("sst-2", "glue", str(root))
        source = f"SST-2 train ({root})"
    else:
        spec, train, dev = load_data("demo", "demo")
        source = "demo train"
    need = n_batches * batch_size
    sub = subset(train, need, seed)
    if len(sub) < need:  # small sets (the demo): cycle
        sub = sub.select([i % len(sub) for i in range(need)])
    enc = encode(tokenizer, sub, 128)
    out = BenchBatches(batches(enc, sub.labels, batch_size, is_regression=spec.is_regression))
    out.examples, out.labels = enc, list(sub.labels)
    return source, spec, out, dev


class BenchBatches(list):
    """The benchmark's batches, with the tokenized `examples` and `labels` they were made from (the epochs
    against the Trainer batch those themselves)."""

    examples: list = []
    labels: list = []


def typical_sentence(tokenizer, texts: list[str]) -> str:
    """The sentence of median token length (ties: the first), so the explorer latency is for a typical one."""
    lens = [len(tokenizer(t)["input_ids"]) for t in texts[:400]]
    order = sorted(range(len(lens)), key=lambda i: lens[i])
    return texts[order[len(order) // 2]]


# ------------------------------------------------------------------------------------------------ compare
def explorer_view(loaded: LoadedModel, sentence: str, cfg: AttributionConfig, seed: int = 0):
    """What the explorer computes for one sentence (studio.explore.explain, then draw_mask): tokenize, attribute
    every layer and head, draw the Eq. 6-7 mask from a CPU generator. Returns (attribution, region, dropped); a
    test checks it against the explorer's own functions."""
    batch, _, _ = encode_example(loaded, sentence)
    res = attribute(loaded, batch, replace(cfg, layers=None))
    gen = torch.Generator().manual_seed(int(seed))
    region, dropped = make_drops(res.scores, res.key_mask, cfg.p, cfg.q, cfg.mode, cfg.ties, cfg.fixed_rate, gen)
    return res, region, dropped


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| relative to the largest |b|, per layer (dim 0), the worst layer."""
    a, b = a.double(), b.double()
    worst = 0.0
    for x, y in zip(a, b):
        scale = y.abs().max().item()
        diff = (x - y).abs().max().item()
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


# ------------------------------------------------------------------------------------------------ main


def run_bench(model: str = "minilm", device: str = "auto", batch_size: int = 16, quick: bool = False,
              settings: Settings | None = None, data: str = "auto", seed: int = 0, threads: int | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Measure everything (see the module docstring) and return the JSON-ready record. `threads` sets torch's
    intra-op threads for the run (restored afterwards); None keeps the current setting."""
    try:
        with torch_threads(threads), allocator_tuned() as tuned:
            rec = _run(model, device, batch_size, quick, settings, data, seed, progress)
        rec["malloc_env"]["mallopt_in_process"] = tuned.applied
        return rec
    finally:
        gc.unfreeze()


def _run(model, device, batch_size, quick, settings, data, seed, progress) -> dict:
    say = progress or (lambda s: None)
    opts = settings or (Settings.quick() if quick else Settings())
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    if opts.repeats < 1 or opts.warmup < 0 or opts.epoch_batches < 1 or opts.step_batches < 1:
        raise UserError("repeats, batches must be >= 1 and warm-up >= 0")
    dev = resolve_device(device)
    t_start = time.perf_counter()
    load_start = load_average()
    torch.manual_seed(seed)

    first = load_model(model, dev, num_labels=2, seed=seed)
    n_batches = max(opts.epoch_batches, opts.step_batches)
    source, spec, all_batches, dev_split = bench_data(first.tokenizer, n_batches, batch_size, data, seed)
    loaded = first if spec.num_labels == 2 else load_model(model, dev, num_labels=spec.num_labels, seed=seed)
    examples, labels = all_batches.examples, all_batches.labels
    all_batches = [{k: v.to(dev) for k, v in b.items()} for b in all_batches]
    step_batches = all_batches[:opts.step_batches]
    epoch_batches = all_batches[:opts.epoch_batches]
    L = loaded.num_layers
    say(f"bench: {loaded.name} on {dev}, batch {batch_size}, {L} layers, data {source}; "
        f"lengths {[int(b['input_ids'].shape[1]) for b in all_batches]}")

    gc.collect()
    gc.freeze()  # the model and data: out of the collector's way
    n_steps = (opts.warmup + opts.repeats) * (len(STEP_KEYS) + 2) + (opts.epoch_repeats + 1) * 4 * opts.epoch_batches
    precision = resolve_precision(opts.precision, loaded.device)
    stepper = Stepper(loaded, n_steps, seed, precision)
    acfgs = {f"{m}_{w}": stepper.acfg(m, None if w == "all" else (0,)) for m in METHODS for w in ("all", "layer0")}
    acfgs["ga_reference_all"] = stepper.acfg("ga", None)
    acfgs = {k: replace(a, steps=opts.iga_steps) for k, a in acfgs.items()}

    def batch_of(r: int) -> dict:
        return step_batches[r % len(step_batches)]

    fns: dict[str, Callable[[int], object]] = {"vanilla": lambda r: stepper.train_step(batch_of(r))}
    for key in STEP_KEYS[1:-1]:
        fns[key] = lambda r, _k=key: stepper.addrop_step(batch_of(r), acfgs[_k], _k)
    fns["ga_reference_all"] = lambda r: stepper.reference_ga_step(batch_of(r), acfgs["ga_reference_all"])

    # 1. training steps
    say(f"steps: {len(fns)} methods, {opts.warmup} warm-up + {opts.repeats} interleaved repeats")
    steps = interleaved(fns, opts.repeats, opts.warmup, dev, say)
    drops_ms = {k: statistics.median(v[-opts.repeats:]) for k, v in stepper.drop_ms.items()}
    ratio_lists = {clock: {k: paired(ts, t["vanilla"]) for k, ts in t.items() if k != "vanilla"}
                   for clock, t in (("wall", steps.wall), ("cpu", steps.cpu))}
    say("flops: the matrix products of one run of each step on each step batch, and the device's rate")
    step_ms = {k: statistics.median(v) for k, v in steps.wall.items()}
    rows = int(statistics.fmean(int(b["attention_mask"].sum()) if stepper.packed else b["attention_mask"].numel()
                                for b in step_batches))  # the token rows of a step batch's linear layers
    flops = flop_record(fns, len(step_batches), step_ms, dev, rows, loaded.model.config, precision)

    # 2. cross-tuned epoch pair
    def plain_epoch():
        for b in epoch_batches:
            stepper.train_step(b)

    def addrop_epoch():
        for b in epoch_batches:
            stepper.addrop_step(b, acfgs["ga_all"])

    say(f"epochs: cross-tuned pair against two vanilla epochs, {opts.epoch_batches} batches each, "
        f"{opts.epoch_repeats} repeats")
    ep = interleaved({"vanilla_pair": lambda r: (plain_epoch(), plain_epoch()),
                      "crosstuned_pair": lambda r: (plain_epoch(), addrop_epoch())},
                     opts.epoch_repeats, min(opts.warmup, 1), dev, say)
    for clock, t in (("wall", ep.wall), ("cpu", ep.cpu)):
        ratio_lists[clock]["crosstuned_pair"] = paired(t["crosstuned_pair"], t["vanilla_pair"])

    # 3. native against Captum (attribution only, all layers, the first step batch)
    say(f"attribution: native against Captum, GA and IGA (m = {opts.iga_steps}), all layers")
    cb = step_batches[0]
    cfgs = {f"{b}_{m}": AttributionConfig(method=m, backend=b, steps=opts.iga_steps)
            for m in ("ga", "iga") for b in ("native", "captum")}
    results: dict[str, torch.Tensor] = {}

    def attr(key: str):
        results[key] = attribute(loaded, cb, cfgs[key]).scores

    at = interleaved({k: (lambda r, _k=k: attr(_k)) for k in cfgs}, opts.attr_repeats, min(opts.warmup, 1), dev, say)
    captum, captum_cpu = {}, {}
    for m in ("ga", "iga"):
        for clock, t, dst in (("wall", at.wall, captum), ("cpu", at.cpu, captum_cpu)):
            rl = paired(t[f"native_{m}"], t[f"captum_{m}"])
            ratio_lists[clock][f"captum_{m}_time"] = rl
            dst[f"{m}_time_ratio"] = statistics.median(rl)
            dst[f"{m}_native_ms"] = statistics.median(t[f"native_{m}"])
            dst[f"{m}_captum_ms"] = statistics.median(t[f"captum_{m}"])
        captum[f"{m}_max_rel_diff"] = max_rel_diff(results[f"native_{m}"], results[f"captum_{m}"])

    # 4. explorer latency: one typical sentence, what the explorer computes for it (explorer_view)
    sentence = typical_sentence(loaded.tokenizer, dev_split.texts)
    say(f"explorer: one sentence ({len(loaded.tokenizer(sentence)['input_ids'])} tokens), GA and IGA")

    def explore(method: str):
        explorer_view(loaded, sentence, AttributionConfig(method=method, steps=opts.iga_steps), seed)

    ex = interleaved({"explorer_ga": lambda r: explore("ga"), "explorer_iga": lambda r: explore("iga")},
                     opts.explorer_repeats, min(opts.warmup, 1), dev, say)

    # 5. epochs against the Hugging Face Trainer (trainers.py), on the epoch batches' examples
    n_ex = opts.epoch_batches * batch_size
    say(f"trainers: our epochs against transformers.Trainer, {n_ex} examples, {opts.trainer_repeats} repeats")
    trainers = compare_trainers(loaded, examples[:n_ex], labels[:n_ex], batch_size,
                                opts.trainer_repeats, min(opts.warmup, 1), seed, say, precision)

    # 6. how cost grows with the length (lengths.py): synthetic batches of 4 x T tokens, one sentence of T
    say(f"lengths: T = {', '.join(map(str, opts.sweep_lengths))}, batch 4, cap {opts.sweep_cap_s:g} s a run")
    sweep = length_sweep(loaded, opts.sweep_lengths, 4, opts.iga_steps, opts.sweep_repeats, opts.sweep_cap_s, say,
                         seed, precision=precision)

    # 7. peak memory, one untimed run each
    say("memory: one run of each")
    mem_fns = {k: (lambda _k=k: fns[_k](0)) for k in fns}
    mem_fns |= {f"attr_{k}": (lambda _k=k: attr(_k)) for k in cfgs}
    mem_fns |= {"explorer_ga": lambda: explore("ga"), "explorer_iga": lambda: explore("iga")}
    # each run starts without gradients (as after zero_grad), so every step counts the gradients it makes
    peak = peak_memory_mb(mem_fns, dev, before=lambda: stepper.opt.zero_grad(set_to_none=True))

    def med(d: dict[str, list[float]]) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in d.items()}

    def all_stats(d: dict[str, list[float]]) -> dict[str, dict]:
        return {k: stats(v) for k, v in d.items()}

    rec = {
        "device": str(dev),
        "model": loaded.name,
        "batch_size": batch_size,
        "quick": bool(quick),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(dev),
        "loadavg": {"start": load_start, "end": load_average()},
        "malloc_env": malloc_env_status(),
        "data": {"source": source, "batches": len(all_batches),
                 "lengths": [int(b["input_ids"].shape[1]) for b in all_batches],
                 "mean_real_tokens": float(sum(int(b["attention_mask"].sum()) for b in all_batches)
                                           / sum(int(b["attention_mask"].shape[0]) for b in all_batches))},
        "settings": opts.__dict__ | {"layers": L, "heads": loaded.num_heads, "precision": precision},
        # wall clock: the headline figures
        # the headline ratio: the trimmed mean of the per-repeat ratios (timing.trimmed_mean), robust to repeats a
        # neighbour's load slowed; min, median and max in ratio_stats
        "ratios": {k: trimmed_mean(v) for k, v in ratio_lists["wall"].items() if not k.startswith("captum_")},
        "layout": "packed" if stepper.packed else "padded",
        "ratio_stats": all_stats(ratio_lists["wall"]),
        "step_ms": step_ms,
        "step_ms_stats": all_stats(steps.wall),
        "drops_ms": drops_ms,  # median wall ms of drops_for alone (attribution + masks) inside the AD-DROP steps
        "flops": flops,  # flops.py: each step's matrix-product FLOPs and their floor at the measured rate
        "epoch_ms": all_stats(ep.wall),
        "captum": captum,
        "attribution_ms_stats": all_stats(at.wall),
        "latency_ms": med(ex.wall),
        "latency_ms_stats": all_stats(ex.wall),
        # process CPU time: the same figures, blind to time spent waiting for a core on a shared machine
        "trainers": trainers,
        "lengths": sweep,
        "trainer_ratios": trainers["ratios"],
        "cpu": {"ratios": {k: trimmed_mean(v) for k, v in ratio_lists["cpu"].items()
                           if not k.startswith("captum_")},
                "ratio_stats": all_stats(ratio_lists["cpu"]), "step_ms": med(steps.cpu),
                "epoch_ms": all_stats(ep.cpu), "captum": captum_cpu, "latency_ms": med(ex.cpu),
                "latency_ms_stats": all_stats(ex.cpu), "trainer_ratios": trainers["cpu_ratios"]},
        "explorer_sentence": sentence,
        "peak_mem_mb": peak,
        "peak_mem_note": ("CUDA max_memory_allocated above the level at the start of one untimed run; tensors "
                          "only; gradients freed before each run" if dev.type == "cuda" else
                          "peak live tensor bytes recorded by torch.profiler (profile_memory) above the level at the "
                          "start of one untimed run; tensors only; gradients freed before each run"
                          if dev.type == "cpu" else "not measured on this device"),
        "process_peak_rss_mb": peak_rss_mb(),
        "seconds": time.perf_counter() - t_start,
    }
    rec["targets"] = check_targets(rec)
    return rec
