"""Training cost of AD-DROP against plain fine-tuning, measured in one process on the same batches.

`run_bench(...)` measures, on fixed batches of real sentences (SST-2 train from the GLUE folder when there is
one, else the demo set), with dynamic padding (`batching.batches`):

- training steps exactly as `training._loop` runs them (same optimizer, clipping and scheduler): vanilla
  (forward + backward + step) and AD-DROP (`training.drops_for` -> masked forward + backward + step) for GA,
  IGA (m = 20), AA and RD, all layers masked and layer 0 only;
- a GA step done the reference way (one `torch.autograd.grad` call per layer) beside ours;
- a cross-tuned epoch pair (one plain epoch, one AD-DROP GA epoch) against two vanilla epochs;
- the native GA and IGA attribution against Captum's: time ratio and largest relative difference;
- the explorer's latency for one sentence (explore.explain + explore.draw_mask: tokenize, attribution of
  every layer and head, the mask), GA and IGA;
- the peak memory of each of them.

Timing: warm-up runs first; then every repeat runs each method once, in an order rotated by one place per
repeat, so that drift and neighbours' load hit all methods alike. Each ratio is the median over repeats of
(method time / vanilla time of the same repeat), reported with its min and max. Two clocks: wall clock
(synchronised on GPUs), the headline figures; and process CPU time (`cpu` in the record), which does not count
time spent waiting for a core on a shared machine. Speed is measured here, never asserted by a test.

Peak memory (`peak_mem_mb`): on CUDA, `torch.cuda.max_memory_allocated` during one run of the method minus
what was allocated before it; elsewhere, the peak of live tensor bytes that torch's profiler (profile_memory)
records during one run, above the level at its start. Both count tensors only (not the allocator's cache, the
Python heap or the model's own weights), in one separate, untimed run per method.

The allocator: glibc returns big blocks to the OS on free and maps them again on the next step, which costs
15-20% system time per step and adds noise. `MALLOC_ENV` keeps them in the heap; glibc reads these variables
at start-up only, so `python -m addrop bench` re-executes itself with them set (see cli_bench.py). Called
in-process without them (tests), the run sets the same thresholds with mallopt() for its duration and puts the
defaults back afterwards; the record says which (`malloc_env`).
"""
from __future__ import annotations

import bisect
import gc
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from .attribution import attribute, eval_mode, objective, target_classes
from .batching import batches, encode
from .config import AttributionConfig, TrainConfig, resolve_layers
from .data import glue_root, load_data, subset
from .errors import UserError
from .masking import make_drops
from .models import Loaded, load_model, model_inputs, resolve_device

# Values for glibc's allocator: never return freed memory to the OS, never mmap a block on its own.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "17179869184", "MALLOC_TRIM_THRESHOLD_": "68719476736"}

METHODS = ("ga", "iga", "aa", "rd")
STEP_KEYS = ("vanilla",) + tuple(f"{m}_{w}" for m in METHODS for w in ("all", "layer0")) + ("ga_reference_all",)

# Targets for minilm, batch 16, on a CPU (the issue). (key, comparison, value)
TARGETS = (
    ("ratios.ga_all", "<=", 1.5),
    ("ratios.crosstuned_pair", "<=", 1.3),
    ("ratios.iga_all", "<=", 20.0),
    ("ratios.aa_all", "<=", 1.35),
    ("ratios.rd_all", "<=", 1.1),
    ("captum.iga_time_ratio", "<=", 0.67),
    ("captum.ga_max_rel_diff", "<=", 1e-5),
    ("captum.iga_max_rel_diff", "<=", 1e-5),
    ("latency_ms.explorer_ga", "<=", 100.0),
    ("latency_ms.explorer_iga", "<=", 1000.0),
)


