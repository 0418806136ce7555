"""python -m addrop train: one fine-tuning run (vanilla, AD-DROP or a prior-experiment strategy)."""
from __future__ import annotations

from ..config import AttributionConfig, TrainConfig
from ..engine.runs.names import default_runs_dir
from .options import TRAIN_ATTRIBUTION, add_options, attribution_from, train_config_from
from .printing import epoch_line


def add_training_options(p, skip=(), defaults: dict | None = None) -> None:
    """The options of a training run: every TrainConfig field and the attribution settings training uses."""
    add_options(p, TrainConfig, skip=skip, defaults=defaults)
    add_options(p, AttributionConfig, only=[f for f in TRAIN_ATTRIBUTION if f not in skip], defaults=defaults)
    p.add_argument("--out", default=default_runs_dir(), help="folder for run records (default: $ADDROP_RUNS_DIR, "
                                                              "else runs)")


def add_workers_option(p) -> None:
    """--workers of the commands that train several runs (prior, compare)."""
    p.add_argument("--workers", type=int, default=1,
                   help="runs side by side in N worker processes, each on its share of the CPUs (default 1: one "
                        "after the other; each worker first spends seconds loading torch and the model, so it pays "
                        "off for longer plans and more cores)")


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="fine-tune with one strategy and write a run record",
                       description="Fine-tune a model (vanilla, AD-DROP, or a prior-experiment strategy), print one "
                                   "line per epoch and write OUT/<run id>/{config.json,metrics.jsonl,status.json}.")
    add_training_options(t)
    t.set_defaults(func=run)


def run(a) -> int:
    import sys

    from ..engine.runs import check_folder

    cfg = train_config_from(a, attribution_from(a, seed=a.seed))  # argument errors answer before torch loads
    check_folder(a.out, what="--out")

    from ..engine.preflight import check_runs
    from ..engine.training import Callbacks, train

    check_runs([cfg], a.out)
    if cfg.keep_best and not cfg.save_weights:
        print("note: --keep-best picks which weights --save-weights writes; without --save-weights no weights are "
              "written (status.json still names the best epoch)", file=sys.stderr)
    res = train(cfg, runs_dir=a.out, callbacks=Callbacks(on_epoch=lambda r: print(epoch_line(r), flush=True),
                                                         on_note=lambda m: print(f"note: {m}", file=sys.stderr)))
    print(f"run {res.id}: {res.status}{' (' + res.reason + ')' if res.reason else ''} -> {res.path}")
    return 0 if res.status == "finished" else 1
