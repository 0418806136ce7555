"""Early stopping and the best epoch: which epoch of a run is best (the dev loss, lower is better, or the task's
primary dev metric, higher is better), when to stop (patience), and the best epoch's weights when they are kept.

The trainer feeds it one epoch record at a time; the run's summary (status.json) names the best epoch beside the
last, and `best_epoch` finds it again in any run's metrics (records written before this existed included).
"""
from __future__ import annotations

import math

TOLERANCE = 1e-6  # an epoch must beat the best by more than this to count as better


def watched(stop_on: str, primary_metric: str) -> tuple[str, bool]:
    """(record key, higher is better) of what early stopping and the best epoch watch."""
    if stop_on == "metric":
        return f"dev_{primary_metric}", True
    return "dev_loss", False


def _value(rec: dict, key: str) -> float | None:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


def best_epoch(metrics: list[dict], key: str, higher: bool) -> dict | None:
    """The record of the best epoch by `key` (the first of equal ones), or None when no record has it."""
    best, best_v = None, None
    for rec in metrics:
        v = _value(rec, key)
        if v is None:
            continue
        if best_v is None or (v > best_v + TOLERANCE if higher else v < best_v - TOLERANCE):
            best, best_v = rec, v
    return best


def _cpu_copy(model) -> dict:
    return {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}


class BestTracker:
    """Per epoch: is it the best so far (then its weights are copied when `keep` is on), and has patience run
    out (`patience` 0: never stop early). `keep_last` (a run that writes its weights without keeping the best):
    each finished epoch's weights are copied too, so that a run stopped during an epoch can still write those of
    the last epoch it finished (`stop_weights`)."""

    def __init__(self, stop_on: str, primary_metric: str, patience: int = 0, keep: bool = False,
                 keep_last: bool = False):
        self.key, self.higher = watched(stop_on, primary_metric)
        self.patience, self.keep = int(patience), bool(keep)
        self.keep_last = bool(keep_last) and not self.keep
        self.best: dict | None = None
        self.bad_epochs = 0
        self.state: dict | None = None  # the best epoch's weights (CPU copies) when kept
        self.last: dict | None = None
        self.last_state: dict | None = None  # the last finished epoch's weights with keep_last
        self.weights_epoch: int | None = None  # the epoch whose weights a stopped run wrote (its summary says it)

    def update(self, rec: dict, model=None) -> bool:
        """Take one epoch's record; True when training should stop (patience spent)."""
        self.last = dict(rec)
        v = _value(rec, self.key)
        b = _value(self.best, self.key) if self.best is not None else None
        better = v is not None and (b is None or (v > b + TOLERANCE if self.higher else v < b - TOLERANCE))
        if better:
            self.best, self.bad_epochs = dict(rec), 0
            if self.keep and model is not None:
                self.state = _cpu_copy(model)
        else:
            self.bad_epochs += 1
        if self.keep_last and model is not None:
            self.last_state = _cpu_copy(model)
        return bool(self.patience) and self.bad_epochs >= self.patience

    def stop_weights(self) -> tuple[dict | None, int | None]:
        """(weights, epoch) a run stopped during an epoch writes: the best epoch's where they are kept, else the
        last finished epoch's (keep_last); (None, None) before any epoch finished or when nothing was kept."""
        if self.state is not None:
            return self.state, self.best.get("epoch")
        if self.last_state is not None:
            return self.last_state, self.last.get("epoch")
        return None, None

    def summary(self) -> dict:
        """What the run's status.json says: the watched key, the best epoch and its value, the last epoch."""
        out = {"best_by": self.key, "last_epoch": self.last.get("epoch") if self.last else None}
        if self.best is not None:
            out.update(best_epoch=self.best.get("epoch"), best_value=self.best.get(self.key),
                       best_kept=self.state is not None)
        if self.weights_epoch is not None:
            out["weights_epoch"] = self.weights_epoch
        return out
