"""Glue between the app's job runner (jobs.py) and training.py, with no Streamlit import.

The app builds a `Plan` (a group of runs that share data and, per seed, a model) with `prior_plan` or
`compare_plan`, and submits `run_plan` to the job runner. `run_plan` trains the runs one after the other into
`<runs_dir>/<group>/<run>` (the same layout as `python -m addrop prior`), posts progress with
`job.update(fraction=..., message=..., epochs=[...], runs=[...])` after every step and epoch, stops when
`job.should_stop()` (the current run is recorded as stopped, the rest are not started), and writes
`curves.html` into the group folder at the end.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .config import PRIOR_STRATEGIES, AttributionConfig, TrainConfig, resolve_layers
from .errors import UserError
from .runs import atomic_write_text, list_runs, metrics_frame, safe_child, safe_run_id

PRIOR = "prior"
COMPARE = "compare"


@dataclass
class Plan:
    kind: str  # prior | compare
    group: str  # folder under runs_dir
    runs_dir: str
    configs: list[TrainConfig]
    title: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return safe_child(self.runs_dir, self.group)

    @property
    def total_epochs(self) -> int:
        return sum(c.epochs for c in self.configs)


def prior_plan(base: TrainConfig, rate: float, layers, runs_dir: str, group: str | None = None,
               strategies=PRIOR_STRATEGIES) -> Plan:
    """The prior experiment (paper Section 2.2): the same data, seed and model, four strategies (none, random,
    low, high) that drop a fixed share `rate` of each attention row in `layers`, chosen by gold-label GA."""
    attr = AttributionConfig(method="ga", target="gold", layers=layers, p=rate, q=0.5, seed=base.seed)
    configs = [replace(base, strategy=s, attribution=attr, name=s, clean_train_loss=True) for s in strategies]
    for c in configs:
        c.__post_init__()
    group = safe_run_id(group, prefix="prior")
    return Plan(PRIOR, group, str(runs_dir), configs, title=f"prior experiment: {base.model} on {base.task}",
                meta={"rate": rate, "layers": attr.to_dict()["layers"]})


def compare_plan(base: TrainConfig, attribution: AttributionConfig, cross_tuning: bool, seeds, runs_dir: str,
                 group: str | None = None) -> Plan:
    """AD-DROP vs vanilla: for every seed a vanilla run and an AD-DROP run with the same seed (same data subset,
    order and head initialisation), named vanilla-s<seed> and addrop-s<seed>."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise UserError("choose at least one seed")
    if len(set(seeds)) != len(seeds):
        raise UserError("the seeds must differ from each other")
    configs = []
    for s in seeds:
        for strategy in ("vanilla", "addrop"):
            configs.append(replace(base, strategy=strategy, seed=s, attribution=replace(attribution, seed=s),
                                   cross_tuning=cross_tuning, name=f"{strategy}-s{s}"))
    group = safe_run_id(group, prefix="compare")
    return Plan(COMPARE, group, str(runs_dir), configs, title=f"AD-DROP vs vanilla: {base.model} on {base.task}",
                meta={"seeds": seeds, "cross_tuning": cross_tuning, "attribution": attribution.to_dict()})


def check_plan(plan: Plan, num_layers: int) -> None:
    """Range checks a page runs before submitting (the worker would fail with the same message later)."""
    for c in plan.configs:
        if c.masks:
            resolve_layers(c.attribution.layers, num_layers)
    if safe_child(plan.runs_dir, plan.group).exists():
        raise UserError(f"a run group named {plan.group!r} already exists in {plan.runs_dir}; choose another name")


