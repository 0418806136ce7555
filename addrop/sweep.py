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
"""
from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from .config import TrainConfig
from .errors import UserError
from .runs import (FINAL_STATUSES, RUN_FILES, RunRecord, atomic_write_json, atomic_write_text, list_runs,
                   load_run, pid_alive, safe_child, safe_run_id, _read_json)

SWEEP_FILE = "sweep.json"
TABLE_FILE = "table.csv"
HEATMAP_FILE = "heatmap.html"
BACKENDS = ("local", "ray")
SWEEP_VERSION = 1
# config fields that may differ between two invocations of the same sweep (resume on another machine)
_FREE_FIELDS = ("device", "name", "strategy", "seed", "attribution")
RAY_MISSING = "Ray is not installed: pip install 'ray[tune]'"


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


# ------------------------------------------------------------------------------------------------- ray

def _import_ray():
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError as e:
        if e.name in (None, "ray") or (e.name or "").startswith("ray."):
            raise UserError(RAY_MISSING) from None
        raise UserError(f"Ray is installed but cannot be imported ({e}); reinstall it: pip install 'ray[tune]'") from None
    return ray, tune


def _ray_trainable(config: dict) -> None:
    """A Ray Tune function trainable: one cell. Writes its run record straight into the sweep folder when this
    node can see it (same machine, shared file system); otherwise into a private folder whose files travel back
    in the final report and are written by the driver."""
    import tempfile

    from ray import tune

    config = config["cell"]
    folder = config["runs_dir"]
    shared = os.path.isfile(os.path.join(folder, SWEEP_FILE)) and not config.get("ship_records")
    if shared:
        out = run_cell(config["cfg"], folder, config.get("threads"))
        tune.report({"cell": out})
        return
    with tempfile.TemporaryDirectory(prefix="addrop-cell-") as tmp:
        out = run_cell(config["cfg"], tmp, config.get("threads"))
        files = {}
        for fname in RUN_FILES:
            p = os.path.join(tmp, out["run"], fname)
            if os.path.isfile(p):
                with open(p, encoding="utf-8") as fh:
                    files[fname] = fh.read()
        tune.report({"cell": out, "files": files})


def _ray_callback(folder: Path, report):
    from ray.tune import Callback

    class _Cells(Callback):
        """Driver side: write shipped records and report each cell as its trial ends."""

        def __init__(self):
            self.seen = set()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            cell = result.get("cell")
            if not isinstance(cell, dict) or trial.trial_id in self.seen:
                return
            self.seen.add(trial.trial_id)
            files = result.get("files")
            if isinstance(files, dict) and files:
                dest = safe_child(folder, safe_run_id(cell["run"]))
                dest.mkdir(exist_ok=True)
                for fname in RUN_FILES:
                    if isinstance(files.get(fname), str):
                        atomic_write_text(dest / fname, files[fname])
            report(cell["run"], cell.get("status", "failed"), cell.get("reason"))

        def on_trial_error(self, iteration, trials, trial, **info):
            if trial.trial_id in self.seen:
                return
            self.seen.add(trial.trial_id)
            name = ((trial.config.get("cell") or {}).get("cfg") or {}).get("name", trial.trial_id)
            err = getattr(trial, "error_msg", None) or "the Ray trial failed"
            report(name, "failed", " ".join(str(err).split())[:300])

    return _Cells()


def _quiet_ray_env() -> dict:
    """Environment for a quiet Ray: no progress tables, no TensorBoard/CSV loggers, no usage stats."""
    return {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DEDUP_LOGS": "0", "TUNE_MAX_PENDING_TRIALS_PG": "1", "RAY_TRAIN_V2_ENABLED": "0",
            "TUNE_RESULT_BUFFER_LENGTH": "1"}


def init_ray(address: str | None = None) -> bool:
    """Connect to the Ray cluster at `address`, or start a quiet local instance with this machine's CPUs (and
    addrop importable in its workers). Returns False when Ray was already initialised (nothing done)."""
    import logging

    for k, v in _quiet_ray_env().items():
        os.environ.setdefault(k, v)
    ray, _ = _import_ray()
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True,
              ignore_reinit_error=True)
    if address:
        # the cluster's workers get this addrop package, whatever they have installed
        kw["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": _quiet_ray_env()}
        ray.init(address=address, **kw)
    else:
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH", "")) if x)
        kw["runtime_env"] = {"env_vars": {"PYTHONPATH": path, **_quiet_ray_env()}}
        # Ray runs its workers at nice 15 by default: on a busy machine the trials would starve behind every
        # other process (and behind a local sweep); this instance exists only for them
        kw["_system_config"] = {"worker_niceness": 0}
        ray.init(num_cpus=_cpus(), **kw)
    return True


def _run_ray(todo, folder: Path, max_concurrent: int, address: str | None, cpus_per_cell: float | None,
             report, should_stop, ship_records: bool = False) -> bool:
    import tempfile
    import warnings

    ray, tune = _import_ray()
    started_here = init_ray(address)
    try:
        total_cpus = float(ray.cluster_resources().get("CPU", _cpus()))
        per = float(cpus_per_cell) if cpus_per_cell else max(1.0, math.floor(total_cpus / max_concurrent))
        if per > total_cpus:
            raise UserError(f"each cell asks for {per:g} CPUs but the Ray cluster has {total_cpus:g}")
        threads = max(1, int(per))
        reported: set = set()

        def report_once(run_id, status, reason=None, **extra):
            reported.add(run_id)
            report(run_id, status, reason, **extra)

        configs = [{"cfg": c.to_dict(), "runs_dir": str(folder.resolve()), "threads": threads,
                    "ship_records": ship_records} for c in todo]
        stopper = _ray_stopper(should_stop)
        with tempfile.TemporaryDirectory(prefix="addrop-ray-") as storage, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner = tune.Tuner(
                tune.with_resources(_ray_trainable, {"cpu": per}),
                param_space={"cell": tune.grid_search(configs)},
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, num_samples=1),
                run_config=tune.RunConfig(name="addrop-sweep", storage_path=storage, verbose=0,
                                          stop=stopper, callbacks=[_ray_callback(folder, report_once)],
                                          log_to_file=False),
            )
            tuner.fit()
        # Tune ends quietly on Ctrl-C (it handles SIGINT itself): cells that never reported were stopped
        return stopper.stopped or bool(set(c.name for c in todo) - reported)
    finally:
        if started_here:
            ray.shutdown()


def _ray_stopper(should_stop):
    from ray.tune.stopper import Stopper

    class _Stop(Stopper):
        """Once should_stop() says so, Tune ends the experiment (pending cells never start)."""

        def __init__(self):
            self.stopped = False

        def __call__(self, trial_id, result) -> bool:
            return self.stop_all()

        def stop_all(self) -> bool:
            if should_stop is not None and should_stop():
                self.stopped = True
            return self.stopped

    return _Stop()


# ----------------------------------------------------------------------------------------------- tables

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


def load_sweep(folder: str | os.PathLike) -> tuple[dict, list[RunRecord]]:
    """(sweep.json as a dict, the run records in the folder). Missing or broken sweep.json -> UserError."""
    folder = Path(folder)
    meta, err = _read_json(folder / SWEEP_FILE)
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
        found += [p.parent for p in root.glob(pattern) if not any(part.startswith(".") for part in p.parts[-3:-1])]
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


def sweep_heatmap(table, title: str | None = None, scale: str | None = None):
    """The paper's Figure 6: rows are p, columns are q, each cell the mean dev metric of AD-DROP minus the
    baseline's (red better than the baseline, blue worse, white equal), annotated, with the best cell outlined.

    `scale`: points (the difference x 100, as GLUE scores are usually quoted; the default for metrics), raw
    (the difference itself; the default for a loss) or maxabs (divided by the largest |difference|, into [-1, 1], as the paper's MaxAbsScaler).
    Without a baseline the cells show the metric itself.
    """
    import plotly.graph_objects as go

    cells = table[table["kind"] == "cell"]
    ps = sorted({float(p) for p in cells["p"].dropna()})
    qs = sorted({float(q) for q in cells["q"].dropna()})
    metric = table.attrs.get("metric", "metric")
    higher = table.attrs.get("higher_is_better", True)
    base = table.attrs.get("baseline", math.nan)
    has_base = isinstance(base, float) and not math.isnan(base)
    col = "delta" if has_base else "mean"
    scale = scale or ("points" if higher else "raw")
    lookup = {(round(float(r.p), 6), round(float(r.q), 6)): r for r in cells.itertuples()}
    z, text, hover = [], [], []
    raw = [[getattr(lookup.get((round(p, 6), round(q, 6))), col, math.nan) for q in qs] for p in ps]
    finite = [abs(v) for row in raw for v in row if isinstance(v, float) and not math.isnan(v)]
    top = max(finite) if finite else 0.0
    factor = {"points": 100.0, "raw": 1.0, "maxabs": (1.0 / top if top > 0 else 1.0)}.get(scale)
    if factor is None:
        raise UserError(f"unknown heatmap scale {scale!r}: choose points, raw or maxabs")
    if not has_base and scale == "points":
        factor = 100.0
    shown = top * factor if has_base else max((abs(v) * factor for v in finite), default=0.0)
    # enough decimals for the largest value to show two significant digits (0.0009 -> 0.00090)
    decimals = 2 if shown >= 0.1 or shown == 0 else min(6, 1 - int(math.floor(math.log10(shown))))
    for i, p in enumerate(ps):
        zr, tr, hr = [], [], []
        for j, q in enumerate(qs):
            r = lookup.get((round(p, 6), round(q, 6)))
            v = raw[i][j]
            ok = isinstance(v, float) and not math.isnan(v)
            zr.append(v * factor if ok else None)
            if ok:
                tr.append(f"{v * factor:+.{decimals}f}" if has_base else f"{v * factor:.{decimals}f}")
            else:
                tr.append("running" if r is not None and r.running else "")
            n = int(r.n) if r is not None else 0
            mean = r.mean if r is not None else math.nan
            std = r.std if r is not None else math.nan
            hr.append(f"p={p:g} q={q:g}<br>{metric}: {mean:.4f} ± {std:.4f} ({n} seed{'s' if n != 1 else ''})"
                      + (f"<br>vs baseline {base:.4f}: {v:+.4f}" if has_base and ok else ""))
        z.append(zr)
        text.append(tr)
        hover.append(hr)
    unit = {"points": " (points)", "raw": "", "maxabs": " (max-abs scaled)"}[scale]
    zlabel = (f"Δ {metric}{unit}" if has_base else f"{metric}{' x 100' if scale == 'points' else ''}")
    heat = go.Heatmap(z=z, x=[f"{q:g}" for q in qs], y=[f"{p:g}" for p in ps], text=text,
                      texttemplate="%{text}", hovertext=hover, hoverinfo="text",
                      colorscale=("RdBu_r" if higher else "RdBu") if has_base else "Viridis",
                      zmid=0 if has_base else None,
                      colorbar=dict(title=dict(text=zlabel)), xgap=2, ygap=2)
    fig = go.Figure(heat)
    b = best_cell(table)
    if b is not None and ps and qs:
        i, j = ps.index(round(b["p"], 6)), qs.index(round(b["q"], 6))
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="black", width=3))
    if title is None:
        name = table.attrs.get("name") or "sweep"
        which = table.attrs.get("which", "best")
        title = f"{name}: {which} dev {metric}" + (f", AD-DROP minus baseline ({base:.4f})" if has_base else "")
        if b is not None:
            title += f"; best p={b['p']:g} q={b['q']:g}"
    fig.update_layout(title=title, xaxis=dict(title="q (drop probability in the region)", type="category"),
                      yaxis=dict(title="p (candidate region size)", type="category", autorange="reversed"),
                      height=120 + 48 * max(len(ps), 3), margin=dict(t=70, b=50, l=70, r=30))
    return fig


def write_outputs(folder: str | os.PathLike, which: str = "best", metric: str | None = None):
    """(Re)write table.csv and heatmap.html of a sweep folder; returns the table."""
    folder = Path(folder)
    table = sweep_table(folder, which=which, metric=metric)
    atomic_write_text(folder / TABLE_FILE, table.to_csv(index=False, float_format="%.6g"))
    fig = sweep_heatmap(table)
    atomic_write_text(folder / HEATMAP_FILE, fig.to_html(include_plotlyjs="cdn", full_html=True))
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


__all__ = ["SweepSpec", "SweepResult", "parse_values", "parse_seeds", "cell_name", "baseline_name", "default_name",
           "prepare", "plan", "run_sweep", "run_cell", "sweep_table", "best_cell", "sweep_heatmap", "write_outputs",
           "load_sweep", "list_sweeps", "cell_runs", "progress", "BACKENDS", "RAY_MISSING", "pid_alive"]
