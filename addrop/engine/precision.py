"""The arithmetic of a run's passes (`TrainConfig.precision`): fp32, or bf16 through `torch.autocast` (matrix
products in bf16; the weights, gradients and optimizer state stay fp32: mixed precision, as the Hugging Face
Trainer's `bf16=True`). `auto` takes bf16 only where the device computes it natively, since emulated bf16 is
slower than fp32. The explorer always attributes in fp32."""
from __future__ import annotations

import functools
from contextlib import nullcontext

import torch

from ..errors import UserError

NATIVE_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 instructions that compute bf16 products


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_flags() & NATIVE_CPU_FLAGS)


def resolve_precision(precision: str, device) -> str:
    """fp32 or bf16: what `precision` (fp32, bf16, auto) comes to on `device`."""
    kind = torch.device(device).type
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and kind not in ("cpu", "cuda"):
        raise UserError(f"precision bf16 runs on the CPU or a CUDA GPU, not on {kind}: use fp32 (or auto)")
    return precision


def ran_in(recs) -> list[str]:
    """The precisions a group of run records (engine.runs.list_runs) ran in, sorted; fp32 for a record written
    before the setting existed."""
    return sorted({str(r.config.get("precision") or "fp32") for r in recs if isinstance(r.config, dict)})


def autocast(precision: str, device):
    """The context one pass runs in: autocast to bf16 for "bf16", nothing for "fp32"."""
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
