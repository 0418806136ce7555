"""python -m addrop faithfulness: deletion curves of GA, IGA, AA, RD and low over dev examples (CSV + HTML)."""
from __future__ import annotations

from ..config import TrainConfig
from .options import add_options, build

DATA = ("model", "task", "data_dir", "source", "csv", "text_col", "pair_col", "label_col", "max_length", "seed",
        "device")


def add_parser(sub) -> None:
    p = sub.add_parser("faithfulness", help="deletion curves: does the attribution find what the prediction "
                                            "depends on? (CSV + HTML)",
                       description="For N dev examples, drop in every attention row of the chosen layers the top-p "
                                   "share of keys by GA, IGA, AA or RD (low: the bottom-p share by GA) and measure "
                                   "the change of the predicted class's probability and logit and the share of "
                                   "flipped predictions, with bootstrap 95% intervals. Writes OUT/deletion.csv, "
                                   "OUT/deletion.html and OUT/settings.json. Use a trained model (minilm-demo, or "
                                   "run:PATH): an untrained head's curves mean nothing.")
    add_options(p, TrainConfig, only=DATA, defaults={"model": "minilm-demo"})
    p.add_argument("--n", type=int, default=64, help="dev examples (a seeded subset; default 64)")
    p.add_argument("--methods", default="ga,aa,rd,low", help="some of ga,iga,aa,rd,low (default ga,aa,rd,low; IGA "
                                                            "costs about 20 passes per example)")
    p.add_argument("--p", default="0,0.1,0.2,0.3,0.5,0.7,0.9",
                   help="shares of each row dropped (default 0,0.1,0.2,0.3,0.5,0.7,0.9)")
    p.add_argument("--q", type=float, default=1.0, help="drop each candidate with probability q (default 1: the "
                                                        "whole region)")
    p.add_argument("--layers", default="all", help="layers whose attention is masked (default all; negative "
                                                    "indices count from the top: -1 is the last)")
    p.add_argument("--rd-seeds", type=int, default=3, help="RD is averaged over this many seeds (default 3)")
    p.add_argument("--out", required=True, help="folder to write into (made if missing)")
    p.set_defaults(func=run)


def settings_from(a):
    from ..experiments.deletion_settings import DeletionSettings
    from ..errors import UserError

    try:
        ps = tuple(float(x) for x in a.p.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--p must be numbers separated by commas, got {a.p!r}") from None
    return DeletionSettings(n=a.n, methods=tuple(a.methods.split(",")), ps=ps, q=a.q, layers=a.layers,
                            rd_seeds=a.rd_seeds, seed=a.seed, max_length=a.max_length)


def run(a) -> int:
    import sys

    from ..engine.runs import check_folder

    settings = settings_from(a)  # every argument and the output folder are checked before anything loads
    cfg = build(TrainConfig, a)
    check_folder(a.out, what="--out")
    from ..engine.models import head_note, load_model
    from ..engine.training import load_splits
    from ..experiments.faithfulness import deletion_curves, deletion_summary
    from ..studio.outputs import write_deletion

    spec, _, dev = load_splits(cfg)
    loaded = load_model(cfg.model, cfg.device, num_labels=spec.num_labels, seed=cfg.seed)
    res = deletion_curves(loaded, spec, dev, settings,
                          progress=lambda f, msg: print(f"\r{msg}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    paths = write_deletion(a.out, res)
    for line in deletion_summary(res.table):
        print(line)
    print(f"{res.n} examples, {res.settings['layers_used']}, {res.seconds:.1f} s -> {', '.join(str(p) for p in paths)}")
    note = head_note(cfg.model, spec.name)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0
