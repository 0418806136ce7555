"""python -m addrop replicate: run a preregistered replication plan resumably, list it, or report it."""
from __future__ import annotations

import os
import sys

from ..engine.runs.names import default_runs_dir
from ..errors import counted


def add_parser(sub) -> None:
    r = sub.add_parser(
        "replicate", help="run a replication plan (docs/replication-plan.json) resumably, or report it",
        description="Run every group of a replication plan in order (selection of p and q on training examples "
                    "held out, the paired vanilla / AD-DROP comparison, the ablations) as ordinary run records "
                    "under OUT, skipping finished runs: stop it any time and run the same command again to "
                    "continue. --dry-run lists the runs and the time left; --report writes OUT/report.md and "
                    "OUT/report.html from the run records.")
    r.add_argument("plan", help="the plan file (JSON), e.g. docs/replication-plan.json")
    r.add_argument("--out", default=os.path.join(default_runs_dir(), "replication"),
                   help="the study folder (default: $ADDROP_RUNS_DIR/replication, else runs/replication)")
    r.add_argument("--only", nargs="+", default=None, metavar="STAGE[/SETTING]",
                   help="run only these groups, e.g. selection/cola main/cola or ablation (default: all)")
    r.add_argument("--dry-run", action="store_true", help="list the groups, their runs and the time left; run nothing")
    r.add_argument("--report", action="store_true", help="write OUT/report.md and report.html; run nothing")
    r.add_argument("--data-dir", default=None, metavar="DIR", help="GLUE folder (default: ADDROP_GLUE_DIR)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda:N (default auto)")
    b = r.add_argument_group("backend")
    b.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: this machine, one run after another; ray: each group's runs as Ray Tune trials")
    b.add_argument("--max-concurrent", type=int, default=1, help="runs at the same time (default 1)")
    b.add_argument("--ray-address", default=None, help="a running Ray cluster (default: a local Ray instance)")
    b.add_argument("--cpus-per-cell", type=float, default=None, help="CPUs a Ray trial asks for")
    r.set_defaults(func=run)


def _hours(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.0f} min"


def run(a) -> int:
    from ..config import check_device_name
    from ..engine.runs import check_folder
    from ..errors import UserError
    from ..experiments.replication.plan import ReplicationPlan

    # the plan, the folder and the options are checked before torch is imported or a run starts
    if a.dry_run and a.report:
        raise UserError("choose one of --dry-run and --report")
    if not isinstance(a.max_concurrent, int) or a.max_concurrent < 1:
        raise UserError(f"--max-concurrent must be an integer >= 1, got {a.max_concurrent!r}")
    check_folder(a.out, what="--out")
    data_dir = os.path.abspath(a.data_dir) if a.data_dir else None
    plan = ReplicationPlan.load(a.plan, data_dir=data_dir, device=check_device_name(a.device))
    units = plan.select(a.only)
    if a.report:
        from ..studio.outputs import write_study_report

        rep, paths = write_study_report(a.out)
        print(f"report -> {paths[0]} and {paths[1]}")
        if not rep["arms"]:
            print("no main or ablation run has finished yet: there is no result")
        return 0
    from ..experiments.replication.runner import run_study, survey

    states = survey(plan, a.out, units)
    if a.dry_run:
        for st in states:
            what = "p and q from selection" if st.waiting else (f"p={st.p:g} q={st.q:g}" if st.p is not None else "")
            print(f"{st.unit.label:32} {st.finished:3}/{st.total:<3} finished, about {_hours(st.seconds_left):>8} left"
                  f"  {what}")
            if st.todo:
                print(f"    to run: {', '.join(st.todo)}" + (" (names once p and q are chosen)" if st.waiting else ""))
        left = sum(s.seconds_left for s in states)
        total = sum(s.total for s in states)
        done = sum(s.finished for s in states)
        print(f"{done} of {total} runs finished" + (f"; about {_hours(left)} left by the plan's estimate (every run "
                                                    "at its epoch cap; early stopping shortens it)" if done < total
                                                    else ""))
        waiting = [s for s in states if s.waiting]
        if waiting:
            print(f"{counted(len(waiting), 'group')} wait{'s' * (len(waiting) == 1)} for "
                  f"{'its' if len(waiting) == 1 else 'their'} selection: they run once it has finished")
        return 0

    def on_unit(st):
        print(f"== {st.unit.label}: {st.finished}/{st.total} finished, about {_hours(st.seconds_left)} left",
              flush=True)

    def on_cell(info):
        extra = f" ({info['reason']})" if info.get("reason") else ""
        print(f"[{info['unit']} {info['done']}/{info['total']}] {info['run']}: {info['status']}{extra}", flush=True)

    res = run_study(plan, a.out, only=a.only, backend=a.backend, max_concurrent=a.max_concurrent,
                    ray_address=a.ray_address, cpus_per_cell=a.cpus_per_cell, on_cell=on_cell, on_unit=on_unit)
    print(f"{len(res.ran)} run(s) finished now, {len(res.skipped)} finished earlier (skipped)")
    for label, why in res.waiting.items():
        print(f"{label} did not run: {why}")
    for rid, why in res.failed.items():
        print(f"{rid}: {why}", file=sys.stderr)
    print(f"study -> {a.out}; report: python -m addrop replicate {a.plan} --out {a.out} --report")
    if res.failed:
        return 1
    if res.stopped:
        print("stopped: run the same command again to continue", file=sys.stderr)
        return 130
    return 0


__all__ = ["add_parser", "run"]
