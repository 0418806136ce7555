"""One sweep cell run from a plain dict in this process: what Ray trials call (local worker processes use
experiments/parallel.py)."""
from __future__ import annotations

import os

from ...config import TrainConfig


def run_cell(cfg_dict: dict, runs_dir: str, threads: int | None = None) -> dict:
    """Run one cell in this process from a plain dict (what Ray trials call)."""
    import torch

    from ...engine.training import train  # imported here: a worker process needs it, an importer does not

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    cfg = TrainConfig.from_dict(cfg_dict)
    res = train(cfg, runs_dir=runs_dir)
    last = res.metrics[-1] if res.metrics else {}
    return {"run": res.id, "status": res.status, "reason": res.reason, "epochs": len(res.metrics),
            **{k: v for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}


def available_cpus() -> int:
    """CPUs this process may use (its affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
