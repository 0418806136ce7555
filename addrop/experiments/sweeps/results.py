"""Reading a sweep folder: the per-cell table, the best cell and the paper's Figure 6 heatmap.

`sweep_table(folder)` has one row per (p, q) cell plus one for the baseline: the mean/std over seeds of a dev
metric and its difference to the baseline's mean. `best_cell` picks the best row, `sweep_verdict` says whether any
cell differs from the baseline beyond noise (and names the best cell only then), and `write_table` (re)writes
table.csv in the folder (the Figure 6 heatmap is drawn by addrop/studio/plots.py). `load_sweep`, `list_sweeps`,
`cell_runs` and `progress` read sweep.json and the run records. Everything comes from the run records, so a
sweep can be read while it runs, whichever backend runs it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

from ...config import is_csv_task
from ...errors import UserError
from ...engine.runs import FINAL_STATUSES, RunRecord, atomic_write_text, is_plain_file, list_runs, read_json
from ...engine.selection import best_epoch
from .spec import SWEEP_FILE, SweepSpec, baseline_name, cell_name

TABLE_FILE = "table.csv"
NOISE_TOL = 1e-3  # differences of a dev metric (or loss) to the baseline below this are noise, whatever the seeds
HEATMAP_FILE = "heatmap.html"


def primary_metric(records: Iterable[RunRecord]) -> str:
    for r in records:
        m = r.config.get("primary_metric") if isinstance(r.config, dict) else None
        if isinstance(m, str) and m:
            return m
    return "accuracy"


def higher_is_better(metric: str) -> bool:
    """Every GLUE metric is; a loss is not."""
    return not metric.endswith("loss")


def _score(rec: RunRecord, key: str, which: str) -> float | None:
    vals = [m.get(key) for m in rec.metrics if isinstance(m.get(key), (int, float))
            and not isinstance(m.get(key), bool) and math.isfinite(m.get(key))]
    if not vals:
        return None
    if which != "best":
        return float(vals[-1])
    return float(max(vals)) if higher_is_better(key) else float(min(vals))


def _mean(xs: list) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def check_metric(base, metric: str | None) -> None:
    """Before a sweep runs: `metric` (None: the task's primary one) must be one its runs will record."""
    if metric is None:
        return
    from ...engine.tasks import get_task

    name = metric[4:] if metric.startswith("dev_") else metric
    if is_csv_task(base.task) or base.source == "csv" or base.csv:
        known = ("accuracy", "pearson", "spearman", "loss")  # classification or regression, from the file
    else:
        known = tuple(get_task(base.task).metrics) + ("loss",)
    if name not in known:
        raise UserError(f"unknown --metric {metric!r} for task {base.task}: choose one of {', '.join(known)}")


def load_sweep(folder: str | os.PathLike) -> tuple[dict, list[RunRecord]]:
    """(sweep.json as a dict, the run records in the folder). Missing or broken sweep.json -> UserError."""
    folder = Path(folder)
    meta, err = read_json(folder / SWEEP_FILE)
    if err is not None or not isinstance(meta, dict):
        raise UserError(f"{folder} is not a sweep folder ({SWEEP_FILE} {'missing' if err == 'missing' else err})")
    return meta, list_runs(folder, recursive=False)


def list_sweeps(root: str | os.PathLike) -> list[Path]:
    """Sweep folders directly under `root` (and one level deeper), newest first. Missing root -> []."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for pattern in (f"*/{SWEEP_FILE}", f"*/*/{SWEEP_FILE}"):
        found += [p.parent for p in root.glob(pattern) if not any(part.startswith(".") for part in p.parts[-3:-1])
                  and is_plain_file(p) and not p.parent.is_symlink() and not p.parent.parent.is_symlink()]
    found.sort(key=lambda p: (p / SWEEP_FILE).stat().st_mtime, reverse=True)
    return found


def sweep_table(folder: str | os.PathLike, which: str = "best", metric: str | None = None):
    """One row per cell (p, q) plus one `baseline` row: mean/std over seeds of the dev metric, one column per
    seed, the difference of the mean to the baseline's mean (`delta`), and how many seeds are finished.

    `which`: best (the best epoch, as the paper's early stopping picks it) or last (the final epoch). `metric`:
    a dev metric name (accuracy, f1, mcc, pearson, ... or loss, where lower is better); default the task's
    primary metric. The table carries `metric`, `which`, `baseline` and `higher_is_better` in ``table.attrs``.
    """
    import pandas as pd

    if which not in ("best", "last"):
        raise UserError(f"unknown score {which!r}: choose best or last")
    meta, records = load_sweep(folder)
    grid = meta.get("grid") or {}
    seeds = [int(s) for s in grid.get("seeds", [])]
    metric = metric or primary_metric(records)
    key = metric if metric.startswith("dev_") else f"dev_{metric}"
    values: dict = {}  # (kind, p, q) -> {seed: score}
    besides: dict = {}  # (kind, p, q) -> [(last epoch's score, best epoch)] per finished seed
    statuses: dict = {}
    for r in records:
        cfg = r.config if isinstance(r.config, dict) else {}
        att = cfg.get("attribution") if isinstance(cfg.get("attribution"), dict) else {}
        seed = cfg.get("seed")
        if cfg.get("strategy") == "vanilla":
            k = ("baseline", None, None)
        elif cfg.get("strategy") == "addrop" and isinstance(att.get("p"), (int, float)):
            k = ("cell", round(float(att["p"]), 6), round(float(att["q"]), 6))
        else:
            continue
        if r.id != (baseline_name(seed) if k[0] == "baseline" else cell_name(k[1], k[2], seed)):
            continue  # a stray run in the folder
        statuses.setdefault(k, {})[seed] = r.status
        s = _score(r, key, which) if r.status == "finished" else None
        if s is not None:
            values.setdefault(k, {})[seed] = s
            best = best_epoch(r.metrics, key, higher_is_better(key))
            besides.setdefault(k, []).append((_score(r, key, "last"), best.get("epoch") if best else None))
    seen = {k for r in records for m in r.metrics for k in m if k.startswith("dev_")}
    if seen and key not in seen:
        names = ", ".join(sorted(k[4:] for k in seen))
        raise UserError(f"the runs of this sweep have no dev metric {metric!r}: choose one of {names}")
    keys = [("baseline", None, None)] if grid.get("baseline", True) else []
    keys += [("cell", round(float(p), 6), round(float(q), 6)) for p in grid.get("p", []) for q in grid.get("q", [])]
    for k in list(values) + list(statuses):  # cells from a merged, older grid
        if k not in keys:
            keys.append(k)
    rows = []
    for k in keys:
        v = values.get(k, {})
        nums = list(v.values())
        mean = sum(nums) / len(nums) if nums else math.nan
        std = (math.sqrt(sum((x - mean) ** 2 for x in nums) / (len(nums) - 1)) if len(nums) > 1
               else (0.0 if nums else math.nan))
        st = statuses.get(k, {})
        row = {"kind": k[0], "p": k[1], "q": k[2], "mean": mean, "std": std, "n": len(nums),
               "running": sum(1 for x in st.values() if x == "running"),
               "failed": sum(1 for x in st.values() if x in ("failed", "stopped", "incomplete", "corrupt"))}
        pairs = besides.get(k, [])  # the best epoch beside the last: both scores and where the best one was
        row["last_mean"] = _mean([a for a, _ in pairs if a is not None])
        row["best_epoch"] = _mean([b for _, b in pairs if isinstance(b, int)])
        for s in seeds or sorted(v):
            row[f"s{s}"] = v.get(s, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    base = table.loc[table["kind"] == "baseline", "mean"]
    base_mean = float(base.iloc[0]) if len(base) and not math.isnan(base.iloc[0]) else math.nan
    table["delta"] = table["mean"] - base_mean if not math.isnan(base_mean) else math.nan
    table.attrs.update(metric=metric, which=which, baseline=base_mean, higher_is_better=higher_is_better(key),
                       name=meta.get("name"),
                       task=(meta.get("base") or {}).get("task"), model=(meta.get("base") or {}).get("model"),
                       expected=len(keys) * max(1, len(seeds)))
    return table


def best_cell(table) -> dict | None:
    """The cell with the best mean (the highest; the lowest for a loss; ties: smaller p, then smaller q) as a
    dict, or None."""
    cells = table[(table["kind"] == "cell") & table["n"].gt(0)]
    if cells.empty:
        return None
    higher = table.attrs.get("higher_is_better", True)
    row = cells.sort_values(["mean", "p", "q"], ascending=[not higher, True, True]).iloc[0]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.to_dict().items()}


def delta_text(delta: float, higher: bool = True, sign: bool = True) -> str:
    """A difference of a dev metric in the heatmap's units: points (x 100, as GLUE scores are quoted) for a metric,
    the raw value for a loss. `sign`: always show + or -."""
    fmt = "+" if sign else ""
    return f"{delta * 100:{fmt}.2f} points" if higher else f"{delta:{fmt}.4f}"


def sweep_verdict(table, tol: float = NOISE_TOL) -> dict:
    """Whether the grid shows anything. A cell differs from the baseline when |delta| exceeds both `tol` and the
    seeds' spread (the cell's sd plus the baseline's; 0 with one seed). Returns {"best": the best cell (as
    best_cell gives it) when it beats the baseline beyond noise (without a baseline: when the cells' means differ
    by more than tol), else None; "differs": how many cells differ; "sentence": what to say}."""
    best = best_cell(table)
    cells = table[(table["kind"] == "cell") & table["n"].gt(0)]
    if best is None:
        return {"best": None, "differs": 0, "sentence": "No cell has finished yet."}
    higher = table.attrs.get("higher_is_better", True)
    metric = table.attrs.get("metric", "metric")
    base = table[table["kind"] == "baseline"]
    base_std = float(base["std"].iloc[0]) if len(base) and base["n"].iloc[0] > 0 else math.nan
    if math.isnan(table.attrs.get("baseline", math.nan)):
        spread = float(cells["mean"].max() - cells["mean"].min())
        if spread <= tol:
            return {"best": None, "differs": 0, "sentence": f"Every cell has the same {metric} within {tol:g} "
                    f"(spread {spread:.4f}) and there is no baseline: no cell stands out."}
        return {"best": best, "differs": len(cells), "sentence": f"Highest mean: p={best['p']:g} q={best['q']:g} "
                f"({best['mean']:.4f}); there is no baseline to compare it with."}
    noise = [max(tol, (0.0 if math.isnan(r["std"]) else r["std"]) + (0.0 if math.isnan(base_std) else base_std))
             for _, r in cells.iterrows()]
    beyond = [(r, n) for (_, r), n in zip(cells.iterrows(), noise) if abs(r["delta"]) > n]
    better = [r for r, _ in beyond if (r["delta"] > 0) == higher]
    largest = float(cells["delta"].abs().max())
    seeds = int(cells["n"].max())
    tol_text = delta_text(tol, higher, sign=False)
    how = (f"{tol_text} (the least difference counted) or the seeds' spread" if seeds > 1 else
           f"{tol_text} (the least difference counted; one seed gives no spread to judge by)")
    if not beyond:
        scores = table.loc[table["n"].gt(0), "mean"]
        same = len(scores) > 1 and float(scores.max() - scores.min()) < 1e-9
        return {"best": None, "differs": 0, "sentence": f"No cell differs from the baseline beyond noise: the "
                f"largest |Δ {metric}| is {delta_text(largest, higher, sign=False)}, within {how}. There is no "
                "best cell." + (f" Every run, the baseline's included, has the same {metric} ({scores.iloc[0]:.4f}): "
                                "the models may have learned nothing yet (a classifier that predicts one class for "
                                "every example scores like this); train more epochs, on more examples or with a "
                                "larger learning rate." if same else "")}
    if not better:
        return {"best": None, "differs": len(beyond), "sentence": f"No cell beats the baseline beyond noise; "
                f"{len(beyond)} of {len(cells)} are worse by more than {how}."}
    if not any(r["p"] == best["p"] and r["q"] == best["q"] for r in better):
        row = max(better, key=lambda r: r["mean"] if higher else -r["mean"])
        best = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.to_dict().items()}
    return {"best": best, "differs": len(beyond), "sentence": f"Best cell p={best['p']:g} q={best['q']:g}: Δ {metric} "
            f"{delta_text(best['delta'], higher)} against the baseline, beyond {how}; {len(better)} of {len(cells)} "
            "cells beat the baseline beyond noise."}


def write_table(folder: str | os.PathLike, which: str = "best", metric: str | None = None):
    """(Re)write table.csv of a sweep folder; returns the table."""
    folder = Path(folder)
    table = sweep_table(folder, which=which, metric=metric)
    atomic_write_text(folder / TABLE_FILE, table.to_csv(index=False, float_format="%.6g"))
    return table


def cell_runs(folder: str | os.PathLike, p: float | None, q: float | None) -> list[RunRecord]:
    """The run records of one cell (every seed); p = q = None gives the baseline runs."""
    _, records = load_sweep(folder)
    out = []
    for r in records:
        cfg = r.config if isinstance(r.config, dict) else {}
        att = cfg.get("attribution") if isinstance(cfg.get("attribution"), dict) else {}
        if p is None:
            if cfg.get("strategy") == "vanilla":
                out.append(r)
        elif (cfg.get("strategy") == "addrop" and isinstance(att.get("p"), (int, float))
              and round(float(att["p"]), 6) == round(float(p), 6) and round(float(att["q"]), 6) == round(float(q), 6)):
            out.append(r)
    return out


def progress(folder: str | os.PathLike) -> dict:
    """Counts of the sweep's runs by status and how many are expected, for a live display."""
    meta, records = load_sweep(folder)
    spec = SweepSpec.from_dict(meta)
    names = {c.name for c in spec.cells()}
    by = {}
    for r in records:
        if r.id in names:
            by[r.status] = by.get(r.status, 0) + 1
    live = [r.id for r in records if r.id in names and r.status == "running"]
    return {"expected": len(names), "by_status": by, "finished": by.get("finished", 0), "running": live,
            "done": sum(v for k, v in by.items() if k in FINAL_STATUSES)}


__all__ = ["check_metric", "sweep_table", "best_cell", "delta_text", "sweep_verdict", "write_table", "load_sweep",
           "list_sweeps", "cell_runs", "progress"]
