"""p x q sweeps: the paper's 9 x 9 grid search and its Figure 6 sensitivity heatmap, as one call.

A sweep is a folder of ordinary run records plus ``sweep.json``::

    <out>/<sweep name>/sweep.json          the grid (p, q, seeds, baseline) and the shared TrainConfig
                       vanilla-s0/         the baseline (plain fine-tuning) for seed 0, a normal run record
                       p0.3-q0.5-s0/       one AD-DROP cell for seed 0, a normal run record
                       table.csv           per-cell mean/std of the dev metric and its difference to the baseline
                       heatmap.html        the Figure 6 heatmap (Plotly)

Cells are run by a backend:

    local   one after another in this process (the model and data are loaded once per seed and every cell
            trains a private copy), or in ``max_concurrent`` worker processes (experiments/parallel.py, as a
            plan's runs side by side)
    ray     Ray Tune trials (optional extra: ``pip install "ray[tune]"``), on a local Ray instance or on a cluster
            given by ``ray_address``

A cell whose record says ``finished`` is never run again, so a stopped sweep resumes where it was. Every cell
loads its model with its own seed (the classification head is seeded), so a cell gives the same numbers in
any backend, in any order, in any process.

Modules: spec.py (the grid, cell names), local.py (this one: planning and running), cell.py (one cell in
a Ray trial; local worker processes are experiments/parallel.py's), ray_backend.py (Ray Tune), results.py
(reading a sweep folder: table, best cell, progress).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Callable

from ...config import TrainConfig
from ...engine.preflight import check_runs
from ...engine.runs import atomic_write_json, load_run, read_json, safe_child
from ...errors import UserError
from . import ray_backend
from .results import sweep_table, write_table
from .spec import SWEEP_FILE, SweepSpec

SWEEP_BACKENDS = ("local", "ray")
REFRESH_EVERY_S = 2.0  # the least time between two rewrites of table.csv and heatmap.html while cells run
# config fields that may differ between two invocations of the same sweep (resume on another machine; the
# batch layout gives the same numbers, as a device does, up to rounding and dropout draws)
_FREE_FIELDS = ("device", "name", "strategy", "seed", "attribution", "layout")


def _added_since(old: dict, new: dict) -> set[str]:
    """Fields a sweep written by an earlier version lacks and that the new one has at their default: not a
    difference (the old runs ran as that default does)."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    return {k for k in set(new) - set(old) if k in defaults and new[k] == defaults[k]}


def _comparable(base: dict) -> dict:
    d = {k: v for k, v in base.items() if k not in _FREE_FIELDS}
    # a setting left at None reads as absent, so a sweep written before the setting existed still resumes
    att = {k: v for k, v in (base.get("attribution") or {}).items() if v is not None}
    for k in ("p", "q", "seed"):
        att.pop(k, None)
    d["attribution"] = att
    return d