@dataclass
class Settings:
    """How much to measure. `quick` is the CI setting: every key, few repeats."""

    warmup: int = 1
    repeats: int = 12  # step repeats (each method once per repeat; 3 rounds over the step batches)
    step_batches: int = 4  # distinct batches the steps cycle through (repeat r uses batch r mod n)
    epoch_batches: int = 20  # batches per epoch of the cross-tuned pair
    epoch_repeats: int = 5
    attr_repeats: int = 3  # native against Captum
    explorer_repeats: int = 10
    iga_steps: int = 20

    @classmethod
    def quick(cls) -> "Settings":
        return cls(warmup=1, repeats=3, step_batches=1, epoch_batches=2, epoch_repeats=2, attr_repeats=2,
                   explorer_repeats=3)


# ------------------------------------------------------------------------------------------------ timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall-clock ms, process CPU ms) of fn(), synchronised on accelerators."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1000.0, (time.process_time() - c0) * 1000.0


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


@dataclass
class Timed:
    """Per-repeat milliseconds by name, on both clocks: index r is round r, whatever its place in the round."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def interleaved(fns: dict[str, Callable[[int], object]], repeats: int, warmup: int, device: torch.device,
                progress: Callable[[str], None] | None = None) -> Timed:
    """Run every fn(repeat) `warmup` times, then `repeats` rounds with each fn once in a rotated order."""
    names = list(fns)
    for w in range(warmup):
        for name in names:
            fns[name](w)
    out = Timed({n: [] for n in names}, {n: [] for n in names})
    for r in range(repeats):
        gc.collect()
        k = r % len(names)
        for name in names[k:] + names[:k]:
            wall, cpu = _time(lambda: fns[name](r), device)
            out.wall[name].append(wall)
            out.cpu[name].append(cpu)
        if progress:
            progress(f"  round {r + 1}/{repeats}: " + ", ".join(
                f"{n} {out.wall[n][-1]:.0f} ({out.cpu[n][-1]:.0f})" for n in names) + " ms wall (cpu)")
    return out


def paired(num: list[float], den: list[float]) -> list[float]:
    """Per-repeat ratios of two series measured in the same rounds."""
    return [a / b for a, b in zip(num, den)]


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None


# ------------------------------------------------------------------------------------------------ memory
def peak_memory_mb(fns: dict[str, Callable[[], object]], device: torch.device,
                   before: Callable[[], object] | None = None) -> dict[str, float | None]:
    """{name: peak tensor memory of one fn() above the level at its start, in MiB} (see the module docstring).
    `before()` runs ahead of each fn, outside its measured range. On CPU all of them run inside one profiler
    session (one start-up cost), each in its own labelled range."""
    out: dict[str, float | None] = {k: None for k in fns}
    if device.type == "cuda":
        for k, fn in fns.items():
            gc.collect()
            if before:
                before()
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize(device)
            out[k] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return out
    if device.type != "cpu":
        return out
    try:
        from torch.profiler import ProfilerActivity, profile, record_function

        gc.collect()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for k, fn in fns.items():
                if before:
                    before()
                with record_function(f"addrop-mem:{k}"):
                    fn()
        events = prof.profiler.kineto_results.events()
        ranges = {e.name()[len("addrop-mem:"):]: (e.start_ns(), e.end_ns()) for e in events
                  if e.name().startswith("addrop-mem:")}
        mem = sorted(((e.start_ns(), e.nbytes()) for e in events
                      if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")), key=lambda x: x[0])
    except Exception:  # noqa: BLE001 - a private profiler API: no number rather than a failed benchmark
        return out
    times = [t for t, _ in mem]
    for k, (t0, t1) in ranges.items():
        live = peak = 0
        for _, nbytes in mem[bisect.bisect_left(times, t0):bisect.bisect_right(times, t1)]:
            live += nbytes
            peak = max(peak, live)
        out[k] = peak / 2**20
    return out


# ------------------------------------------------------------------------------------------------ data
def _default_glue() -> Path | None:
    """ADDROP_GLUE_DIR, else ../shared/data/glue beside the repository, when it holds SST-2."""
    root = glue_root(None)
    if root is None:
        root = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
    return root if (root / "SST-2" / "train.tsv").is_file() else None


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
    out = list(batches(enc, sub.labels, batch_size, is_regression=spec.is_regression))
    return source, spec, out, dev


def typical_sentence(tokenizer, texts: list[str]) -> str:
    """The sentence of median token length (ties: the first), so the explorer latency is for a typical one."""
    lens = [len(tokenizer(t)["input_ids"]) for t in texts[:400]]
    order = sorted(range(len(lens)), key=lambda i: lens[i])
    return texts[order[len(order) // 2]]


# ------------------------------------------------------------------------------------------------ steps
class Stepper:
    """One model, one optimizer: the training step of training._loop, with or without AD-DROP masks."""

    def __init__(self, loaded: Loaded, total_steps: int, seed: int = 0):
        from .training import _optimizer

        self.loaded = loaded
        self.cfg = TrainConfig(model=loaded.name, strategy="addrop", seed=seed)
        self.opt, self.sched = _optimizer(loaded.model, self.cfg, max(total_steps, 10))
        self.gen = torch.Generator(device=loaded.device).manual_seed(seed + 1)
        self.drop_ms: dict[str, list[float]] = {}

    def acfg(self, method: str, layers) -> AttributionConfig:
        from .training import masking_config

        a = AttributionConfig(method=method, layers=layers, steps=20)
        return masking_config(replace(self.cfg, attribution=a))

    def train_step(self, batch: dict, drops=None) -> float:
        """training._loop's step: masked (or plain) forward, backward, clipping, optimizer and scheduler."""
        model = self.loaded.model
        model.train()
        with model.addrop.pass_settings(drops=drops):
            out = model(**model_inputs(model, batch), labels=batch["labels"])
        loss = out.loss
        if not torch.isfinite(loss):
            raise RuntimeError(f"the benchmark's training loss became {loss.item()}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        return loss.item()

    def addrop_step(self, batch: dict, acfg: AttributionConfig, key: str | None = None) -> float:
        from .training import drops_for

        t0 = time.perf_counter()
        drops, _ = drops_for(self.loaded, batch, acfg, self.gen)
        if key is not None:
            _sync(self.loaded.device)
            self.drop_ms.setdefault(key, []).append((time.perf_counter() - t0) * 1000.0)
        return self.train_step(batch, drops)

    def reference_ga_step(self, batch: dict, acfg: AttributionConfig) -> float:
        """GA the way the reference code does it: one autograd call per layer (same padding as ours)."""
        scores = reference_ga(self.loaded, batch, acfg)
        layers = resolve_layers(acfg.layers, self.loaded.num_layers)
        key_mask = batch["attention_mask"].bool()
        _, dropped = make_drops(scores, key_mask, acfg.p, acfg.q, acfg.mode, acfg.ties, acfg.fixed_rate, self.gen)
        return self.train_step(batch, {l: dropped[i] for i, l in enumerate(layers)})


def reference_ga(loaded: Loaded, batch: dict, acfg: AttributionConfig) -> torch.Tensor:
    """[L, B, H, T, T] gradients of the target logit with respect to each layer's attention, one
    `torch.autograd.grad` call per layer on a retained graph (the reference implementation's way)."""
    model, ctrl = loaded.model, loaded.model.addrop
    layers = resolve_layers(acfg.layers, ctrl.num_layers)
    with eval_mode(model), torch.enable_grad():
        with ctrl.pass_settings(keep=layers) as s:
            logits = model(**model_inputs(model, batch)).logits
            probs = dict(s.probs)
        obj = objective(logits, target_classes(logits, acfg, batch.get("labels")))
        grads = [torch.autograd.grad(obj, [probs[l]], retain_graph=True)[0] for l in layers]
    return torch.stack(grads)


# ------------------------------------------------------------------------------------------------ compare
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
def machine_info(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "cpu": _cpu_name()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def malloc_env_status() -> dict:
    return {k: os.environ.get(k) for k in MALLOC_ENV} | {
        "set": all(os.environ.get(k) for k in MALLOC_ENV)}


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_GLIBC_DEFAULT = 128 * 1024


def _mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's thresholds in this process (False where there is no glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold))
                    and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold)))
    except (OSError, AttributeError):
        return False


