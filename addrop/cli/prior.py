"""python -m addrop prior: the paper's prior experiment (Section 2.2), the same plan the app runs."""
from __future__ import annotations

import os

from ..errors import counted
from .options import group_name_help
from .train import add_training_options, add_workers_option


def add_parser(sub) -> None:
    from ..experiments.plans import PRIOR_DEFAULTS, PRIOR_SETTINGS

    p = sub.add_parser("prior", help="the paper's prior experiment: none / random / low / high, with curves.html",
                       description="Run the prior experiment (paper Section 2.2): gold-label GA in the chosen layers, "
                                   "a fixed share of each attention row dropped (the highest, the lowest, random, or "
                                   "none; by default the same number of keys per row, --count reference for the "
                                   "reference code's rule), same seed, into one folder with curves.html, and print "
                                   "what the runs show. The defaults are the app's: "
                                   f"{PRIOR_DEFAULTS['train_size']} training and {PRIOR_DEFAULTS['dev_size']} dev "
                                   f"examples, lr {PRIOR_DEFAULTS['lr']:g} (a size above the data's takes all of "
                                   "it).")
    # the drop-* strategies fix the attribution (gold-label GA, exactly the share --rate): none of it is an option
    add_training_options(p, skip=("strategy", "cross_tuning", "clean_train_loss", "save_weights", "method", "steps",
                                  "target", "label", "p", "q"),
                         defaults={k: PRIOR_DEFAULTS[k] for k in ("layers", "precision", "train_size", "dev_size",
                                                                  "lr")})
    quick, over = PRIOR_SETTINGS["quick"], PRIOR_SETTINGS["overfit"]
    p.add_argument("--setting", choices=list(PRIOR_SETTINGS), default="quick",
                   help=f"quick (default): {quick['train_size']} training and {quick['dev_size']} dev examples, "
                        f"{quick['epochs']} epochs, lr {quick['lr']:g}, about a minute with minilm; no run overfits "
                        f"yet. overfit: {over['train_size']} training and {over['dev_size']} dev examples, "
                        f"{over['epochs']} epochs, lr {over['lr']:g}, chosen on the demo data so that drop-low's dev "
                        "loss turns upwards (docs/prior-preset.md); about three times the work. Options given "
                        "explicitly win.")
    p.add_argument("--rate", "--p", type=float, default=PRIOR_DEFAULTS["rate"],
                   help=f"share of each row dropped, as p elsewhere (default {PRIOR_DEFAULTS['rate']:g})")
    group_name_help(p, "prior-<date>-<time>-<tag>")
    add_workers_option(p)
    p.set_defaults(func=run)


def run(a) -> int:
    from ..engine.runs import list_runs, metrics_frame
    from ..experiments.plans import PRIOR_SETTINGS, overfit_setting_helps, prior_plan
    from .options import attribution_from, given_options, train_config_from
    from .printing import ConsoleProgress

    given = given_options(a)  # the quick setting is the options' defaults: only another one overrides them
    sizes = {k: v for k, v in PRIOR_SETTINGS[a.setting].items() if k not in given} if a.setting != "quick" else {}
    base = train_config_from(a, attribution_from(a), name=None, **sizes)
    plan = prior_plan(base, a.rate, base.attribution.layers, a.out, group=a.name)
    print(f"prior experiment ({a.setting} setting): {base.model} on {base.task}, {base.train_size} training and "
          f"{base.dev_size} dev examples (at most), {counted(base.epochs, 'epoch')}, lr {base.lr:g}, "
          f"batch {base.batch_size}, rate {a.rate:g} in layers {plan.meta['layers']}, seed {base.seed}", flush=True)
    from ..engine.preflight import check_runs
    from ..experiments.plans import check_group_free
    from ..experiments.verdicts import PAPER_PRIOR_FINDING, overfit_sentence, prior_summary
    from ..studio.background import plan_job

    from ..experiments.parallel import workers_ahead

    with workers_ahead(plan.configs, a.workers):  # --workers N: they start while the plan is checked
        check_runs(plan.configs, a.out)  # layers, names and the folder before the first run
        check_group_free(plan)
        # the app's job: the runs, then curves.html
        result = plan_job(ConsoleProgress(width=11), plan, workers=a.workers)
    curves = result["curves"]
    failed = [r for r in result["runs"] if r["status"] not in ("finished", "waiting")]
    for r in failed:
        print(f"{r['run']}: {r['status']} ({r.get('reason')})")
    recs = list_runs(plan.root)
    frame = metrics_frame(recs)
    for sentence in prior_summary(frame, runs={r["strategy"]: r["status"] for r in result["runs"]}):
        print(f"- {sentence}")
    if overfit_sentence(frame)[0] is False and overfit_setting_helps(base.record()):
        print("  (--setting overfit trains long enough for drop-low's dev loss to turn upwards on the demo data)")
    print(f"(the paper's finding: {PAPER_PRIOR_FINDING})")
    from ..engine.precision import ran_in

    precision = ", ".join(ran_in(recs))
    print(f"prior experiment -> {plan.root}" + (f" ({os.path.basename(curves)})" if curves else "")
          + (f"; precision {precision}" if precision else ""))
    return 1 if failed or any(r["status"] == "waiting" for r in result["runs"]) else 0
