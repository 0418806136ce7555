"""python -m addrop sweep: the p x q grid of AD-DROP (paper Section 3.2 and Figure 6) as one command."""
from __future__ import annotations

import argparse
import os
import sys

from ..config import AttributionConfig, TrainConfig
from ..engine.runs.names import default_runs_dir
from .options import TRAIN_ATTRIBUTION, add_options, attribution_from, train_config_from


def add_parser(sub):
    p = sub.add_parser(
        "sweep", help="run an AD-DROP p x q grid (plus the vanilla baseline) and draw the Figure 6 heatmap",
        description="Run every (p, q, seed) cell of AD-DROP and the vanilla baseline with the same seeds, each as a "
                    "normal run record in OUT/<name>/, skipping cells already finished (a stopped sweep resumes "
                    "when the same command runs again), then write OUT/<name>/table.csv and heatmap.html: the dev "
                    "metric of each cell minus the baseline's, as the paper's Figure 6.")
    g = p.add_argument_group("grid")
    g.add_argument("--p", default="0.1:0.9:0.1", help="candidate region sizes: start:stop:step (stop included) or "
                   "a list, e.g. 0.1:0.9:0.1 (default, the paper's search) or 0.1,0.3,0.5")
    g.add_argument("--q", default="0.1:0.9:0.1", help="drop probabilities inside the region, same forms as --p "
                                                       "(default 0.1:0.9:0.1)")
    g.add_argument("--seeds", default="0", help="seeds, e.g. 0,1,2 (default 0); each cell and the baseline run once "
                   "per seed")
    g.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the vanilla baseline per seed (default on; --no-baseline: the heatmap shows the "
                        "metric itself)")
    g.add_argument("--name", default=None, help="sweep folder name (default sweep-<task>-<model>, so the same "
                   "command resumes)")
    g.add_argument("--metric", default=None, help="dev metric of the table and heatmap: accuracy, f1, mcc, pearson, "
                   "spearman or loss (lower is better); default the task's primary metric")
    g.add_argument("--max-cells", type=int, default=None, help="allow a sweep of more runs than the default "
                   "cap (500): a grid that large starts only when asked for")
    g.add_argument("--metric-epoch", default="best", choices=["best", "last"],
                   help="score of a run: its best dev epoch (default, as early stopping picks) or the last one")
    b = p.add_argument_group("backend")
    b.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: this machine, one cell after another (or --max-concurrent processes); ray: Ray Tune "
                        "trials (pip install 'ray[tune]')")
    b.add_argument("--max-concurrent", type=int, default=1, help="cells run at the same time (default 1)")
    b.add_argument("--ray-address", default=None, help="a running Ray cluster, e.g. ray://head:10001 or auto "
                   "(default: start a local Ray instance)")
    b.add_argument("--cpus-per-cell", type=float, default=None, help="CPUs a Ray trial asks for (default: the "
                   "cluster's CPUs / --max-concurrent)")
    t = p.add_argument_group("training (shared by every cell)")
    # every TrainConfig field but those a cell sets itself (strategy, seed, run name) or a sweep does not write
    add_options(t, TrainConfig, skip=("strategy", "seed", "name", "clean_train_loss", "save_weights"))
    add_options(t, AttributionConfig, only=[f for f in TRAIN_ATTRIBUTION if f not in ("p", "q")])
    p.add_argument("--out", default=default_runs_dir(), help="runs folder; the sweep goes to OUT/<name>/ (default: "
                                                              "$ADDROP_RUNS_DIR, else runs)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def spec_from_args(a):
    """The SweepSpec of the parsed options."""
    from ..experiments.sweeps.spec import SweepSpec, default_name

    attr = attribution_from(a, seed=0)
    base = train_config_from(a, attr, strategy="addrop", name=None)
    extra = {"max_cells": a.max_cells} if getattr(a, "max_cells", None) is not None else {}
    return SweepSpec(name=a.name or default_name(base), base=base, ps=a.p, qs=a.q, seeds=a.seeds,
                     baseline=a.baseline, **extra)


def run(a) -> int:
    from ..engine.runs import check_folder
    from ..experiments.sweeps.results import check_metric

    # the grid, the settings, the metric and the folder are checked before torch is imported or a cell runs
    spec = spec_from_args(a)
    check_metric(spec.base, a.metric)
    check_folder(a.out, what="--out")
    from ..experiments.sweeps.local import run_sweep
    from ..experiments.sweeps.results import HEATMAP_FILE, TABLE_FILE, delta_text, sweep_verdict
    from ..studio.outputs import write_sweep_outputs

    n = spec.size
    if not a.quiet:
        print(f"sweep {spec.name}: {len(spec.ps)} p x {len(spec.qs)} q x {len(spec.seeds)} seed(s)"
              f"{' + baseline' if spec.baseline else ''} = {n} runs, backend {a.backend} -> "
              f"{os.path.join(a.out, spec.name)}", flush=True)

    def on_cell(info):
        if a.quiet:
            return
        extra = f" ({info['reason']})" if info.get("reason") else ""
        print(f"[{info['done']}/{info['total']}] {info['run']}: {info['status']}{extra}", flush=True)

    res = run_sweep(spec, a.out, backend=a.backend, max_concurrent=a.max_concurrent, ray_address=a.ray_address,
                    cpus_per_cell=a.cpus_per_cell, on_cell=on_cell, refresh=write_sweep_outputs)
    table = (write_sweep_outputs(res.path, which=a.metric_epoch, metric=a.metric)
             if a.metric_epoch != "best" or a.metric else res.table)
    metric, base = table.attrs.get("metric"), table.attrs.get("baseline")
    verdict = sweep_verdict(table)
    best = verdict["best"]
    if res.skipped and not a.quiet:
        print(f"{len(res.skipped)} finished cell(s) skipped (resumed)")
    line = f"{len(res.ran)} run(s) finished in {res.seconds:.0f}s"
    if base == base and base is not None:  # not nan
        line += f"; baseline {metric} {base:.4f}"
    if best:
        line += f"; best p={best['p']:g} q={best['q']:g}: {best['mean']:.4f}"
        if best.get("delta") == best.get("delta"):
            line += f" ({delta_text(best['delta'], table.attrs.get('higher_is_better', True))})"
    print(line)
    print(verdict["sentence"])
    print(f"table -> {os.path.join(res.path, TABLE_FILE)}; heatmap -> {os.path.join(res.path, HEATMAP_FILE)}")
    if res.failed:
        for rid, why in res.failed.items():
            print(f"{rid}: {why}", file=sys.stderr)
        return 1
    if res.stopped:
        print("stopped: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


__all__ = ["add_parser", "spec_from_args", "run"]
