"""python -m addrop train / prior: fine-tuning runs from the command line."""
from __future__ import annotations

import os

from .config import PRIOR_STRATEGIES, STRATEGIES, AttributionConfig, TrainConfig


def _common(p, strategy: bool):
    p.add_argument("--model", default="minilm", help="minilm (default), tiny-bert, tiny-roberta, tiny-electra, "
                   "tiny-distilbert, a Hugging Face id or a local folder")
    p.add_argument("--task", default="demo", help="demo (built in), sst-2, mrpc, rte, cola, sts-b, qnli, qqp, mnli, "
                   "or csv with --csv")
    p.add_argument("--data-dir", default=None, help="GLUE folder holding <TASK>/{train,dev}.tsv "
                   "(default: the ADDROP_GLUE_DIR variable)")
    p.add_argument("--source", default="auto", choices=["auto", "glue", "hf", "csv", "demo"],
                   help="where the data comes from (auto: demo, --csv, or the GLUE folder)")
    p.add_argument("--csv", default=None, help="a CSV/TSV file with text, optional pair, and label columns")
    p.add_argument("--text-col", default="text", help="CSV column with the text (default text)")
    p.add_argument("--pair-col", default=None, help="CSV column with the second text, if any")
    p.add_argument("--label-col", default="label", help="CSV column with the label (default label)")
    if strategy:
        p.add_argument("--strategy", default="vanilla", choices=list(STRATEGIES),
                       help="vanilla, addrop, or a prior-experiment strategy (drop-high, drop-low, drop-random, none)")
        p.add_argument("--attribution", default="ga", choices=["ga", "iga", "aa", "rd"],
                       help="AD-DROP's attribution method (default ga)")
        p.add_argument("--p", type=float, default=0.3, help="candidate region size p in (0, 1); for drop-* the "
                       "share of each row dropped")
        p.add_argument("--q", type=float, default=0.3, help="drop probability q in (0, 1) inside the region")
        p.add_argument("--layers", default="all", help="layers to mask: 'all' or e.g. 0 or 0,3 (default all)")
        p.add_argument("--target", default=None, choices=["pseudo", "gold"],
                       help="label attributed: pseudo (AD-DROP's default) or gold (drop-* always use gold)")
        p.add_argument("--no-cross-tuning", action="store_true", help="AD-DROP at every epoch instead of "
                       "alternating plain and AD-DROP epochs")
        p.add_argument("--steps", type=int, default=20, help="IGA steps m (default 20)")
        p.add_argument("--save-weights", action="store_true", help="also write model.safetensors")
    else:
        p.add_argument("--rate", type=float, default=0.3, help="share of each row dropped (default 0.3)")
        p.add_argument("--layers", default="0", help="layers whose attention is masked (default 0)")
    p.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    p.add_argument("--train-size", type=int, default=None, help="seeded subset of the training set")
    p.add_argument("--dev-size", type=int, default=None, help="seeded subset of the dev set")
    p.add_argument("--shots", type=int, default=None, help="k training examples per class (few-shot)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example, longer ones are cut (default 128)")
    p.add_argument("--clean-train-loss", action="store_true", default=None,
                   help="also record the unmasked eval-mode training loss (always on for the prior experiment)")
    p.add_argument("--early-stopping", type=int, default=0, help="patience in epochs on the dev loss (0: off)")
    p.add_argument("--seed", type=int, default=0, help="seed (data order, masks, dropout, head init)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda:N")
    p.add_argument("--name", default=None, help="run id (a safe file name; generated when left out)")
    p.add_argument("--out", default="runs", help="folder for run records (default runs)")


def add_parser(sub):
    t = sub.add_parser("train", help="fine-tune with one strategy and write a run record",
                       description="Fine-tune a model (vanilla, AD-DROP, or a prior-experiment strategy), print one "
                                   "line per epoch and write OUT/<run id>/{config.json,metrics.jsonl,status.json}.")
    _common(t, strategy=True)
    t.set_defaults(func=_cmd_train)
    p = sub.add_parser("prior", help="the paper's prior experiment: none / random / low / high, with curves.html",
                       description="Run the prior experiment (paper Section 2.2): gold-label GA in the chosen layers, "
                                   "a fixed share of each attention row dropped (the highest, the lowest, random, or "
                                   "none), same seed, into one folder with curves.html.")
    _common(p, strategy=False)
    p.set_defaults(func=_cmd_prior)
    c = sub.add_parser("compare", help="AD-DROP against vanilla: paired runs with the same seeds, mean and spread",
                       description="Run vanilla and one other strategy (addrop by default) with the same seeds and "
                                   "settings into one folder; print the final dev metrics as mean and standard "
                                   "deviation over seeds, and the cost per epoch of each.")
    _common(c, strategy=True)
    c.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    c.set_defaults(func=_cmd_compare, strategy="addrop")