def prepare(spec: SweepSpec, out: str | os.PathLike) -> Path:
    """Create (or reopen) the sweep folder and write sweep.json. Reopening with other training settings is
    refused; a different grid is merged (the table covers every cell run so far)."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    folder = safe_child(root, spec.name)
    meta = folder / SWEEP_FILE
    if folder.exists() and not meta.is_file() and any(folder.iterdir()):
        raise UserError(f"{folder} exists and is not a sweep folder (no {SWEEP_FILE}); choose another --name")
    folder.mkdir(exist_ok=True)
    d = spec.to_dict()
    if meta.is_file():
        old, err = read_json(meta)
        if err is None and isinstance(old, dict) and isinstance(old.get("base"), dict):
            a, b = _comparable(old["base"]), _comparable(d["base"])
            diff = sorted(k for k in (set(a) | set(b)) - _added_since(a, b) if a.get(k) != b.get(k))
            if diff:
                raise UserError(f"sweep {spec.name!r} already exists in {root} with other settings "
                                f"({', '.join(diff)}); use another --name to start a new sweep")
            og = old.get("grid") or {}
            d["grid"] = {"p": sorted(set(og.get("p", [])) | set(spec.ps)),
                         "q": sorted(set(og.get("q", [])) | set(spec.qs)),
                         "seeds": sorted(set(og.get("seeds", [])) | set(spec.seeds)),
                         "baseline": bool(og.get("baseline", False)) or spec.baseline}
            d["created"] = old.get("created")
    d.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    d["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(meta, d)
    return folder


def plan(spec: SweepSpec, folder: str | os.PathLike) -> tuple[list[TrainConfig], list[TrainConfig]]:
    """(to run, already finished). A cell with a stopped, failed, incomplete or corrupt record is run again
    (its old folder is removed); a cell that is running in a live process makes this a UserError."""
    folder = Path(folder)
    todo, done = [], []
    for cfg in spec.cells():
        path = folder / cfg.name
        if not path.exists():
            todo.append(cfg)
            continue
        rec = load_run(path)
        if rec.status == "finished":
            done.append(cfg)
        elif rec.status == "running":
            raise UserError(f"cell {cfg.name} of sweep {spec.name!r} is being run by process {rec.pid} "
                            f"on {rec.host}; stop that sweep first or wait for it")
        else:
            todo.append(cfg)
    return todo, done


def _clear(folder: Path, name: str) -> None:
    """Remove a cell's unfinished record so that it can run again (only run files inside the sweep folder)."""
    path = safe_child(folder, name)
    if path.is_dir():
        shutil.rmtree(path)


# ---------------------------------------------------------------------------------------------- running

@dataclass
class SweepResult:
    path: str
    ran: list[str]
    skipped: list[str]
    failed: dict  # run id -> reason
    stopped: bool
    table: object  # pandas DataFrame (see sweep_table)
    seconds: float


ProgressFn = Callable[[dict], None]


def run_sweep(spec: SweepSpec, out: str | os.PathLike = "runs", backend: str = "local", max_concurrent: int = 1,
              ray_address: str | None = None, cpus_per_cell: float | None = None,
              on_cell: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
              on_epoch: ProgressFn | None = None, ship_records: bool = False,
              refresh: Callable[[Path], object] | None = None) -> SweepResult:
    """Run every unfinished cell of `spec` under `out/<spec.name>/` and write table.csv and heatmap.html.

    `on_cell({"run": id, "status": ..., "done": k, "total": n, ...})` is called as each cell ends;
    `should_stop()` is checked between cells and, for local cells (in this process or in worker processes),
    between steps too; `on_epoch(record)` gets each epoch record of local cells with the run id under "run".
    A local worker process that dies ends the sweep with experiments.parallel.WorkerDied. `ship_records` (ray):
    Ray trials send their run files back to the driver instead of writing into the folder (automatic on nodes
    that cannot see the folder; forcing it is for tests). `refresh(folder)` rewrites the folder's outputs after
    every cell and at the end (default: table.csv; the command line and the app also draw heatmap.html, see
    addrop/studio/outputs.py).
    """
    refresh = refresh or write_table
    if backend not in SWEEP_BACKENDS:
        raise UserError(f"unknown backend {backend!r}: choose local or ray")
    if not isinstance(max_concurrent, int) or max_concurrent < 1:
        raise UserError(f"--max-concurrent must be an integer >= 1, got {max_concurrent!r}")
    if backend == "ray":
        ray_backend.import_ray()  # fail before anything is written
    elif ray_address:
        raise UserError("--ray-address needs --backend ray")
    t0 = time.perf_counter()
    # what is left to run (prepare writes only sweep.json, so the cell records read the same after it); then layers
    # and the folder of those cells before anything is written or trained (a finished sweep resumes without
    # reading the model's config, which imports transformers)
    todo, done = plan(spec, safe_child(Path(out), spec.name))
    check_runs(todo, out)
    folder = prepare(spec, out)
    for cfg in todo:
        _clear(folder, cfg.name)
    state = {"done": len(done), "total": len(done) + len(todo), "next_refresh": 0.0}
    ran, failed = [], {}

    def report(run_id: str, status: str, reason: str | None = None, **extra):
        state["done"] += 1
        if status == "finished":
            ran.append(run_id)
        elif status != "stopped":  # a stopped run is resumed next time, not a failure
            failed[run_id] = reason or status
        if on_cell:
            on_cell({"run": run_id, "status": status, "reason": reason, "done": state["done"],
                     "total": state["total"], **extra})
        # keep the table and heatmap current for anyone reading the folder, throttled: a refresh takes at most
        # a tenth of the time (a large grid's table and heatmap are rewritten every few cells, not every cell)
        now = time.perf_counter()
        if now >= state["next_refresh"]:
            try:
                refresh(folder)
            except Exception:  # noqa: BLE001 - an output refresh must never end the sweep
                pass
            state["next_refresh"] = now + max(REFRESH_EVERY_S, 10 * (time.perf_counter() - now))

    stopped = False
    if todo:
        if backend == "ray":
            stopped = ray_backend.run_cells(todo, folder, max_concurrent, ray_address, cpus_per_cell, report,
                                            should_stop, ship_records)
        elif max_concurrent > 1 and len(todo) > 1:
            stopped = _run_processes(todo, folder, max_concurrent, report, should_stop, on_epoch)
        else:
            stopped = _run_inline(todo, folder, report, should_stop, on_epoch)
    refresh(folder)
    table = sweep_table(folder)
    return SweepResult(str(folder), ran, [c.name for c in done], failed, stopped, table,
                       time.perf_counter() - t0)


