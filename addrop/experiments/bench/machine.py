"""The machine a benchmark ran on, and glibc's allocator settings for it (see measure.py's docstring)."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

from ...engine.allocator import GLIBC_DEFAULT, MALLOC_ENV, env_set, mallopt, tune_for_training


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
        "set": env_set()}


class allocator_tuned:
    """Without the MALLOC_* variables (an in-process run, e.g. a test), set the same thresholds with mallopt()
    for the duration of the run and put glibc's defaults back afterwards (mallopt's values are capped at
    2 GiB; nothing this benchmark allocates comes near)."""

    def __enter__(self):
        self.applied = tune_for_training()
        return self

    def __exit__(self, *exc):
        if self.applied:
            mallopt(GLIBC_DEFAULT, GLIBC_DEFAULT)
        return False


def peak_rss_mb() -> float | None:
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if sys.platform != "darwin" else kb / 2**20
    except (ImportError, OSError):  # pragma: no cover - Windows
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None
