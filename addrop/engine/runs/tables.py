"""Run records as tables for display: one row per run (`runs_table`) or per (run, epoch) (`metrics_frame`)."""
from __future__ import annotations

import os
from typing import Iterable

from ..selection import best_epoch, watched
from .reader import RunRecord, list_runs


def _flat(record: dict) -> dict:
    """One level of nesting flattened with '_': {"dev": {"accuracy": 1}} -> {"dev_accuracy": 1}."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}_{k2}"] = v2
        else:
            out[k] = v
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


BASE_COLUMNS = ["id", "group", "task", "model", "strategy", "method", "p", "q", "seed", "status", "epochs",
                "train_loss", "dev_loss", "best_epoch", "best_by", "best_value"]


def _best(cfg: dict, metrics: list[dict]) -> dict:
    """The best epoch beside the last (engine/selection.py): by what the run watched (its stop_on; the dev loss
    for records written before there was a choice)."""
    key, higher = watched(cfg.get("stop_on") or "loss", cfg.get("primary_metric") or "accuracy")
    best = best_epoch([_flat(m) for m in metrics], key, higher)
    return {"best_epoch": best.get("epoch") if best else None, "best_by": key,
            "best_value": best.get(key) if best else None}


def _mask_columns(strategy, att: dict) -> dict:
    """method, p, q as a run actually used them: none for unmasked runs; the prior experiment's drop-* runs use
    gold-label GA and drop exactly the top-p share, so q does not apply (training.masking_config)."""
    if strategy in (None, "vanilla", "none"):
        return {"method": None, "p": None, "q": None}
    if isinstance(strategy, str) and strategy.startswith("drop-"):
        return {"method": "random" if strategy == "drop-random" else "ga (gold)", "p": att.get("p"), "q": None}
    return {"method": att.get("method"), "p": att.get("p"), "q": att.get("q")}


def _records(records) -> Iterable[RunRecord]:
    """Run records as given, or those of a runs folder (list_runs)."""
    return list_runs(records) if isinstance(records, (str, os.PathLike)) else records


def runs_table(records: Iterable[RunRecord] | str | os.PathLike):
    """One row per run: id, group, task, model, strategy, method, p, q, seed, status, epochs (done), the last
    train_loss and dev_loss, the best epoch (by what the run watched) and its value, every last ``dev_*`` metric,
    started, reason. `records`: run records (list_runs), or a runs folder to list."""
    import pandas as pd

    rows = []
    metric_cols: list[str] = []
    for r in _records(records):
        cfg = r.config if isinstance(r.config, dict) else {}
        att = cfg.get("attribution") if isinstance(cfg.get("attribution"), dict) else {}
        last = _flat(r.metrics[-1]) if r.metrics else {}
        row = {
            "id": r.id,
            "group": r.group,
            "task": cfg.get("task"),
            "model": cfg.get("model"),
            "strategy": cfg.get("strategy"),
            **_mask_columns(cfg.get("strategy"), att),
            "seed": cfg.get("seed"),
            "status": r.status,
            "epochs": r.epochs_done,
            "train_loss": last.get("train_loss") if _is_number(last.get("train_loss")) else None,
            "dev_loss": last.get("dev_loss") if _is_number(last.get("dev_loss")) else None,
            **_best(cfg, r.metrics),
        }
        for k, v in last.items():
            if k.startswith("dev_") and k != "dev_loss" and _is_number(v):
                row[k] = v
                if k not in metric_cols:
                    metric_cols.append(k)
        row["started"] = r.started
        row["reason"] = r.reason
        rows.append(row)
    cols = BASE_COLUMNS + metric_cols + ["started", "reason"]
    return pd.DataFrame(rows, columns=cols)


def metrics_frame(records: Iterable[RunRecord] | str | os.PathLike):
    """Long form for curves: one row per (run, epoch) with run, group, strategy, seed and the flattened record.
    `records`: run records (list_runs), or a runs folder to list."""
    import pandas as pd

    rows = []
    for r in _records(records):
        for i, m in enumerate(r.metrics):
            seed = r.config.get("seed") if isinstance(r.config, dict) else None
            row = {"run": r.id, "group": r.group, "strategy": r.strategy,
                   "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None}
            row.update(_flat(m))
            row.setdefault("epoch", i + 1)
            rows.append(row)
    return pd.DataFrame(rows)