def run_plan(job, plan: Plan, loaded, splits, load_for_seed: Callable | None = None, loaded_seed: int = 0) -> dict:
    """Train every run of `plan` in turn (the job function the app submits).

    loaded: the model whose head was initialised with `loaded_seed` (the app's cached, pristine model; training
    copies it). Runs with another seed get a model from `load_for_seed(seed)`, else `models.load_model` with
    that seed (a fresh head initialised with it).
    splits: (spec, train, dev) as returned by `training.load_splits`.
    """
    from .models import load_model
    from .training import Callbacks, prepare_data, train

    root = plan.root
    root.mkdir(parents=True, exist_ok=True)
    n = len(plan.configs)
    epochs: list[dict] = []
    runs: list[dict] = [{"run": c.name, "strategy": c.strategy, "seed": c.seed, "status": "waiting"}
                        for c in plan.configs]
    done_epochs = 0
    total_epochs = plan.total_epochs
    models = {int(loaded_seed): loaded} if loaded is not None else {}
    data_cache: dict = {}
    t0 = time.time()
    job.update(fraction=0.0, message=f"preparing {n} runs", epochs=epochs, runs=runs, group=plan.group,
               path=str(root), kind=plan.kind, total_epochs=total_epochs)

    for i, cfg in enumerate(plan.configs):
        if job.should_stop():
            break
        seed = cfg.seed
        if seed not in models:
            job.update(message=f"{cfg.name}: loading the model with seed {seed}")
            if load_for_seed is not None:
                models[seed] = load_for_seed(seed)
            else:
                models[seed] = load_model(cfg.model, cfg.device, num_labels=splits[0].num_labels, seed=seed)
        model = models[seed]
        key = (seed, cfg.train_size, cfg.dev_size, cfg.shots, cfg.max_length)
        if key not in data_cache:
            job.update(message=f"{cfg.name}: tokenizing the data")
            data_cache[key] = prepare_data(cfg, model.tokenizer, splits)
        data = data_cache[key]
        runs[i]["status"] = "running"
        label = cfg.name

        def on_step(info, _i=i, _label=label, _cfg=cfg):
            frac_run = info["fraction"]
            job.update(fraction=(_i + frac_run) / n,
                       message=f"run {_i + 1}/{n} · {_label}: epoch {info['epoch']}/{_cfg.epochs}, "
                               f"step {info['step']}/{info['total_steps']}")

        def on_epoch(rec, _i=i, _label=label, _cfg=cfg):
            nonlocal done_epochs
            done_epochs += 1
            row = dict(rec, run=_label, strategy=_cfg.strategy, seed=_cfg.seed)
            epochs.append(row)
            job.update(epochs=epochs, done_epochs=done_epochs,
                       message=f"run {_i + 1}/{n} · {_label}: epoch {rec['epoch']}/{_cfg.epochs} done")
            job.add_event({"run": _label, "epoch": rec["epoch"], "train_loss": rec.get("train_loss"),
                           "dev_loss": rec.get("dev_loss")})

        res = train(cfg, runs_dir=str(root), loaded=model, data=data,
                    callbacks=Callbacks(on_step=on_step, on_epoch=on_epoch, should_stop=job.should_stop))
        runs[i].update(status=res.status, reason=res.reason, path=res.path, id=res.id)
        job.update(runs=runs)
        if res.status != "finished":
            break

    curves = write_curves(plan)
    elapsed = time.time() - t0
    job.update(runs=runs, curves=str(curves) if curves else None, elapsed_total=elapsed,
               message="stopped" if job.should_stop() else "done")
    return {"group": plan.group, "path": str(root), "runs": runs, "curves": str(curves) if curves else None}


def write_curves(plan_or_root, kind: str | None = None, title: str | None = None) -> Path | None:
    """Write curves.html into a group folder from the run records on disk (None when there is nothing yet)."""
    from .plots import loss_curves, seed_curves

    if isinstance(plan_or_root, Plan):
        root, kind, title = plan_or_root.root, plan_or_root.kind, plan_or_root.title
    else:
        root = Path(plan_or_root)
    frame = metrics_frame(list_runs(root))
    if frame.empty:
        return None
    if kind == COMPARE:
        fig = seed_curves(frame, label="strategy", panels=_compare_panels(frame), title=title)
    else:
        fig = loss_curves(frame, label="strategy", title=title)
    path = root / "curves.html"
    atomic_write_text(path, fig.to_html(include_plotlyjs="cdn"))
    return path


def _compare_panels(frame) -> list[tuple[str, str]]:
    panels = [("train_loss", "training loss"), ("dev_loss", "dev loss")]
    metric = primary_metric_column(frame)
    if metric:
        panels.append((metric, metric.replace("dev_", "dev ")))
    return panels


def primary_metric_column(frame) -> str | None:
    """The dev metric to show: accuracy, else the first dev_* column that is not dev_loss."""
    cols = [c for c in frame.columns if c.startswith("dev_") and c != "dev_loss"]
    for pref in ("dev_accuracy", "dev_mcc", "dev_pearson", "dev_f1"):
        if pref in cols:
            return pref
    return cols[0] if cols else None


def compare_summary(frame):
    """Per strategy: the last epoch's dev metrics (mean and spread over seeds) and the cost per epoch.

    Returns (metrics table, cost table, ratio). The cost table gives mean seconds per epoch over all epochs, the
    plain ones and the AD-DROP ones (cross-tuning alternates them); ratio = seconds per AD-DROP epoch of the
    addrop runs / seconds per epoch of the vanilla runs (None when one of them is missing)."""
    import pandas as pd

    if frame is None or frame.empty:
        return pd.DataFrame(), pd.DataFrame(), None
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
    metrics = pd.DataFrame(rows)
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
    if not cost.empty and {"vanilla", "addrop"} <= set(cost["strategy"]):
        van = float(cost.loc[cost["strategy"] == "vanilla", "all epochs"].iloc[0])
        ad_row = cost.loc[cost["strategy"] == "addrop"].iloc[0]
        ad = ad_row.get("AD-DROP epochs")
        ad = float(ad) if ad is not None and pd.notna(ad) else float(ad_row["all epochs"])
        ratio = ad / van if van > 0 else None
    return metrics, cost, ratio


def group_kind(root) -> str | None:
    """prior / compare from a group folder's runs (None when it is neither)."""
    strategies = {r.strategy for r in list_runs(root)}
    if strategies and strategies <= set(PRIOR_STRATEGIES):
        return PRIOR
    if strategies and strategies <= {"vanilla", "addrop"}:
        return COMPARE
    return None


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
        strategies = {r.strategy for r in recs}
        k = PRIOR if strategies <= set(PRIOR_STRATEGIES) else COMPARE if strategies <= {"vanilla", "addrop"} else None
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
