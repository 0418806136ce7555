"""The matrix products each benchmarked step computes, and the rate this device computes them at.

A step's *floor* is its matrix-product FLOPs at the best matrix-product rate measured on this device: the time
its products would take at that rate, everything else free. It is an estimate, not a bound: the rate is measured
on a few product shapes, and another way of computing the same numbers may do fewer products (the reference's GA
does about three times ours). The ratio of two steps' FLOPs is what their time ratio tends to as both approach
their floors. For example, a GA step adds a forward and an input-only backward pass to the vanilla step's forward,
input backward and weight backward: about x1.66 of its FLOPs. A GA / vanilla time ratio below that comes from the
vanilla step's time outside matrix products (optimizer, dropout's random numbers, Python).

`count_flops(fn)` counts, in one call, every operation torch's own FLOP formulas know (`torch.utils.flop_counter`:
mm, addmm, bmm, baddbmm, attention kernels, convolutions), forward and backward alike, decomposing the operations
it has no formula for as `FlopCounterMode` does. `FlopCounterMode` itself tracks modules with hooks that
`torch.autograd.grad`, which attribution calls, does not support. `matmul_rate` times products of the model's
feed-forward shape on the token rows of a step batch and on 4 and 16 times as many rows (IGA's copies make
larger products), in the steps' precision, and keeps the best.
"""
from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .timing import time_call


class _Counter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = flop_registry.get(func._overloadpacket)
        if formula is None and func is not torch.ops.prim.device.default:  # as FlopCounterMode: its parts may count
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if formula is not None:
            self.flops += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products of one call of fn() (a multiply-add counts 2), its backward passes included."""
    counter = _Counter()
    with counter:
        fn()
    return counter.flops


def matmul_rate(device: torch.device, rows: int, hidden: int, inner: int, precision: str = "fp32",
                repeats: int = 20, scales=(1, 4, 16)) -> float:
    """The best GFLOP/s of [rows * k, hidden] x [hidden, inner] products with a bias (the feed-forward layer's shape)
    for k in `scales`, each the median of `repeats` timings after a warm-up, under the steps' `precision`
    (engine.precision.autocast: bf16 products where the steps run in bf16)."""
    from ...engine.precision import autocast

    g = torch.Generator(device="cpu").manual_seed(0)
    w = torch.randn(hidden, inner, generator=g).to(device)
    b = torch.randn(inner, generator=g).to(device)
    best = 0.0
    for k in scales:
        x = torch.randn(rows * k, hidden, generator=g).to(device)
        with autocast(precision, device):
            for _ in range(3):
                torch.addmm(b, x, w)
            ms = statistics.median(time_call(lambda: torch.addmm(b, x, w), device)[0] for _ in range(repeats))
        best = max(best, 2.0 * rows * k * hidden * inner / (ms / 1000.0) / 1e9)
    return best


def step_flops(fns: dict[str, Callable[[int], object]], n_batches: int, step_ms: dict[str, float],
               rate_gflops: float, rate_shape: tuple[int, int, int], precision: str = "fp32") -> dict:
    """The record's `flops`: mean GFLOP of one run of each step over the step batches (run r uses batch r), its
    ratio to the vanilla step's, its floor at `rate_gflops` (measured on `rate_shape`, the smallest product tried,
    in `precision`), the share of its median time that floor is, and `ratio_floor`, the FLOP-limited ratio."""
    gflop = {k: statistics.fmean(count_flops(lambda: fn(r)) for r in range(n_batches)) / 1e9
             for k, fn in fns.items()}
    floor = {k: v / rate_gflops * 1000.0 for k, v in gflop.items()}
    vanilla = step_ms.get("vanilla")
    return {"gflop": gflop,
            "x_vanilla": {k: v / gflop["vanilla"] for k, v in gflop.items()} if gflop.get("vanilla") else {},
            "matmul_gflop_per_s": rate_gflops, "rate_shape": list(rate_shape), "precision": precision,
            "floor_ms": floor,
            "floor_share": {k: floor[k] / step_ms[k] for k in floor if step_ms.get(k)},
            # the FLOP-limited step / vanilla ratio, an estimate: the step's own training pass costing the vanilla
            # step's median, everything it adds (attribution, masks) taking its products' time at the best rate
            "ratio_floor": ({k: 1.0 + (floor[k] - floor["vanilla"]) / vanilla for k in floor}
                            if vanilla and "vanilla" in floor else {})}


def flop_record(fns: dict[str, Callable[[int], object]], n_batches: int, step_ms: dict[str, float],
                device: torch.device, rows: int, model_config, precision: str = "fp32") -> dict:
    """step_flops at the rate `matmul_rate` measures for the model's feed-forward shape on `rows` token rows (the
    rows a step batch's linear layers see), in the steps' precision: what the benchmark and the GPU check record."""
    hidden = model_config.hidden_size
    shape = (rows, hidden, getattr(model_config, "intermediate_size", 4 * hidden))
    return step_flops(fns, n_batches, step_ms, matmul_rate(device, *shape, precision=precision), shape, precision)
