"""p x q sweeps: the paper's 9 x 9 grid search and its Figure 6 sensitivity heatmap, as one call.

A sweep is a folder of ordinary run records plus ``sweep.json``::

    <out>/<sweep name>/sweep.json          the grid (p, q, seeds, baseline) and the shared TrainConfig
                       vanilla-s0/         the baseline (plain fine-tuning) for seed 0, a normal run record
                       p0.3-q0.5-s0/       one AD-DROP cell for seed 0, a normal run record
                       table.csv           per-cell mean/std of the dev metric and its difference to the baseline
                       heatmap.html        the Figure 6 heatmap (Plotly)

Cells are run by a backend:

    local   one after another in this process (the model and data are loaded once per seed and every cell
            trains a private copy), or in ``max_concurrent`` worker processes
    ray     Ray Tune trials (optional extra: ``pip install "ray[tune]"``), on a local Ray instance or on a cluster
            given by ``ray_address``

A cell whose record says ``finished`` is never run again, so a stopped sweep resumes where it was. Every cell
loads its model with its own seed (the classification head is seeded), so a cell gives the same numbers in
any backend, in any order, in any process.

The Ray backend is in `addrop.sweep_ray`; reading a sweep folder (table, heatmap, progress) in
`addrop.sweep_results`.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .config import TrainConfig
from .errors import UserError
from .runs import atomic_write_json, load_run, pid_alive, safe_child, safe_run_id, _read_json

SWEEP_FILE = "sweep.json"
BACKENDS = ("local", "ray")
SWEEP_VERSION = 1
# config fields that may differ between two invocations of the same sweep (resume on another machine)
_FREE_FIELDS = ("device", "name", "strategy", "seed", "attribution")


# ------------------------------------------------------------------------------------------------- grid

def parse_values(spec, name: str = "p", unit: bool = True) -> list[float]:
    """'0.1:0.9:0.1' (start:stop:step, stop included) | '0.1,0.3,0.5' | '0.3' | a list -> sorted unique floats.

    Values are rounded to 6 decimals so that 0.1 + 0.2 reads as 0.3; with ``unit`` each must lie in (0, 1).
    """
    if isinstance(spec, (int, float)):
        vals = [float(spec)]
    elif isinstance(spec, str):
        s = spec.strip()
        if not s:
            raise UserError(f"--{name} is empty: give start:stop:step such as 0.1:0.9:0.1, or a list such as 0.1,0.5")
        try:
            if ":" in s:
                parts = [float(x) for x in s.split(":")]
                if len(parts) != 3:
                    raise ValueError
                start, stop, step = parts
                if not step > 0:
                    raise UserError(f"--{name} {spec!r}: the step must be > 0")
                if stop < start:
                    raise UserError(f"--{name} {spec!r}: stop is below start")
                n = int(math.floor((stop - start) / step + 1e-9)) + 1
                if n > 1000:
                    raise UserError(f"--{name} {spec!r} gives {n} values; use at most 1000")
                vals = [start + i * step for i in range(n)]
            else:
                vals = [float(x) for x in s.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--{name} {spec!r} is not start:stop:step (0.1:0.9:0.1) nor a comma list "
                            "(0.1,0.3,0.5)") from None
    else:
        try:
            vals = [float(x) for x in spec]
        except (TypeError, ValueError):
            raise UserError(f"{name} values must be numbers, got {spec!r}") from None
    vals = sorted({round(v, 6) for v in vals})
    if not vals:
        raise UserError(f"--{name} gives no values")
    if unit:
        bad = [v for v in vals if not 0.0 < v < 1.0]
        if bad:
            raise UserError(f"{name} values must lie strictly between 0 and 1; {bad[0]:g} does not")
    return vals


def parse_seeds(spec) -> list[int]:
    """'0,1,2' | '0:2' (inclusive) | 3 | [0, 1] -> sorted unique ints."""
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, str):
        s = spec.strip()
        try:
            if ":" in s:
                a, b = (int(x) for x in s.split(":"))
                vals = list(range(a, b + 1))
            else:
                vals = [int(x) for x in s.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--seeds {spec!r} must be comma-separated integers such as 0,1,2 (or 0:2)") from None
    else:
        vals = [int(x) for x in spec]
    vals = sorted(set(vals))
    if not vals:
        raise UserError("--seeds gives no seeds")
    if any(v < 0 for v in vals):
        raise UserError("seeds must be >= 0")
    return vals


def _fmt(v: float) -> str:
    return f"{v:g}"


def cell_name(p: float, q: float, seed: int) -> str:
    """The run id of one AD-DROP cell: p0.3-q0.5-s0."""
    return safe_run_id(f"p{_fmt(p)}-q{_fmt(q)}-s{seed}")


def baseline_name(seed: int) -> str:
    return safe_run_id(f"vanilla-s{seed}")


@dataclass
class SweepSpec:
    """A p x q grid over seeds on top of one TrainConfig (`base`: task, model, sizes, optimisation, attribution
    method, layers, cross-tuning). `base.strategy`, `base.seed`, `p`, `q` and `name` are set per cell."""

    name: str
    base: TrainConfig
    ps: list[float]
    qs: list[float]
    seeds: list[int] = field(default_factory=lambda: [0])
    baseline: bool = True

    def __post_init__(self):
        self.name = safe_run_id(self.name)
        if isinstance(self.base, dict):
            self.base = TrainConfig.from_dict(self.base)
        self.ps = parse_values(self.ps, "p")
        self.qs = parse_values(self.qs, "q")
        self.seeds = parse_seeds(self.seeds)

    def cells(self) -> list[TrainConfig]:
        """Every run of the sweep, baselines first (so the heatmap has its reference early), then seed-major."""
        out = []
        if self.baseline:
            for s in self.seeds:
                out.append(replace(self.base, strategy="vanilla", seed=s, name=baseline_name(s),
                                   attribution=replace(self.base.attribution, seed=s)))
        for s in self.seeds:
            for p in self.ps:
                for q in self.qs:
                    out.append(replace(self.base, strategy="addrop", seed=s, name=cell_name(p, q, s),
                                       attribution=replace(self.base.attribution, p=p, q=q, seed=s)))
        return out

    def to_dict(self) -> dict:
        base = self.base.to_dict()
        base["name"] = None
        return {"version": SWEEP_VERSION, "name": self.name, "grid": {"p": self.ps, "q": self.qs,
                "seeds": self.seeds, "baseline": self.baseline}, "base": base}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepSpec":
        g = d.get("grid") or {}
        return cls(name=d["name"], base=TrainConfig.from_dict(d.get("base") or {}), ps=g.get("p", []),
                   qs=g.get("q", []), seeds=g.get("seeds", [0]), baseline=bool(g.get("baseline", True)))


def default_name(base: TrainConfig) -> str:
    """A deterministic sweep name (so that running the same command again resumes): sweep-<task>-<model>."""
    model = os.path.basename(os.path.normpath(base.model)) or "model"
    raw = f"sweep-{base.task}-{model}"
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in raw).strip(".-")[:80]
    return safe_run_id(clean or "sweep")


# --------------------------------------------------------------------------------------------- planning

def _comparable(base: dict) -> dict:
    d = {k: v for k, v in base.items() if k not in _FREE_FIELDS}
    att = dict(base.get("attribution") or {})
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
        old, err = _read_json(meta)
        if err is None and isinstance(old, dict) and isinstance(old.get("base"), dict):
            a, b = _comparable(old["base"]), _comparable(d["base"])
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
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
              on_epoch: ProgressFn | None = None, ship_records: bool = False) -> SweepResult:
    """Run every unfinished cell of `spec` under `out/<spec.name>/` and write table.csv and heatmap.html.

    `on_cell({"run": id, "status": ..., "done": k, "total": n, ...})` is called as each cell ends;
    `should_stop()` is checked between cells (and between steps for in-process cells); `on_epoch(record)`
    gets each epoch record of in-process cells with the run id under "run". `ship_records` (ray): Ray trials
    send their run files back to the driver instead of writing into the folder (automatic on nodes that cannot
    see the folder; forcing it is for tests).
    """
    from .sweep_ray import _import_ray, _run_ray  # imported here: both modules import this one
    from .sweep_results import write_outputs

    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: choose local or ray")
    if not isinstance(max_concurrent, int) or max_concurrent < 1:
        raise UserError(f"--max-concurrent must be an integer >= 1, got {max_concurrent!r}")
    if backend == "ray":
        _import_ray()  # fail before anything is written
    elif ray_address:
        raise UserError("--ray-address needs --backend ray")
    t0 = time.perf_counter()
    folder = prepare(spec, out)
    todo, done = plan(spec, folder)
    for cfg in todo:
        _clear(folder, cfg.name)
    state = {"done": len(done), "total": len(done) + len(todo)}
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
        try:  # keep the table and heatmap current for anyone reading the folder
            write_outputs(folder)
        except Exception:  # noqa: BLE001 - an output refresh must never end the sweep
            pass

    stopped = False
    if todo:
        if backend == "ray":
            stopped = _run_ray(todo, folder, max_concurrent, ray_address, cpus_per_cell, report, should_stop,
                               ship_records)
        elif max_concurrent > 1 and len(todo) > 1:
            stopped = _run_processes(todo, folder, max_concurrent, report, should_stop)
        else:
            stopped = _run_inline(todo, folder, report, should_stop, on_epoch)
    table = write_outputs(folder)
    return SweepResult(str(folder), ran, [c.name for c in done], failed, stopped, table,
                       time.perf_counter() - t0)


def _run_inline(todo, folder: Path, report, should_stop, on_epoch) -> bool:
    from .models import load_model
    from .training import Callbacks, load_splits, prepare_data, train

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


def run_cell(cfg_dict: dict, runs_dir: str, threads: int | None = None) -> dict:
    """Run one cell in this process from a plain dict (what worker processes and Ray trials call)."""
    import torch

    from .training import train

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    cfg = TrainConfig.from_dict(cfg_dict)
    res = train(cfg, runs_dir=runs_dir)
    last = res.metrics[-1] if res.metrics else {}
    return {"run": res.id, "status": res.status, "reason": res.reason, "epochs": len(res.metrics),
            **{k: v for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _run_processes(todo, folder: Path, workers: int, report, should_stop) -> bool:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, _cpus() // workers)
    pending = list(todo)
    running = {}
    stopped = False
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        while pending or running:
            while pending and len(running) < workers and not stopped:
                if should_stop and should_stop():
                    stopped = True
                    break
                cfg = pending.pop(0)
                running[pool.submit(run_cell, cfg.to_dict(), str(folder), threads)] = cfg
            if not running:
                break
            finished, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in finished:
                cfg = running.pop(fut)
                try:
                    r = fut.result()
                    report(r["run"], r["status"], r.get("reason"))
                except Exception as e:  # noqa: BLE001 - a crashed worker marks that cell failed
                    report(cfg.name, "failed", f"{type(e).__name__}: {e}")
            if should_stop and should_stop():
                stopped = True
                pending.clear()
    return stopped


__all__ = ["SweepSpec", "SweepResult", "parse_values", "parse_seeds", "cell_name", "baseline_name", "default_name",
           "prepare", "plan", "run_sweep", "run_cell", "BACKENDS", "pid_alive"]
