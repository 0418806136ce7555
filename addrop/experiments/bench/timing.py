"""Timing and memory measurement: interleaved repeats on two clocks, and peak tensor memory (see measure.py)."""
from __future__ import annotations

import bisect
import gc
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

from ...errors import UserError


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op threads set to `threads` for the duration (None: left as they are), restored after; a
    value that is not an integer >= 1 is a UserError."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads must be an integer >= 1, got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall-clock ms, process CPU ms) of fn(), synchronised on accelerators."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return (time.perf_counter() - t0) * 1000.0, (time.process_time() - c0) * 1000.0


TRIM = 0.2  # share of the repeats cut from each end for the trimmed mean


def trimmed_mean(values: list[float], trim: float = TRIM) -> float:
    """The mean of the values left after cutting the lowest and the highest `trim` share (at least one value is
    kept): a repeat slowed by a neighbour's load weighs nothing, and, unlike the median, every middle repeat
    counts."""
    v = sorted(values)
    k = min(int(len(v) * trim), (len(v) - 1) // 2)
    return statistics.fmean(v[k:len(v) - k])


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "trimmed": trimmed_mean(values),
            "max": max(values), "n": len(values)}


@dataclass
class Timed:
    """Per-repeat milliseconds by name, on both clocks: index r is round r, whatever its place in the round."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def interleaved(fns: dict[str, Callable[[int], object]], repeats: int, warmup: int, device: torch.device,
                progress: Callable[[str], None] | None = None,
                before: Callable[[str], object] | None = None) -> Timed:
    """Run every fn(repeat) `warmup` times, then `repeats` rounds with each fn once in a rotated order.
    `before(name)` runs ahead of each call, outside the timed range (e.g. a fresh copy of the model)."""
    names = list(fns)
    for w in range(warmup):
        for name in names:
            if before:
                before(name)
            fns[name](w)
    out = Timed({n: [] for n in names}, {n: [] for n in names})
    for r in range(repeats):
        gc.collect()
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if before:
                before(name)
            wall, cpu = time_call(lambda: fns[name](r), device)
            out.wall[name].append(wall)
            out.cpu[name].append(cpu)
        if progress:
            progress(f"  round {r + 1}/{repeats}: " + ", ".join(
                f"{n} {out.wall[n][-1]:.0f} ({out.cpu[n][-1]:.0f})" for n in names) + " ms wall (cpu)")
    return out


def paired(num: list[float], den: list[float]) -> list[float]:
    """Per-repeat ratios of two series measured in the same rounds."""
    return [a / b for a, b in zip(num, den)]


@contextmanager
def native_stderr_silenced():
    """File descriptor 2 sent to /dev/null for the duration: torch's profiler writes a line from C++ each time it
    starts and stops, and a warning about blocks allocated before it started, none of which a user can act on.
    Whatever else is written to stderr meanwhile is lost too (the memory runs repeat steps already timed)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to redirect: nothing to silence
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        os.close(saved)
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
        with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
