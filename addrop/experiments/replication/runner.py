"""Running a replication plan resumably: each group of runs is a sweep (experiments/sweeps/local.py runs it, on
this machine or on Ray), so finished runs are skipped and a stopped study continues where it was. The main
comparison and the ablations of a setting read p and q from that setting's finished selection records.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...errors import UserError
from .plan import ReplicationPlan, Unit, pin_plan, sweep_root


@dataclass
class Choice:
    """p and q chosen for a setting by its selection grid, or why there is none yet."""

    p: float | None
    q: float | None
    reason: str | None = None
    score: float | None = None

    @property
    def ready(self) -> bool:
        return self.p is not None


def chosen(plan: ReplicationPlan, out, setting: str) -> Choice:
    """The selection's best cell (the held-out metric at the best epoch; ties: smaller p, then q), once every run
    of that selection has finished."""
    from ..sweeps.results import best_cell, progress, sweep_table

    unit = Unit("selection", setting)
    folder = sweep_root(out, unit) / unit.name
    how = f"run `--only {unit.label}` first"
    if not folder.is_dir():
        return Choice(None, None, f"{unit.label} has not run yet: {how}")
    prog = progress(folder)
    if prog["finished"] < prog["expected"]:
        return Choice(None, None, f"{unit.label} has not finished ({prog['finished']} of {prog['expected']} runs): "
                                  f"p and q are not chosen yet; {how}")
    best = best_cell(sweep_table(folder, which=plan.selection.get("score", "best")))
    if best is None:
        return Choice(None, None, f"{unit.label} has no finished AD-DROP cell")
    return Choice(float(best["p"]), float(best["q"]), score=float(best["mean"]))


@dataclass
class UnitState:
    unit: Unit
    total: int
    finished: int
    seconds_left: float
    waiting: str | None = None  # why it cannot run yet
    p: float | None = None
    q: float | None = None
    todo: list[str] = field(default_factory=list)  # the runs left (names in the group's folder)


def survey(plan: ReplicationPlan, out, units: list[Unit] | None = None) -> list[UnitState]:
    """Per group: its runs, how many have finished, the estimated seconds left, and whether it waits for its
    selection. What `--dry-run` prints."""
    from ...engine.runs import load_run
    from ..sweeps.local import plan as sweep_plan

    out_states = []
    grid = (plan.selection.get("p", [0.3])[0], plan.selection.get("q", [0.3])[0])
    for u in units or plan.units():
        c = chosen(plan, out, u.setting) if u.stage != "selection" else None
        p, q = (c.p, c.q) if c is not None and c.ready else grid
        spec = plan.sweep(u, p, q)
        folder = sweep_root(out, u) / spec.name
        try:
            todo, done = sweep_plan(spec, folder) if folder.is_dir() else (spec.cells(), [])
        except UserError:  # a run in progress in another process: its finished runs still count
            done = [c for c in spec.cells() if load_run(folder / c.name).status == "finished"]
            todo = [c for c in spec.cells() if c not in done]
        out_states.append(UnitState(u, len(todo) + len(done), len(done), sum(plan.seconds(t) for t in todo),
                                    c.reason if c is not None and not c.ready else None,
                                    c.p if c is not None else None, c.q if c is not None else None,
                                    [t.name for t in todo]))
    return out_states


@dataclass
class StudyResult:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    waiting: dict = field(default_factory=dict)  # unit label -> why it did not run
    stopped: bool = False


def check_order(plan: ReplicationPlan, out, units: list[Unit]) -> None:
    """A main or ablation group asked for without its selection, whose selection has not finished: one line."""
    labels = {u.label for u in units}
    for u in units:
        if u.stage != "selection" and f"selection/{u.setting}" not in labels:
            c = chosen(plan, out, u.setting)
            if not c.ready:
                raise UserError(f"{u.label} needs the p and q chosen by selection/{u.setting}, and {c.reason}")


def run_study(plan: ReplicationPlan, out: str | os.PathLike, only=None, backend: str = "local",
              max_concurrent: int = 1, ray_address: str | None = None, cpus_per_cell: float | None = None,
              on_cell: Callable[[dict], None] | None = None, on_unit: Callable[[UnitState], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> StudyResult:
    """Run every unfinished run of the chosen groups in order (selection, main, ablation) under `out`."""
    from ..sweeps.local import run_sweep

    units = plan.select(only)
    check_order(plan, out, units)
    pin_plan(plan, out)
    res = StudyResult()
    for u in units:
        if should_stop and should_stop():
            res.stopped = True
            break
        p = q = None
        if u.stage != "selection":
            c = chosen(plan, out, u.setting)
            if not c.ready:
                res.waiting[u.label] = c.reason
                continue
            p, q = c.p, c.q
        spec = plan.sweep(u, p, q)
        if on_unit:
            on_unit(survey(plan, out, [u])[0])

        def cell(info, _u=u):
            if on_cell:
                on_cell(dict(info, unit=_u.label))

        r = run_sweep(spec, sweep_root(out, u), backend=backend, max_concurrent=max_concurrent,
                      ray_address=ray_address, cpus_per_cell=cpus_per_cell, on_cell=cell, should_stop=should_stop)
        res.ran += [f"{u.label}/{x}" for x in r.ran]
        res.skipped += [f"{u.label}/{x}" for x in r.skipped]
        res.failed.update({f"{u.label}/{k}": v for k, v in r.failed.items()})
        if r.stopped:
            res.stopped = True
            break
    return res


def study_exists(out) -> bool:
    from .plan import PLAN_FILE

    return (Path(out) / PLAN_FILE).is_file()