def _config(a, strategy: str) -> TrainConfig:
    if strategy in PRIOR_STRATEGIES and hasattr(a, "rate"):
        attr = AttributionConfig(method="ga", target="gold", layers=a.layers, p=a.rate, q=0.5, seed=a.seed)
    else:
        target = a.target or ("gold" if strategy in PRIOR_STRATEGIES else "pseudo")
        attr = AttributionConfig(method=a.attribution, target=target, layers=a.layers, p=a.p, q=a.q,
                                 steps=a.steps, seed=a.seed)
    return TrainConfig(model=a.model, task=a.task, data_dir=a.data_dir, source=a.source, csv=a.csv,
                       text_col=a.text_col, pair_col=a.pair_col, label_col=a.label_col, strategy=strategy,
                       attribution=attr, cross_tuning=not getattr(a, "no_cross_tuning", False), epochs=a.epochs,
                       train_size=a.train_size, dev_size=a.dev_size, shots=a.shots, batch_size=a.batch_size,
                       lr=a.lr, max_length=a.max_length, seed=a.seed, device=a.device,
                       clean_train_loss=a.clean_train_loss, early_stopping=a.early_stopping,
                       save_weights=getattr(a, "save_weights", False),
                       name=a.name if strategy == getattr(a, "strategy", None) else None)


def _print_epoch(prefix: str):
    def show(r: dict):
        dev = " ".join(f"{k[4:]}={v:.4f}" for k, v in r.items() if k.startswith("dev_") and k != "dev_loss")
        clean = f" clean_train_loss={r['clean_train_loss']:.4f}" if "clean_train_loss" in r else ""
        tag = " [AD-DROP]" if r.get("addrop_epoch") else ""
        print(f"{prefix}epoch {r['epoch']}{tag}: train_loss={r['train_loss']:.4f}{clean} dev_loss={r['dev_loss']:.4f} "
              f"{dev} dropped={r['dropped_share']:.1%} ({r['seconds']:.1f}s)", flush=True)
    return show


def _cmd_train(a) -> int:
    from .training import Callbacks, train

    cfg = _config(a, a.strategy)
    res = train(cfg, runs_dir=a.out, callbacks=Callbacks(on_epoch=_print_epoch("")))
    print(f"run {res.id}: {res.status}{' (' + res.reason + ')' if res.reason else ''} -> {res.path}")
    return 0 if res.status == "finished" else 1


def _cmd_prior(a) -> int:
    from .models import load_model
    from .plots import loss_curves
    from .runs import atomic_write_text, list_runs, metrics_frame, safe_child, safe_run_id
    from .training import Callbacks, load_splits, prepare_data, train

    group = safe_run_id(a.name, prefix="prior")
    root = safe_child(a.out, group)
    cfgs = [_config(a, s) for s in PRIOR_STRATEGIES]
    splits = load_splits(cfgs[0])
    loaded = load_model(a.model, a.device, num_labels=splits[0].num_labels, seed=a.seed)
    data = prepare_data(cfgs[0], loaded.tokenizer, splits)
    status = 0
    for cfg in cfgs:
        cfg.name = cfg.strategy
        res = train(cfg, runs_dir=str(root), loaded=loaded, data=data,
                    callbacks=Callbacks(on_epoch=_print_epoch(f"{cfg.strategy:>11} ")))
        if res.status != "finished":
            print(f"{cfg.strategy}: {res.status} ({res.reason})")
            status = 1
    frame = metrics_frame(list_runs(root))
    fig = loss_curves(frame, label="strategy", title=f"prior experiment: {a.model} on {cfgs[0].task}")
    atomic_write_text(os.path.join(root, "curves.html"), fig.to_html(include_plotlyjs="cdn"))
    print(f"prior experiment -> {root} (curves.html)")
    return status


def _cmd_compare(a) -> int:
    import statistics

    from .models import load_model
    from .runs import safe_child, safe_run_id
    from .training import Callbacks, load_splits, prepare_data, train
    from .errors import UserError

    try:
        seeds = [int(x) for x in str(a.seeds).split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got {a.seeds!r}") from None
    if not seeds:
        raise UserError("--seeds names no seed")
    if a.strategy == "vanilla":
        raise UserError("compare runs vanilla against another strategy: pass --strategy addrop (default) or drop-*")
    group = safe_run_id(a.name, prefix="compare")
    root = safe_child(a.out, group)
    results: dict[str, list[dict]] = {"vanilla": [], a.strategy: []}
    status = 0
    for seed in seeds:
        a.seed = seed
        cfgs = [_config(a, "vanilla"), _config(a, a.strategy)]
        splits = load_splits(cfgs[0])
        loaded = load_model(a.model, a.device, num_labels=splits[0].num_labels, seed=seed)
        data = prepare_data(cfgs[0], loaded.tokenizer, splits)
        for cfg in cfgs:
            cfg.name = f"{cfg.strategy}-s{seed}"
            res = train(cfg, runs_dir=str(root), loaded=loaded, data=data,
                        callbacks=Callbacks(on_epoch=_print_epoch(f"{cfg.name:>14} ")))
            if res.status != "finished":
                print(f"{cfg.name}: {res.status} ({res.reason})")
                status = 1
            elif res.metrics:
                results[cfg.strategy].append(res.metrics[-1] | {"sec_per_epoch": statistics.mean(
                    r["seconds"] for r in res.metrics)})
    keys = [k for k in (results["vanilla"][0] if results["vanilla"] else {}) if k.startswith("dev_")]
    print(f"\n{'strategy':>10} " + " ".join(f"{k:>20}" for k in keys + ["sec_per_epoch"]))
    for strat, rows in results.items():
        cells = []
        for k in keys + ["sec_per_epoch"]:
            vals = [r[k] for r in rows if k in r]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.4f} +- {sd:.4f}".rjust(20) if vals else " " * 20)
        print(f"{strat:>10} " + " ".join(cells))
    print(f"runs -> {root}")
    return status
