"""python -m addrop compare: AD-DROP against vanilla, paired over seeds, the same plan the app runs."""
from __future__ import annotations

from .options import group_name_help
from .train import add_training_options, add_workers_option


def add_parser(sub) -> None:
    c = sub.add_parser("compare", help="AD-DROP against vanilla: paired runs with the same seeds, mean and spread",
                       description="Run vanilla and one other strategy (addrop by default) with the same seeds and "
                                   "settings into one folder; print the final dev metrics as mean and standard "
                                   "deviation over seeds, and the cost per epoch of each.")
    add_training_options(c, skip=("seed",), defaults={"strategy": "addrop"})
    group_name_help(c, "compare-<date>-<time>-<tag>")
    c.add_argument("--seeds", default="0,1,2", help="seeds, e.g. 0,1,2 or 0:4 (default 0,1,2)")
    add_workers_option(c)
    c.set_defaults(func=run)


def run(a) -> int:
    from ..engine.runs import list_runs, metrics_frame
    from ..experiments.best import best_vs_last
    from ..experiments.groups import comparable, epoch_cost, last_epoch_metrics
    from ..experiments.plans import check_group_free, compare_plan
    from .options import attribution_from, train_config_from
    from .printing import ConsoleProgress

    # the whole plan is checked (seeds, layers, the folder) before torch is imported or a run starts
    base = train_config_from(a, attribution_from(a), name=None)
    plan = compare_plan(base, base.attribution, base.cross_tuning, a.seeds, a.out, group=a.name, strategy=a.strategy)
    from ..engine.preflight import check_runs
    from ..experiments.verdicts import compare_verdict
    from ..studio.background import plan_job

    from ..experiments.parallel import workers_ahead

    with workers_ahead(plan.configs, a.workers):  # --workers N: they start while the plan is checked
        check_runs(plan.configs, a.out)
        check_group_free(plan)
        result = plan_job(ConsoleProgress(), plan, workers=a.workers)  # the app's job: the runs, then curves.html
    status = 0
    for r in result["runs"]:
        if r["status"] != "finished":
            print(f"{r['run']}: {r['status']}" + (f" ({r['reason']})" if r.get("reason") else ""))
            status = 1
    recs = list_runs(plan.root)
    every = metrics_frame(recs)
    frame, pending = comparable(every, recs)
    if pending:
        print("\nleft out of the tables and the verdict below (a seed counts once both its runs finished): "
              + "; ".join(pending))
    metrics = last_epoch_metrics(frame)
    cost, ratio = epoch_cost(every)  # seconds per epoch: every epoch counts
    if not metrics.empty:
        print("\ndev metrics at the last epoch (mean over seeds; sd when several):")
        print(metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("\nseconds per epoch:")
        print(cost.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        if ratio is not None:
            print(f"AD-DROP epoch / vanilla epoch: {ratio:.2f}x")
        print("\nverdict (paired by seed):")
        for sentence in compare_verdict(frame)["sentences"]:
            print(f"- {sentence}")
        best = best_vs_last(frame)
        if not best.empty:
            print("\nthe epoch of the best dev metric beside the last (mean over seeds; the paper reports the best; "
                  "status.json's best epoch follows what early stopping watches):")
            print(best.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"runs -> {plan.root}")
    return status
