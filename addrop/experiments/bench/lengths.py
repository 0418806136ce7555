"""How the cost of a step and of the explorer grows with the sequence length T.

`length_sweep(loaded, ...)` measures, for each T in increasing order, on synthetic batches of exactly T real
tokens (random ids, no padding, so the packed and the padded layouts are the same passes):

- the trainer's steps (`measure.Stepper`): vanilla, and AD-DROP GA and IGA with every layer masked;
- the explorer's attribution of one sentence of T tokens, GA and IGA (what `measure.explorer_view` computes,
  on token ids instead of a sentence): attribution of every layer and head, then the mask.

Each figure is the median wall time of `repeats` runs after one warm-up (methods interleaved, rotated per
repeat, as in measure.py), and the peak tensor memory of one untimed run (`timing.peak_memory_mb`). Cost
control: once one run of a method takes longer than `cap_s`, that method is not measured at larger T (null,
with the reason in `skipped`); when its warm-up alone is over the cap, that unwarmed run is its figure at that T.

The log-log slope (`exponent`) says how a method scales: about 1 where the linear layers dominate, towards 2
where the T x T attention does. `explorer_ga_1s_*` is the length at which the explorer's GA takes one second.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import replace
from typing import Callable

import torch

from ...config import AttributionConfig
from ...core.attribution import attribute
from ...core.masking import make_drops
from ...engine.models import LoadedModel, clone_model
from ...errors import UserError
from .machine import allocator_tuned
from .steps import Stepper
from .timing import interleaved, peak_memory_mb, sync, torch_threads

SWEEP_METHODS = ("vanilla", "ga_all", "iga_all", "explorer_ga", "explorer_iga")
FIRST_ID = 5  # above the special tokens of the supported tokenizers ([PAD], [UNK], [CLS], [SEP], [MASK])
TARGET_MS = 1000.0  # the explorer's one-second length
EXTRAPOLATE = 4  # the fit is not trusted beyond this factor outside the measured lengths


def synthetic_batch(loaded: LoadedModel, batch_size: int, length: int, generator: torch.Generator) -> dict:
    """input_ids [B, T] random in [5, vocab) (the first the tokenizer's cls id when it has one), attention_mask
    [B, T] all ones, labels [B] random in {0, 1}; drawn on the CPU from `generator`, moved to the model's device."""
    vocab = int(getattr(loaded.model.config, "vocab_size", 0) or 0)
    if vocab <= FIRST_ID:
        raise UserError(f"the model's vocabulary ({vocab} ids) is too small for synthetic batches")
    ids = torch.randint(FIRST_ID, vocab, (batch_size, length), generator=generator)  # [B, T]
    cls = getattr(loaded.tokenizer, "cls_token_id", None)
    if isinstance(cls, int) and 0 <= cls < vocab:
        ids[:, 0] = cls
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),  # [B, T]
             "labels": torch.randint(0, 2, (batch_size,), generator=generator)}  # [B]
    return {k: v.to(loaded.device) for k, v in batch.items()}


def explorer_ids(loaded: LoadedModel, batch: dict, cfg: AttributionConfig, seed: int = 0):
    """`measure.explorer_view` on token ids: attribution of every layer and head of a batch of one, then the Eq.
    6-7 mask drawn from a CPU generator. Returns (attribution, region, dropped)."""
    one = {k: v for k, v in batch.items() if k != "labels"}
    res = attribute(loaded, one, replace(cfg, layers=None))
    gen = torch.Generator().manual_seed(int(seed))
    region, dropped = make_drops(res.scores, res.key_mask, cfg.p, cfg.q, cfg.mode, cfg.ties, cfg.fixed_rate, gen)
    return res, region, dropped


