"""A replication plan (docs/replication-plan.json): its settings, checked without torch, and the groups of runs
it makes, each an ordinary sweep folder (experiments/sweeps) so that the sweeps' resume logic and backends run it.

    <out>/plan.json                       the plan the study runs (copied on the first run; another is refused)
    <out>/selection/<setting>/            p x q grid and a vanilla run, scored on training examples held out
    <out>/selection/<setting>-no-ct/      the same grid without cross-tuning (Figure 4), where the plan asks
    <out>/main/<setting>/                 seeds x (vanilla, AD-DROP at the chosen p and q): a one-cell sweep
    <out>/ablation/<setting>-<arm>/       seeds x one ablated AD-DROP (IGA, AA, RD, gold, no cross-tuning)
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

from ...config import AttributionConfig, TrainConfig, check_seed, is_csv_task, parse_layers
from ..seeds import parse_seeds
from ...errors import UserError

STAGES = ("selection", "main", "ablation")
PLAN_FILE = "plan.json"
NO_CT = "no-ct"
# what an ablation arm may change in AD-DROP, and the settings a task row may give (the rest: "train")
ARM_KEYS = ("method", "target", "cross_tuning", "steps", "layers")
TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - {"attribution", "strategy", "seed", "name", "preset",
                                                      "holdout", "split_seed", "model", "device", "data_dir"}


def _need(d, key, kind, where):
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise UserError(f"the plan's {where} needs {key!r} ({kind.__name__ if isinstance(kind, type) else 'a value'})")
    return v


def _train_kw(d: dict, where: str) -> dict:
    if not isinstance(d, dict):
        raise UserError(f"the plan's {where} must be an object of settings")
    bad = sorted(set(d) - TRAIN_KEYS)
    if bad:
        raise UserError(f"the plan's {where} has unknown setting {bad[0]!r}")
    return dict(d)


@dataclass
class Unit:
    """One group of runs of the plan: a sweep folder under <out>/<stage>/."""

    stage: str
    setting: str
    variant: str | None = None  # selection: None or "no-ct"; ablation: the arm

    @property
    def name(self) -> str:
        return self.setting if self.variant is None else f"{self.setting}-{self.variant}"

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.name}"


class ReplicationPlan:
    """The plan's JSON, checked: `units()`, `sweep(unit, p, q)` (the SweepSpec of a group) and the estimate."""

    def __init__(self, raw: dict, data_dir: str | None = None, device: str = "auto"):
        if not isinstance(raw, dict) or raw.get("version") != 1:
            raise UserError("not a replication plan: expected a JSON object with \"version\": 1")
        self.raw, self.data_dir, self.device = raw, data_dir, device
        self.name = _need(raw, "name", str, "top level")
        self.model = _need(raw, "model", str, "top level")
        self.train = _train_kw(raw.get("train") or {}, "train section")
        self.addrop = dict(raw.get("addrop") or {})
        self.split_seed = check_seed(raw.get("split_seed", 0), "the plan's split_seed")
        tasks = _need(raw, "tasks", dict, "top level")
        if not tasks:
            raise UserError("the plan names no task")
        self.tasks = {k: _train_kw(v, f"task {k!r}") for k, v in tasks.items()}
        for k, v in self.tasks.items():
            _need(v, "task", str, f"task {k!r}")
        self.selection = _need(raw, "selection", dict, "top level")
        self.holdout = _need(self.selection, "holdout", int, "selection")
        self.sel_seeds = parse_seeds(self.selection.get("seeds", [100]))
        self.no_ct = list(self.selection.get("without_cross_tuning") or [])
        self.main_seeds = parse_seeds(_need(raw, "main", dict, "top level").get("seeds", [0]))
        self.ablation = dict(raw.get("ablation") or {})
        self.arms = dict(self.ablation.get("arms") or {})
        for arm, change in self.arms.items():
            bad = sorted(set(change) - set(ARM_KEYS)) if isinstance(change, dict) else ["(not an object)"]
            if bad:
                raise UserError(f"ablation arm {arm!r} changes {bad[0]!r}; an arm may change {', '.join(ARM_KEYS)}")
        if self.arms and not isinstance(self.ablation.get("task"), str):
            raise UserError("the plan's ablation needs 'task' (one of its settings)")
        for key in self.no_ct + ([self.ablation["task"]] if self.arms else []):
            if key not in self.tasks:
                raise UserError(f"the plan names setting {key!r}, which is not one of its tasks")
        self.abl_seeds = parse_seeds(self.ablation.get("seeds", self.main_seeds)) if self.arms else []
        self.estimate = dict(raw.get("estimate") or {})
        self.interval = (raw.get("report") or {}).get("interval", 0.95)
        if isinstance(self.interval, bool) or not isinstance(self.interval, float) or not 0 < self.interval < 1:
            raise UserError(f"the plan's report interval must be a number between 0 and 1, got {self.interval!r}")
        for s in self.tasks:  # every setting's TrainConfig is built (and so checked) now, before any run
            self.config(s)
        for change in self.arms.values():
            self.config(self.ablation["task"], **change)

    @classmethod
    def load(cls, path: str | os.PathLike, **kw) -> "ReplicationPlan":
        p = Path(path)
        if not p.is_file():
            raise UserError(f"no plan file {str(path)!r}")
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read the plan {str(path)!r}: {e}") from None
        return cls(raw, **kw)

    # ------------------------------------------------------------------------------------------ configs
    def config(self, setting: str, **changes) -> TrainConfig:
        """The AD-DROP TrainConfig of one setting (seed, p, q and the run name are the sweep's)."""
        a = {**self.addrop, **{k: v for k, v in changes.items() if k in ARM_KEYS}}
        attr = AttributionConfig(method=a.get("method", "ga"), target=a.get("target", "pseudo"),
                                 layers=parse_layers(a.get("layers", "paper")), steps=int(a.get("steps", 20)))
        kw = {**self.train, **self.tasks[setting]}
        extra = {k: v for k, v in changes.items() if k not in ARM_KEYS}
        return TrainConfig(model=self.model, device=self.device, data_dir=self.data_dir, strategy="addrop",
                           attribution=attr, cross_tuning=bool(a.get("cross_tuning", True)),
                           split_seed=self.split_seed, **{**kw, **extra})

    def units(self) -> list[Unit]:
        """Every group, in the order they run: the selections, the main comparisons, the ablations."""
        out = [Unit("selection", s) for s in self.tasks]
        out += [Unit("selection", s, NO_CT) for s in self.no_ct]
        out += [Unit("main", s) for s in self.tasks]
        if self.arms:
            out += [Unit("ablation", self.ablation["task"], arm) for arm in self.arms]
        return out

    def select(self, only) -> list[Unit]:
        """The units that `--only STAGE[/SETTING] ...` names (all without it)."""
        units = self.units()
        if not only:
            return units
        chosen = []
        for tok in only:
            stage, _, setting = str(tok).partition("/")
            if stage not in STAGES:
                raise UserError(f"--only {tok!r}: the stage must be one of {', '.join(STAGES)}")
            if setting and setting not in self.tasks:
                raise UserError(f"--only {tok!r}: no setting {setting!r} in the plan (it has {', '.join(self.tasks)})")
            hit = [u for u in units if u.stage == stage and (not setting or u.setting == setting)]
            if not hit:
                raise UserError(f"--only {tok!r} names no group of runs in this plan")
            chosen += [u for u in hit if u not in chosen]
        return [u for u in units if u in chosen]

    def sweep(self, unit: Unit, p: float | None = None, q: float | None = None):
        """The SweepSpec of a unit; main and ablation need the chosen p and q."""
        from ..sweeps.spec import SweepSpec

        if unit.stage == "selection":
            base = self.config(unit.setting, holdout=self.holdout, cross_tuning=unit.variant != NO_CT)
            return SweepSpec(unit.name, base, self.selection.get("p", [0.3]), self.selection.get("q", [0.3]),
                             self.sel_seeds,
                             baseline=bool(self.selection.get("baseline", True)) and unit.variant is None)
        if unit.stage == "main":
            return SweepSpec(unit.name, self.config(unit.setting), [p], [q], self.main_seeds, baseline=True)
        return SweepSpec(unit.name, self.config(unit.setting, **self.arms[unit.variant]), [p], [q], self.abl_seeds,
                         baseline=False)

    # ------------------------------------------------------------------------------------------- estimate
    def seconds(self, cfg: TrainConfig) -> float:
        """A run's time at its epoch cap, by the plan's estimate (docs/replication.md, Budget)."""
        from ...engine.tasks import get_task

        e = self.estimate
        step, per_eval = float(e.get("step_s", 0.55)), float(e.get("eval_s_per_example", 0.012))
        f = 1.0 if is_csv_task(cfg.task) else float((e.get("length_factor") or {}).get(get_task(cfg.task).name, 1.0))
        n = cfg.train_size or (cfg.shots * max(2, get_task(cfg.task).num_labels) if cfg.shots else 1000)
        d = cfg.holdout or cfg.dev_size or 1000
        plain = math.ceil(n / cfg.batch_size) * step * f + d * per_eval * f
        total = cfg.epochs * plain + float(e.get("seconds_per_run_overhead", 6))
        m = cfg.masking()
        if m is None:
            return total
        ratios = (e.get("masked_step_ratio") or {}).get(m.method) or {}
        ratio = float(ratios.get("first" if m.layers == (0,) else "all", 1.3))
        masked = cfg.epochs // 2 if cfg.cross_tuning else cfg.epochs
        return total + masked * math.ceil(n / cfg.batch_size) * step * f * (ratio - 1)


def plan_for_study(out: str | os.PathLike, **kw) -> ReplicationPlan:
    """The plan a study folder runs (its plan.json)."""
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        raise UserError(f"{out} is not a replication study (no {PLAN_FILE}): run `python -m addrop replicate PLAN "
                        f"--out {out}` first")
    return ReplicationPlan.load(path, **kw)


def pin_plan(plan: ReplicationPlan, out: str | os.PathLike) -> None:
    """Copy the plan into the study folder, or check that the folder already runs this same plan."""
    from ...engine.runs import atomic_write_json

    root = Path(out)
    path = root / PLAN_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != plan.raw:
            raise UserError(f"{out} holds another plan ({PLAN_FILE} differs): a plan does not change after its "
                            "first result; use another --out, or record the change in docs/replication.md")
        return
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, plan.raw)


def sweep_root(out, unit: Unit) -> Path:
    return Path(out) / unit.stage
