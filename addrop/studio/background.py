"""The work the app runs as background jobs (addrop/studio/jobs.py): an experiment plan and a sweep. Each is the
library call the command line makes too, plus the figure files it writes."""
from __future__ import annotations

import os
from dataclasses import replace

from ..config import TrainConfig
from ..engine.probes import DEFAULT_PROBES
from ..engine.runs import safe_run_id
from ..engine.weights import run_ref
from ..experiments.parallel import keep_workers, kept_workers
from ..experiments.plans import Plan, run_plan
from ..experiments.sweeps.local import run_sweep
from ..experiments.sweeps.spec import SweepSpec
from .outputs import write_curves, write_sweep_outputs


def plan_job(job, plan: Plan, loaded=None, splits=None, workers: int = 1) -> dict:
    """Train the plan's runs (reporting to `job`: the app's Job or the command line's printer), then write the
    group's curves.html. `loaded`, `splits`, `workers`: as experiments.plans.run_plan takes them."""
    result = run_plan(job, plan, loaded, splits, workers=workers)
    curves = write_curves(plan)
    job.update(curves=str(curves) if curves else None)
    stopped = any(r["status"] != "finished" for r in result["runs"])  # False: a stop came after the last step
    return dict(result, curves=str(curves) if curves else None, stopped=stopped)


def sweep_job(job, spec: SweepSpec, runs_dir: str) -> dict:
    """Run a sweep locally (reporting each cell to `job`), keeping table.csv and heatmap.html current."""
    def on_cell(info):
        job.update(fraction=info["done"] / max(info["total"], 1),
                   message=f"{info['done']}/{info['total']} runs: {info['run']} {info['status']}")
        job.add_event(info)

    job.update(fraction=0.0, message=f"sweep {spec.name}: starting")
    res = run_sweep(spec, runs_dir, backend="local", on_cell=on_cell, should_stop=job.should_stop,
                    refresh=write_sweep_outputs)
    return {"path": res.path, "ran": res.ran, "failed": res.failed, "stopped": res.stopped}


WORKERS_ENV = "ADDROP_APP_WORKERS"  # N: the app's plans run N side by side (1: one after the other); unset: below
SIDE_BY_SIDE_PARAMS = 5_000_000  # a smaller model trains a run in less time than a worker process takes to start


def app_workers(loaded, n_runs: int) -> tuple[int, int]:
    """(worker processes, torch threads each) for a plan of `n_runs` runs started from the app, (1, 0) meaning one
    after the other in the server. Two side by side, on one thread each (docs/performance.md: the prior page's
    defaults in about a third less time), where that pays: a CPU of two cores or more, a model of at least
    SIDE_BY_SIDE_PARAMS parameters, and memory for two more processes training it. ADDROP_APP_WORKERS=N sets N."""
    from ..experiments.sweeps.cell import available_cpus

    cpus = available_cpus()
    try:
        want = int(os.environ[WORKERS_ENV])
    except (KeyError, ValueError):
        params = sum(p.numel() for p in loaded.model.parameters())
        free = _available_bytes()
        # a worker: torch and transformers (about 1 GiB) and the model's weights, gradients and AdamW's two moments;
        # workers kept already hold theirs
        fits = free is None or kept_workers() is not None or free > 2 * (2 ** 30 + 16 * params) + 2 ** 30
        want = 2 if loaded.device.type == "cpu" and cpus >= 2 and params >= SIDE_BY_SIDE_PARAMS and fits else 1
    w = max(1, min(want, n_runs))
    return (w, max(1, cpus // w)) if w > 1 else (1, 0)


def warm_workers(loaded, model: str, device: str, num_labels: int, seed: int, n_runs: int) -> int:
    """How many runs of a plan of `n_runs` the app trains at once (app_workers); where more than one, their worker
    processes are started now, each loading `model` with `seed`, and kept between plans
    (experiments.parallel.keep_workers), so that pressing Start does not wait for them. A page that trains calls it
    as it is drawn."""
    w, threads = app_workers(loaded, n_runs)
    if w > 1:
        keep_workers(w, threads, (model, device, num_labels, seed))
    return w


def _available_bytes() -> int | None:
    """Memory available to new processes (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def app_defaults(plan: Plan, keep_weights: bool = True) -> Plan:
    """What runs started from the app keep besides their records: DEFAULT_PROBES probes (so the Across training page
    can follow them) and, unless the page's toggle said not to, the final weights (so the explorer can open them;
    about 90 MB a run with minilm)."""
    return replace(plan, configs=[replace(c, save_weights=c.save_weights or keep_weights,
                                          probes=c.probes or DEFAULT_PROBES) for c in plan.configs])


QUICK = dict(strategy="vanilla", epochs=3, batch_size=16, lr=5e-5, save_weights=True)
QUICK_TRAIN, QUICK_DEV = 1000, 200  # examples at most: a few minutes on a 2-core CPU with minilm


def quick_config(base_model: str, data_args: dict, n_train: int, n_dev: int, probe_ids: str | None = None,
                 seed: int = 0, device: str = "auto", every_epoch: bool = False) -> TrainConfig:
    """The one-button model for the chosen data: a plain 3-epoch fine-tune (lr 5e-5, batch 16) of the base model
    on up to QUICK_TRAIN training examples, scored on up to QUICK_DEV dev examples, weights and probes kept."""
    keys = ("task", "source", "data_dir", "csv", "text_col", "pair_col", "label_col")
    data = {k: data_args[k] for k in keys if data_args.get(k) is not None}
    return TrainConfig(model=base_model, **data, **QUICK, seed=seed, device=device,
                       train_size=min(n_train, QUICK_TRAIN), dev_size=min(n_dev, QUICK_DEV),
                       probes=0 if probe_ids else DEFAULT_PROBES, probe_ids=probe_ids or None,
                       save_every_epoch=every_epoch,
                       name=safe_run_id(None, prefix=f"model-{data.get('task', 'data')}"))


def train_job(job, cfg: TrainConfig, runs_dir: str, loaded=None, splits=None) -> dict:
    """One run (engine.training.train) reporting to `job`; returns its reference for `--model` / the sidebar."""
    from ..engine.training import Callbacks, prepare_data, train

    job.update(fraction=0.0, message="preparing the data")
    data = prepare_data(cfg, loaded.tokenizer, splits) if loaded is not None else None

    def on_step(info):
        job.update(fraction=info["fraction"],
                   message=f"epoch {info['epoch']}/{cfg.epochs}, step {info['step']}/{info['total_steps']}")

    res = train(cfg, runs_dir, loaded=loaded, data=data,
                callbacks=Callbacks(on_step=on_step, on_epoch=job.add_event, should_stop=job.should_stop))
    ref = run_ref(res.path)
    job.update(ref=ref, status_text=res.status)
    return {"ref": ref, "status": res.status, "reason": res.reason, "path": res.path, "metrics": res.metrics,
            "stopped": res.status != "finished"}