def loglog_slope(lengths: list[int], ms: list[float | None]) -> float | None:
    """Least-squares slope of log(ms) against log(T) over the measured points (None with fewer than 2)."""
    pts = [(math.log(t), math.log(v)) for t, v in zip(lengths, ms) if v is not None and v > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def length_at(lengths: list[int], ms: list[float | None], target_ms: float = TARGET_MS) -> tuple[float | None, str]:
    """(T, how) where the time reaches `target_ms`: interpolated linearly in log-log between the two measured
    points that bracket it, else extrapolated from the log-log fit (needs 2 points and a positive slope)."""
    pts = [(t, v) for t, v in zip(lengths, ms) if v is not None and v > 0]
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if v0 <= target_ms <= v1 and v1 > v0:
            frac = (math.log(target_ms) - math.log(v0)) / (math.log(v1) - math.log(v0))
            return math.exp(math.log(t0) + frac * (math.log(t1) - math.log(t0))), "interpolated"
    slope = loglog_slope([t for t, _ in pts], [v for _, v in pts])
    if slope is None or slope <= 0.05:
        return None, "not enough measured points, or the time does not grow with T"
    # the fit's intercept: mean(log v) - slope * mean(log t)
    b = (sum(math.log(v) for _, v in pts) - slope * sum(math.log(t) for t, _ in pts)) / len(pts)
    at = math.exp((math.log(target_ms) - b) / slope)
    lo, hi = pts[0][0], pts[-1][0]
    if not lo / EXTRAPOLATE <= at <= hi * EXTRAPOLATE:
        side = "above" if at > hi else "below"
        return None, f"{side} the measured lengths by more than {EXTRAPOLATE}x (fit: T~{at:.3g})"
    return at, "extrapolated from the log-log fit"


def _check(lengths, batch_size, iga_steps, repeats, cap_s) -> list[int]:
    if isinstance(lengths, int) or not lengths:
        raise UserError("lengths: give at least one sequence length, e.g. (32, 64, 128)")
    for t in lengths:
        if isinstance(t, bool) or not isinstance(t, int) or t < 2:
            raise UserError(f"sequence lengths must be integers >= 2, got {t!r}")
    for name, v in (("batch size", batch_size), ("IGA steps", iga_steps), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(cap_s, bool) or not isinstance(cap_s, (int, float)) or not cap_s > 0:
        raise UserError(f"the time cap must be a number of seconds > 0, got {cap_s!r}")
    return sorted(set(lengths))


def length_sweep(loaded: LoadedModel, lengths=(32, 64, 128, 256, 512), batch_size: int = 4, iga_steps: int = 20,
                 repeats: int = 3, cap_s: float = 20.0, progress: Callable[[str], None] | None = None,
                 seed: int = 0, copy: bool = True, threads: int | None = None, precision: str = "fp32") -> dict:
    """Measure every method at every length (see the module docstring); returns the JSON-ready record:

    {"batch_size", "lengths" (the measured ones), "too_long" (over the model's limit, not measured),
     "ms": {method: [median ms or None per T]}, "peak_mb": {method: [...]}, "exponent": {method: slope or None},
     "explorer_ga_1s_max_len", "explorer_ga_1s_interp", "explorer_ga_1s_how", "skipped": {method: reason}, ...}

    `copy`: train a private copy of the model (the loaded one is never changed); False trains `loaded` itself
    (a model built for the measurement only, e.g. gpu.random_model). `threads`: torch's intra-op threads for
    the run (restored afterwards; 1 on a CPU shared with other jobs); None keeps the current setting."""
    todo = _check(lengths, batch_size, iga_steps, repeats, cap_s)
    with torch_threads(threads), allocator_tuned() as tuned:
        rec = _sweep(clone_model(loaded) if copy else loaded, todo, batch_size, iga_steps, repeats,
                     float(cap_s), progress or (lambda s: None), seed, precision)
    rec["mallopt_in_process"] = tuned.applied
    rec["threads"] = torch.get_num_threads() if threads is None else threads
    return rec


def _sweep(loaded, todo, batch_size, iga_steps, repeats, cap_s, say, seed, precision="fp32") -> dict:
    t_start = time.perf_counter()
    dev = loaded.device
    limit = loaded.max_length  # position table (minus RoBERTa's offset), at most 512
    measured = [t for t in todo if t <= limit]
    too_long = [t for t in todo if t > limit]
    stepper = Stepper(loaded, len(measured) * (repeats + 2) * 3 + 10, seed, precision)
    acfgs = {"ga_all": replace(stepper.acfg("ga", None), steps=iga_steps),
             "iga_all": replace(stepper.acfg("iga", None), steps=iga_steps)}
    ecfgs = {"explorer_ga": AttributionConfig(method="ga", layers=None, steps=iga_steps),
             "explorer_iga": AttributionConfig(method="iga", layers=None, steps=iga_steps)}
    gen = torch.Generator().manual_seed(seed)
    ms: dict[str, list[float | None]] = {m: [] for m in SWEEP_METHODS}
    peak: dict[str, list[float | None]] = {m: [] for m in SWEEP_METHODS}
    skipped: dict[str, str] = {}
    unwarmed: dict[str, list[int]] = {}  # lengths whose figure is the warm-up run alone (over the cap)
    say(f"length sweep: {loaded.name} on {dev}, batch {batch_size}, lengths {measured}"
        + (f" ({too_long} over the model's {limit} tokens: skipped)" if too_long else "")
        + f", {repeats} repeat(s), cap {cap_s:g} s per run")

    for T in measured:
        batch = synthetic_batch(loaded, batch_size, T, gen)  # [B, T]
        one = synthetic_batch(loaded, 1, T, gen)  # [1, T]: the explorer's sentence
        fns: dict[str, Callable[[int], object]] = {
            "vanilla": lambda r: stepper.train_step(batch),
            "ga_all": lambda r: stepper.addrop_step(batch, acfgs["ga_all"]),
            "iga_all": lambda r: stepper.addrop_step(batch, acfgs["iga_all"]),
            "explorer_ga": lambda r: explorer_ids(loaded, one, ecfgs["explorer_ga"], seed),
            "explorer_iga": lambda r: explorer_ids(loaded, one, ecfgs["explorer_iga"], seed)}
        active = {m: fn for m, fn in fns.items() if m not in skipped}
        for m in SWEEP_METHODS:
            if m in skipped:
                ms[m].append(None)
                peak[m].append(None)
        if not active:
            continue
        # warm-up: one run each, timed, so that a run over the cap is not repeated
        warm: dict[str, float] = {}
        for m, fn in active.items():
            gc.collect()
            sync(dev)
            t0 = time.perf_counter()
            fn(0)
            sync(dev)
            warm[m] = (time.perf_counter() - t0) * 1000.0
        over = {m for m, w in warm.items() if w > cap_s * 1000.0}
        for m in over:  # its only run at this length: the unwarmed one
            ms[m].append(warm[m])
            peak[m].append(None)
            unwarmed.setdefault(m, []).append(T)
            skipped[m] = (f"one run at T={T} took {warm[m] / 1000.0:.1f} s (warm-up, unwarmed) > cap {cap_s:g} s: "
                          "longer lengths not measured")
        timed = {m: fn for m, fn in active.items() if m not in over}
        if timed:
            res = interleaved(timed, repeats, 0, dev)
            mem = peak_memory_mb({m: (lambda _f=fn: _f(0)) for m, fn in timed.items()}, dev,
                                 before=lambda: stepper.opt.zero_grad(set_to_none=True))
            for m in timed:
                runs = res.wall[m]
                ms[m].append(statistics.median(runs))
                peak[m].append(mem.get(m))
                if max(runs) > cap_s * 1000.0:
                    skipped[m] = (f"one run at T={T} took {max(runs) / 1000.0:.1f} s > cap {cap_s:g} s: longer "
                                  "lengths not measured")
        say(f"  T={T}: " + ", ".join(f"{m} {ms[m][-1]:.0f}" for m in SWEEP_METHODS if ms[m][-1] is not None)
            + " ms" + (f"; capped from here: {sorted(skipped)}" if skipped else ""))

    ga = ms["explorer_ga"]
    within = [t for t, v in zip(measured, ga) if v is not None and v <= TARGET_MS]
    at_1s, how = length_at(measured, ga)
    return {
        "model": loaded.name,
        "device": str(dev),
        "batch_size": batch_size,
        "iga_steps": iga_steps,
        "repeats": repeats,
        "cap_s": cap_s,
        "max_length": limit,
        "layout": "packed" if stepper.packed else "padded",  # the steps' (as a run's)
        "lengths": measured,
        "too_long": too_long,
        "ms": ms,
        "peak_mb": peak,
        "exponent": {m: loglog_slope(measured, v) for m, v in ms.items()},
        "explorer_ga_1s_max_len": max(within) if within else None,
        "explorer_ga_1s_interp": at_1s,
        "explorer_ga_1s_how": how,
        "skipped": skipped,
        "unwarmed": unwarmed,
        "seconds": time.perf_counter() - t_start,
    }
