"""python -m addrop sweep: the p x q grid of AD-DROP (paper Section 3.2 and Figure 6) as one command."""
from __future__ import annotations

import os
import sys

from .errors import UserError


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
    g.add_argument("--q", default="0.1:0.9:0.1", help="drop probabilities inside the region, same forms as --p")
    g.add_argument("--seeds", default="0", help="seeds, e.g. 0,1,2 (default 0); each cell and the baseline run once "
                   "per seed")
    g.add_argument("--baseline", action=_Bool, default=True, help="also run the vanilla baseline per seed (default "
                   "on; --no-baseline: the heatmap shows the metric itself)")
    g.add_argument("--name", default=None, help="sweep folder name (default sweep-<task>-<model>, so the same "
                   "command resumes)")
    g.add_argument("--metric", default=None, help="dev metric of the table and heatmap: accuracy, f1, mcc, pearson, "
                   "spearman or loss (lower is better); default the task's primary metric")
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
    t.add_argument("--model", default="minilm", help="minilm (default), tiny-bert, tiny-roberta, tiny-electra, "
                   "tiny-distilbert, a Hugging Face id or a local folder")
    t.add_argument("--task", default="demo", help="demo, sst-2, mrpc, rte, cola, sts-b, qnli, qqp, mnli, or csv")
    t.add_argument("--data-dir", default=None, help="GLUE folder (default: the ADDROP_GLUE_DIR variable)")
    t.add_argument("--source", default="auto", choices=["auto", "glue", "hf", "csv", "demo"])
    t.add_argument("--csv", default=None, help="a CSV/TSV file with text, optional pair, and label columns")
    t.add_argument("--text-col", default="text")
    t.add_argument("--pair-col", default=None)
    t.add_argument("--label-col", default="label")
    t.add_argument("--attribution", default="ga", choices=["ga", "iga", "aa", "rd"], help="default ga")
    t.add_argument("--layers", default="all", help="layers to mask: all (default) or e.g. 0 or 0,3")
    t.add_argument("--target", default="pseudo", choices=["pseudo", "gold"], help="label attributed (default pseudo)")
    t.add_argument("--steps", type=int, default=20, help="IGA steps m (default 20)")
    t.add_argument("--no-cross-tuning", action="store_true", help="AD-DROP at every epoch")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--train-size", type=int, default=None, help="seeded subset of the training set")
    t.add_argument("--dev-size", type=int, default=None, help="seeded subset of the dev set")
    t.add_argument("--shots", type=int, default=None, help="k training examples per class")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--warmup-ratio", type=float, default=0.1)
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--early-stopping", type=int, default=0, help="patience in epochs on the dev loss (0: off)")
    t.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs", help="runs folder; the sweep goes to OUT/<name>/ (default runs)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=_cmd_sweep)


try:
    from argparse import BooleanOptionalAction as _Bool
except ImportError:  # pragma: no cover - Python < 3.9
    _Bool = "store_true"


def spec_from_args(a):
    from .config import AttributionConfig, TrainConfig
    from .sweep import SweepSpec, default_name

    attr = AttributionConfig(method=a.attribution, target=a.target, layers=a.layers, steps=a.steps)
    base = TrainConfig(model=a.model, task=a.task, data_dir=a.data_dir, source=a.source, csv=a.csv,
                       text_col=a.text_col, pair_col=a.pair_col, label_col=a.label_col, strategy="addrop",
                       attribution=attr, cross_tuning=not a.no_cross_tuning, epochs=a.epochs,
                       train_size=a.train_size, dev_size=a.dev_size, shots=a.shots, batch_size=a.batch_size,
                       lr=a.lr, warmup_ratio=a.warmup_ratio, max_length=a.max_length,
                       early_stopping=a.early_stopping, device=a.device)
    return SweepSpec(name=a.name or default_name(base), base=base, ps=a.p, qs=a.q, seeds=a.seeds,
                     baseline=a.baseline)


def _cmd_sweep(a) -> int:
    from .sweep import run_sweep
    from .sweep_results import HEATMAP_FILE, TABLE_FILE, best_cell, write_outputs

    spec = spec_from_args(a)
    n = len(spec.cells())
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
                    cpus_per_cell=a.cpus_per_cell, on_cell=on_cell)
    table = (write_outputs(res.path, which=a.metric_epoch, metric=a.metric)
             if a.metric_epoch != "best" or a.metric else res.table)
    metric, base = table.attrs.get("metric"), table.attrs.get("baseline")
    best = best_cell(table)
    if res.skipped and not a.quiet:
        print(f"{len(res.skipped)} finished cell(s) skipped (resumed)")
    line = f"{len(res.ran)} run(s) finished in {res.seconds:.0f}s"
    if base == base and base is not None:  # not nan
        line += f"; baseline {metric} {base:.4f}"
    if best:
        line += f"; best p={best['p']:g} q={best['q']:g}: {best['mean']:.4f}"
        if best.get("delta") == best.get("delta"):
            line += (f" ({best['delta'] * 100:+.2f} points)" if table.attrs.get("higher_is_better", True)
                     else f" ({best['delta']:+.4f})")
    print(line)
    print(f"table -> {os.path.join(res.path, TABLE_FILE)}; heatmap -> {os.path.join(res.path, HEATMAP_FILE)}")
    if res.failed:
        for rid, why in res.failed.items():
            print(f"{rid}: {why}", file=sys.stderr)
        return 1
    if res.stopped:
        print("stopped: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


__all__ = ["add_parser", "spec_from_args", "UserError"]
