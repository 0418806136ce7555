"""Reading groups of runs back: which groups lie under a runs folder and of what kind (a prior experiment, a
comparison, neither), and a comparison's summary tables, counted over the seeds whose runs have all finished.
"""
from __future__ import annotations

from pathlib import Path

from ..config import PRIOR_STRATEGIES
from ..engine.runs import list_runs
from .plans import COMPARE, COMPARE_STRATEGIES, PRIOR
from .sweeps.spec import SWEEP_FILE


def _run_fields(run) -> tuple[str, int | None, str]:
    """(strategy, seed, status) of a run record (engine.runs) or of a plan's live entry {strategy, seed, status}."""
    if isinstance(run, dict):
        return run.get("strategy"), run.get("seed"), run.get("status")
    seed = run.config.get("seed") if isinstance(run.config, dict) else None
    return run.strategy, seed, run.status


def finished_seeds(runs) -> tuple[set[int], list[str]]:
    """The seeds of a comparison whose runs have all finished, and for each other seed what its runs are doing
    ("seed 1: vanilla stopped, addrop waiting"). A seed whose runs stopped or are still under way has no last
    epoch to compare: its runs' last epochs are not the comparison's."""
    by_seed: dict = {}
    for run in runs:
        strategy, seed, status = _run_fields(run)
        if isinstance(seed, int) and not isinstance(seed, bool):
            by_seed.setdefault(seed, []).append((strategy, status))
    done, notes = set(), []
    for seed in sorted(by_seed):
        runs_of = by_seed[seed]
        if all(status == "finished" for _, status in runs_of) and {s for s, _ in runs_of} >= set(COMPARE_STRATEGIES):
            done.add(seed)
        else:
            notes.append(f"seed {seed}: " + ", ".join(f"{s} {status}" for s, status in runs_of))
    return done, notes


def comparable(frame, runs):
    """(the rows of `frame` whose seed's runs have all finished, notes on the other seeds): what a comparison's
    verdict and tables at the last epoch read (`finished_seeds`)."""
    done, notes = finished_seeds(runs)
    if frame is None or frame.empty or "seed" not in frame:
        return frame.iloc[:0] if frame is not None else frame, notes
    return frame[frame["seed"].isin(done)], notes


def last_epoch_metrics(frame):
    """Per strategy: the dev metrics at each run's last epoch, mean and sd over seeds (an empty table for none).
    A comparison with seeds still under way reads them over its finished seeds (`comparable`), and `epoch_cost`
    over every epoch."""
    import pandas as pd

    if frame is None or frame.empty:
        return pd.DataFrame()
    last = frame.sort_values("epoch").groupby("run").tail(1)
    mcols = [c for c in frame.columns if c.startswith("dev_")]
    rows = []
    for strategy, g in last.groupby("strategy", sort=False):
        row = {"strategy": strategy, "seeds": int(g["seed"].nunique()) if "seed" in g else len(g),
               "epochs": int(g["epoch"].max())}
        for c in mcols:
            vals = pd.to_numeric(g[c], errors="coerce").dropna()
            if vals.empty:
                continue
            row[c] = float(vals.mean())
            if len(vals) > 1:
                row[c + " (sd)"] = float(vals.std())
        rows.append(row)
    return pd.DataFrame(rows)


def epoch_cost(frame):
    """(cost table, ratio): mean seconds per epoch over all epochs, the plain ones and the AD-DROP ones
    (cross-tuning alternates them), per strategy; ratio = seconds per AD-DROP epoch of the addrop runs / seconds
    per epoch of the vanilla runs (None when one of them is missing)."""
    import pandas as pd

    if frame is None or frame.empty:
        return pd.DataFrame(), None
    cost_rows = []
    for strategy, g in frame.groupby("strategy", sort=False):
        r = {"strategy": strategy, "all epochs": float(g["seconds"].mean())}
        if "addrop_epoch" in g:
            ad = g[g["addrop_epoch"].astype(bool)]
            plain = g[~g["addrop_epoch"].astype(bool)]
            r["plain epochs"] = float(plain["seconds"].mean()) if not plain.empty else None
            r["AD-DROP epochs"] = float(ad["seconds"].mean()) if not ad.empty else None
        cost_rows.append(r)
    cost = pd.DataFrame(cost_rows)
    ratio = None
    if not cost.empty and set(COMPARE_STRATEGIES) <= set(cost["strategy"]):
        van = float(cost.loc[cost["strategy"] == "vanilla", "all epochs"].iloc[0])
        ad_row = cost.loc[cost["strategy"] == "addrop"].iloc[0]
        ad = ad_row.get("AD-DROP epochs")
        ad = float(ad) if ad is not None and pd.notna(ad) else float(ad_row["all epochs"])
        ratio = ad / van if van > 0 else None
    return cost, ratio


def kind_of(strategies: set) -> str | None:
    """prior / compare from the strategies of a group's runs (None when it is neither)."""
    if strategies and strategies <= set(PRIOR_STRATEGIES):
        return PRIOR
    if strategies and strategies <= set(COMPARE_STRATEGIES):
        return COMPARE
    return None


def _kind(root: Path, recs) -> str | None:
    """prior / compare from a group's runs; None when it is neither, or when its runs belong to a p x q sweep (a
    folder with sweep.json: the sweeps page's and the replication study's groups also hold vanilla and addrop
    runs, but their cells are not one comparison's seeds)."""
    if any((root / r.group / SWEEP_FILE).is_file() for r in recs if r.group):
        return None
    return kind_of({r.strategy for r in recs})


def group_kind(root) -> str | None:
    """prior / compare from a group folder's runs (None when it is neither)."""
    root = Path(root)
    return None if (root / SWEEP_FILE).is_file() else _kind(root, list_runs(root))


def list_groups(runs_dir, kind: str | None = None) -> list[dict]:
    """Group folders under runs_dir, newest first: name, path, kind, runs, statuses."""
    out = []
    root = Path(runs_dir)
    if not root.is_dir():
        return out
    by_group: dict = {}
    for r in list_runs(root):
        if r.group:
            by_group.setdefault(r.group.split("/")[0], []).append(r)
    for name, recs in by_group.items():
        k = _kind(root, recs)
        if kind is not None and k != kind:
            continue
        out.append({"name": name, "path": str(root / name), "kind": k, "runs": len(recs),
                    "status": _group_status(recs), "started": min(r.start_ts() for r in recs)})
    out.sort(key=lambda d: d["started"], reverse=True)
    return out


def _group_status(recs) -> str:
    sts = [r.status for r in recs]
    for s in ("running", "failed", "stopped", "incomplete", "corrupt"):
        if s in sts:
            return s
    return "finished" if all(s == "finished" for s in sts) else sts[-1]