def _run_inline(todo, folder: Path, report, should_stop, on_epoch) -> bool:
    from ...engine.models import load_model
    from ...engine.training import Callbacks, load_splits, prepare_data, train

    cache: dict = {}  # seed -> (loaded, data): every cell of a seed shares them (train clones the model)
    for cfg in todo:
        if should_stop and should_stop():
            return True
        if cfg.seed not in cache:
            cache.clear()
            splits = load_splits(cfg)
            loaded = load_model(cfg.model, cfg.device, num_labels=splits[0].num_labels, seed=cfg.seed)
            cache[cfg.seed] = (loaded, prepare_data(cfg, loaded.tokenizer, splits))
        loaded, data = cache[cfg.seed]
        cb = Callbacks(should_stop=should_stop,
                       on_epoch=(lambda r, n=cfg.name: on_epoch(dict(r, run=n))) if on_epoch else None)
        res = train(cfg, runs_dir=str(folder), loaded=loaded, data=data, callbacks=cb)
        report(res.id, res.status, res.reason)
        if res.status == "stopped":
            return True
    return False


def _run_processes(todo, folder: Path, workers: int, report, should_stop, on_epoch) -> bool:
    """The cells side by side in worker processes (experiments/parallel.py), as _run_inline runs them: a cell
    that ends failed is reported and the others go on; an error a cell raises ends the sweep; a stop request
    reaches the cells under way (they end stopped, records kept, and run again on resume); a worker that dies
    ends the sweep with WorkerDied, the cells finished before kept."""
    from ...engine.data import load_splits
    from ..parallel import plan_workers, run_side_by_side

    nworkers, threads = plan_workers(todo, workers)
    stopped = []  # per cell that ended: whether it ended stopped

    def on_event(kind, i, payload):
        if kind == "epoch" and on_epoch:
            on_epoch(dict(payload, run=todo[i].name))

    def on_done(i, res):
        if res["status"] == "waiting":  # not started: a stop came first; it runs on resume
            return
        stopped.append(res["status"] == "stopped")
        report(res.get("id") or todo[i].name, res["status"], res.get("reason"))

    ask = should_stop or (lambda: False)
    # every cell of a sweep reads the same data (the grid varies p, q and the seed): loaded once, shared
    run_side_by_side(todo, folder, load_splits(todo[0]), nworkers, threads, on_event, on_done, ask, keep_going=True)
    return any(stopped) or len(stopped) < len(todo)  # a cell stopped, or a stop left cells unstarted
