"""The work the app runs as background jobs (addrop/studio/jobs.py): an experiment plan and a sweep. Each is the
library call the command line makes too, plus the figure files it writes."""
from __future__ import annotations

from ..experiments.plans import Plan, run_plan
from ..experiments.sweeps.local import run_sweep
from ..experiments.sweeps.spec import SweepSpec
from .outputs import write_curves, write_sweep_outputs


def plan_job(job, plan: Plan, loaded=None, splits=None) -> dict:
    """Train the plan's runs (reporting to `job`: the app's Job or the command line's printer), then write the
    group's curves.html. `loaded`, `splits`: as experiments.plans.run_plan takes them."""
    result = run_plan(job, plan, loaded, splits)
    curves = write_curves(plan)
    job.update(curves=str(curves) if curves else None)
    return dict(result, curves=str(curves) if curves else None)


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
