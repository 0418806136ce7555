"""The Ray backend of sweeps: every cell a Ray Tune trial, on a local Ray instance or on a cluster.

`init_ray(address)` connects to the cluster at `address`, or starts a quiet local instance with this machine's
CPUs (addrop importable in its workers, which run at normal priority). `run_cells` runs the cells as one Tune grid
(`max_concurrent` trials at a time, `cpus_per_cell` CPUs each); each trial runs `cell.run_cell` and writes its
run record into the sweep folder when its node can see the folder, or sends the files back for the driver to
write. Tune hands `_ray_trainable` to its workers by reference, so it stays a module-level function here.

Ray is optional (``pip install "ray[tune]"``): it is imported only when a sweep runs on it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from ...errors import UserError
from ...engine.runs import RUN_FILES, atomic_write_text, safe_child, safe_run_id
from .cell import available_cpus, run_cell
from .spec import SWEEP_FILE

RAY_MISSING = "Ray is not installed: pip install 'ray[tune]'"


def import_ray():
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
    ray, _ = import_ray()
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
        ray.init(num_cpus=available_cpus(), **kw)
    return True


def run_cells(todo, folder: Path, max_concurrent: int, address: str | None, cpus_per_cell: float | None,
             report, should_stop, ship_records: bool = False) -> bool:
    import tempfile
    import warnings

    ray, tune = import_ray()
    started_here = init_ray(address)
    try:
        total_cpus = float(ray.cluster_resources().get("CPU", available_cpus()))
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


__all__ = ["RAY_MISSING", "import_ray", "init_ray", "run_cells"]