class allocator_tuned:
    """Without the MALLOC_* variables (an in-process run, e.g. a test), set the same thresholds with mallopt()
    for the duration of the run and put glibc's defaults back afterwards (mallopt's values are capped at
    2 GiB; nothing this benchmark allocates comes near)."""

    def __enter__(self):
        self.applied = not malloc_env_status()["set"] and _mallopt(2**30, 2**31 - 1)
        return self

    def __exit__(self, *exc):
        if self.applied:
            _mallopt(_GLIBC_DEFAULT, _GLIBC_DEFAULT)
        return False


def run_bench(model: str = "minilm", device: str = "auto", batch_size: int = 16, quick: bool = False,
              settings: Settings | None = None, data: str = "auto", seed: int = 0, threads: int | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Measure everything (see the module docstring) and return the JSON-ready record. `threads` sets torch's
    intra-op threads for the run (restored afterwards); None keeps the current setting."""
    if threads is not None and threads < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with allocator_tuned() as tuned:
            rec = _run(model, device, batch_size, quick, settings, data, seed, progress)
        rec["malloc_env"]["mallopt_in_process"] = tuned.applied
        return rec
    finally:
        torch.set_num_threads(before)
        gc.unfreeze()


def _run(model, device, batch_size, quick, settings, data, seed, progress) -> dict:
    say = progress or (lambda s: None)
    st = settings or (Settings.quick() if quick else Settings())
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    if st.repeats < 1 or st.warmup < 0 or st.epoch_batches < 1 or st.step_batches < 1:
        raise UserError("repeats, batches must be >= 1 and warm-up >= 0")
    dev = resolve_device(device)
    t_start = time.perf_counter()
    load_start = _load()
    torch.manual_seed(seed)

    probe = load_model(model, dev, num_labels=2, seed=seed)
    n_batches = max(st.epoch_batches, st.step_batches)
    source, spec, all_batches, dev_split = bench_data(probe.tokenizer, n_batches, batch_size, data, seed)
    loaded = probe if spec.num_labels == 2 else load_model(model, dev, num_labels=spec.num_labels, seed=seed)
    all_batches = [{k: v.to(dev) for k, v in b.items()} for b in all_batches]
    step_batches = all_batches[:st.step_batches]
    epoch_batches = all_batches[:st.epoch_batches]
    L = loaded.num_layers
    say(f"bench: {loaded.name} on {dev}, batch {batch_size}, {L} layers, data {source}; "
        f"lengths {[int(b['input_ids'].shape[1]) for b in all_batches]}")

    gc.collect()
    gc.freeze()  # the model and data: out of the collector's way
    n_steps = (st.warmup + st.repeats) * (len(STEP_KEYS) + 2) + (st.epoch_repeats + 1) * 4 * st.epoch_batches
    stepper = Stepper(loaded, n_steps, seed)
    acfgs = {f"{m}_{w}": stepper.acfg(m, None if w == "all" else (0,)) for m in METHODS for w in ("all", "layer0")}
    acfgs["ga_reference_all"] = stepper.acfg("ga", None)
    acfgs = {k: replace(a, steps=st.iga_steps) for k, a in acfgs.items()}

    def batch_of(r: int) -> dict:
        return step_batches[r % len(step_batches)]

    fns: dict[str, Callable[[int], object]] = {"vanilla": lambda r: stepper.train_step(batch_of(r))}
    for key in STEP_KEYS[1:-1]:
        fns[key] = lambda r, _k=key: stepper.addrop_step(batch_of(r), acfgs[_k], _k)
    fns["ga_reference_all"] = lambda r: stepper.reference_ga_step(batch_of(r), acfgs["ga_reference_all"])

    # 1. training steps
    say(f"steps: {len(fns)} methods, {st.warmup} warm-up + {st.repeats} interleaved repeats")
    steps = interleaved(fns, st.repeats, st.warmup, dev, say)
    drops_ms = {k: statistics.median(v[-st.repeats:]) for k, v in stepper.drop_ms.items()}
    ratio_lists = {clock: {k: paired(ts, t["vanilla"]) for k, ts in t.items() if k != "vanilla"}
                   for clock, t in (("wall", steps.wall), ("cpu", steps.cpu))}

    # 2. cross-tuned epoch pair
    def plain_epoch():
        for b in epoch_batches:
            stepper.train_step(b)

    def addrop_epoch():
        for b in epoch_batches:
            stepper.addrop_step(b, acfgs["ga_all"])

    say(f"epochs: cross-tuned pair against two vanilla epochs, {st.epoch_batches} batches each, "
        f"{st.epoch_repeats} repeats")
    ep = interleaved({"vanilla_pair": lambda r: (plain_epoch(), plain_epoch()),
                      "crosstuned_pair": lambda r: (plain_epoch(), addrop_epoch())},
                     st.epoch_repeats, min(st.warmup, 1), dev, say)
    for clock, t in (("wall", ep.wall), ("cpu", ep.cpu)):
        ratio_lists[clock]["crosstuned_pair"] = paired(t["crosstuned_pair"], t["vanilla_pair"])

    # 3. native against Captum (attribution only, all layers, the first step batch)
    say(f"attribution: native against Captum, GA and IGA (m = {st.iga_steps}), all layers")
    cb = step_batches[0]
    cfgs = {f"{b}_{m}": AttributionConfig(method=m, backend=b, steps=st.iga_steps)
            for m in ("ga", "iga") for b in ("native", "captum")}
    results: dict[str, torch.Tensor] = {}

    def attr(key: str):
        results[key] = attribute(loaded, cb, cfgs[key]).scores

    at = interleaved({k: (lambda r, _k=k: attr(_k)) for k in cfgs}, st.attr_repeats, min(st.warmup, 1), dev, say)
    captum, captum_cpu = {}, {}
    for m in ("ga", "iga"):
        for clock, t, dst in (("wall", at.wall, captum), ("cpu", at.cpu, captum_cpu)):
            rl = paired(t[f"native_{m}"], t[f"captum_{m}"])
            ratio_lists[clock][f"captum_{m}_time"] = rl
            dst[f"{m}_time_ratio"] = statistics.median(rl)
            dst[f"{m}_native_ms"] = statistics.median(t[f"native_{m}"])
            dst[f"{m}_captum_ms"] = statistics.median(t[f"captum_{m}"])
        captum[f"{m}_max_rel_diff"] = max_rel_diff(results[f"native_{m}"], results[f"captum_{m}"])

    # 4. explorer latency: one typical sentence, the explorer's own calls (tokenize + attribution of every
    # layer and head: explore.explain; the Eq. 6-7 mask: explore.draw_mask)
    from .explore import draw_mask, explain

    sentence = typical_sentence(loaded.tokenizer, dev_split.texts)
    say(f"explorer: one sentence ({len(loaded.tokenizer(sentence)['input_ids'])} tokens), GA and IGA")

    def explore(method: str):
        draw_mask(explain(loaded, sentence, cfg=AttributionConfig(method=method, steps=st.iga_steps)), seed=seed)

    ex = interleaved({"explorer_ga": lambda r: explore("ga"), "explorer_iga": lambda r: explore("iga")},
                     st.explorer_repeats, min(st.warmup, 1), dev, say)

    # 5. peak memory, one untimed run each
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
        "loadavg": {"start": load_start, "end": _load()},
        "malloc_env": malloc_env_status(),
        "data": {"source": source, "batches": len(all_batches),
                 "lengths": [int(b["input_ids"].shape[1]) for b in all_batches],
                 "mean_real_tokens": float(sum(int(b["attention_mask"].sum()) for b in all_batches)
                                           / sum(int(b["attention_mask"].shape[0]) for b in all_batches))},
        "settings": st.__dict__ | {"layers": L, "heads": loaded.num_heads},
        # wall clock: the headline figures
        "ratios": {k: statistics.median(v) for k, v in ratio_lists["wall"].items() if not k.startswith("captum_")},
        "ratio_stats": all_stats(ratio_lists["wall"]),
        "step_ms": med(steps.wall),
        "step_ms_stats": all_stats(steps.wall),
        "drops_ms": drops_ms,  # median wall ms of drops_for alone (attribution + masks) inside the AD-DROP steps
        "epoch_ms": all_stats(ep.wall),
        "captum": captum,
        "attribution_ms_stats": all_stats(at.wall),
        "latency_ms": med(ex.wall),
        "latency_ms_stats": all_stats(ex.wall),
        # process CPU time: the same figures, blind to time spent waiting for a core on a shared machine
        "cpu": {"ratios": {k: statistics.median(v) for k, v in ratio_lists["cpu"].items()
                           if not k.startswith("captum_")},
                "ratio_stats": all_stats(ratio_lists["cpu"]), "step_ms": med(steps.cpu),
                "epoch_ms": all_stats(ep.cpu), "captum": captum_cpu, "latency_ms": med(ex.cpu),
                "latency_ms_stats": all_stats(ex.cpu)},
        "explorer_sentence": sentence,
        "peak_mem_mb": peak,
        "peak_mem_note": ("CUDA max_memory_allocated above the level at the start of one untimed run; tensors "
                          "only; gradients freed before each run" if dev.type == "cuda" else
                          "peak live tensor bytes recorded by torch.profiler (profile_memory) above the level at the "
                          "start of one untimed run; tensors only; gradients freed before each run"
                          if dev.type == "cpu" else "not measured on this device"),
        "process_peak_rss_mb": _peak_rss_mb(),
        "seconds": time.perf_counter() - t_start,
    }
    rec["targets"] = check_targets(rec)
    return rec


def _peak_rss_mb() -> float | None:
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if sys.platform != "darwin" else kb / 2**20
    except (ImportError, OSError):  # pragma: no cover - Windows
        return None


def _get(rec: dict, dotted: str):
    cur = rec
    for part in dotted.split("."):
        cur = cur[part]
    return cur


def _cpu_value(rec: dict, dotted: str):
    """The process-CPU-time counterpart of a headline figure (differences have no clock: the same value)."""
    group, key = dotted.split(".", 1)
    if key.endswith("max_rel_diff"):
        return rec[group][key]
    return rec["cpu"][group][key]


def check_targets(rec: dict) -> dict:
    """{key: {value, value_cpu, target, met, met_cpu}} for the issue's targets (set for minilm, batch 16, CPU).
    `met` judges the wall-clock figure, `met_cpu` the process-CPU-time one."""
    out = {}
    for key, op, target in TARGETS:
        value, value_cpu = _get(rec, key), _cpu_value(rec, key)

        def ok(v):
            return bool(v is not None and math.isfinite(v) and v <= target)

        out[key] = {"value": value, "value_cpu": value_cpu, "target": f"{op} {target:g}", "met": ok(value),
                    "met_cpu": ok(value_cpu)}
    return out


# ------------------------------------------------------------------------------------------------ table
def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if unit == "ms":
        return f"{x:.0f}" if x >= 100 else f"{x:.1f}"
    if abs(x) < 1e-3 and x != 0:
        return f"{x:.1e}"
    return f"{x:.2f}"


def _mmm(s: dict, unit: str = "") -> str:
    return f"{_fmt(s['min'], unit)} / {_fmt(s['median'], unit)} / {_fmt(s['max'], unit)}"


HEAD = ("measure", "wall ms min / median / max", "ratio min / median / max", "cpu-time ratio", "target", "met")


def table_rows(rec: dict) -> list[tuple[str, ...]]:
    """Rows of the printed table (HEAD): wall-clock figures, the CPU-time median beside them, the target and
    whether the wall-clock median meets it."""
    tg = {k.split(".", 1)[1]: v for k, v in rec["targets"].items()}
    cpu = rec["cpu"]
    rows = []

    def verdict(key: str) -> tuple[str, str]:
        t = tg.get(key)
        return (t["target"], "yes" if t["met"] else "NO") if t else ("", "")

    names = {"vanilla": "vanilla step", "ga_reference_all": "GA all layers, reference (1 autograd/layer)"}
    for k in STEP_KEYS:
        label = names.get(k) or f"{k.split('_')[0].upper()} " + ("all layers" if k.endswith("all") else "layer 0")
        label += "" if k == "vanilla" else " step"
        ms = _mmm(rec["step_ms_stats"][k], "ms")
        if k == "vanilla":
            rows.append((label, ms, "1", "1", "", ""))
        else:
            rows.append((label, ms, _mmm(rec["ratio_stats"][k]), _fmt(cpu["ratios"][k]), *verdict(k)))
    e = rec["epoch_ms"]
    rows.append(("cross-tuned epoch pair (plain + GA) / 2 vanilla epochs",
                 f"{_fmt(e['crosstuned_pair']['median'], 'ms')} vs {_fmt(e['vanilla_pair']['median'], 'ms')}",
                 _mmm(rec["ratio_stats"]["crosstuned_pair"]), _fmt(cpu["ratios"]["crosstuned_pair"]),
                 *verdict("crosstuned_pair")))
    c = rec["captum"]
    for m in ("ga", "iga"):
        rows.append((f"{m.upper()} all layers, native / Captum time",
                     f"{_fmt(c[f'{m}_native_ms'], 'ms')} vs {_fmt(c[f'{m}_captum_ms'], 'ms')}",
                     _mmm(rec["ratio_stats"][f"captum_{m}_time"]), _fmt(cpu["captum"][f"{m}_time_ratio"]),
                     *verdict(f"{m}_time_ratio")))
        rows.append((f"{m.upper()} all layers, native vs Captum largest relative difference", "",
                     _fmt(c[f"{m}_max_rel_diff"]), "", *verdict(f"{m}_max_rel_diff")))
    for k in ("explorer_ga", "explorer_iga"):
        rows.append((f"explorer, one sentence, {k.split('_')[1].upper()} all layers (ms)",
                     _mmm(rec["latency_ms_stats"][k], "ms"), "", f"{_fmt(cpu['latency_ms'][k], 'ms')} ms cpu",
                     *verdict(k)))
    return rows


def header(rec: dict) -> str:
    m = rec["machine"]
    return (f"AD-DROP cost: {rec['model']} on {rec['device']} ({m['cpu']}, {m['cpus']} cpus, {m['threads']} torch "
            f"threads, torch {m['torch']}), batch {rec['batch_size']}, {'quick' if rec['quick'] else 'full'} run, "
            f"malloc env {'set' if rec['malloc_env']['set'] else 'NOT set'}, load average "
            f"{rec['loadavg']['start']} -> {rec['loadavg']['end']}")


def markdown_table(rec: dict) -> str:
    """The same table in Markdown (for docs/performance.md and issue notes), the header line above it."""
    rows = [HEAD] + table_rows(rec)
    lines = [header(rec), "", "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def format_table(rec: dict) -> str:
    rows = [HEAD] + table_rows(rec)
    w = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    lines = [header(rec)]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * x for x in w))
    mem = ", ".join(f"{k} {v:.0f}" for k, v in rec["peak_mem_mb"].items() if v is not None)
    lines.append(f"peak memory, MiB ({rec['peak_mem_note']}): {mem}")
    if not (rec["model"] == "minilm" and rec["batch_size"] == 16 and rec["device"] == "cpu"):
        lines.append("note: the targets are set for minilm, batch 16, on a CPU")
    return "\n".join(lines)
