"""What a sweep is: a p x q grid over seeds on top of one TrainConfig (`SweepSpec`), its value lists
(`parse_values`) and the run ids of its cells."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

from ...config import TrainConfig
from ..seeds import parse_seeds
from ...engine.runs import safe_run_id
from ...errors import UserError

SWEEP_FILE = "sweep.json"
MAX_CELLS = 500  # runs one sweep may start without an explicit, larger `max_cells` (--max-cells)
SWEEP_VERSION = 1


def parse_values(spec, name: str = "p", unit: bool = True) -> list[float]:
    """'0.1:0.9:0.1' (start:stop:step, stop included) | '0.1,0.3,0.5' | '0.3' | a list -> sorted unique floats.

    Values are rounded to 6 decimals so that 0.1 + 0.2 reads as 0.3; with ``unit`` each must lie in (0, 1).
    """
    if isinstance(spec, (int, float)):
        vals = [float(spec)]
    elif isinstance(spec, str):
        s = spec.strip()
        if not s:
            raise UserError(f"the {name} values are empty: give start:stop:step such as 0.1:0.9:0.1, or a list such as "
                            "0.1,0.5")
        try:
            if ":" in s:
                parts = [float(x) for x in s.split(":")]
                if len(parts) != 3:
                    raise ValueError
                start, stop, step = parts
                if not all(math.isfinite(x) for x in parts):
                    raise UserError(f"{name} values {spec!r}: start, stop and step must be finite numbers")
                if not step > 0:
                    raise UserError(f"{name} values {spec!r}: the step must be > 0")
                if stop < start:
                    raise UserError(f"{name} values {spec!r}: stop is below start")
                n = int(math.floor((stop - start) / step + 1e-9)) + 1
                if n > 1000:
                    raise UserError(f"{name} values {spec!r} give {n} values; use at most 1000")
                vals = [start + i * step for i in range(n)]
            else:
                vals = [float(x) for x in s.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"{name} values {spec!r} are not start:stop:step (0.1:0.9:0.1) nor a comma list "
                            "(0.1,0.3,0.5)") from None
    else:
        try:
            vals = [float(x) for x in spec]
        except (TypeError, ValueError):
            raise UserError(f"{name} values must be numbers, got {spec!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise UserError(f"{name} values {spec!r}: every value must be a finite number")
    if len(vals) > 1000:
        raise UserError(f"the {name} values give {len(vals)} values; use at most 1000")
    vals = sorted({round(v, 6) for v in vals})
    if not vals:
        raise UserError(f"the {name} values give no value")
    if unit:
        bad = [v for v in vals if not 0.0 < v < 1.0]
        if bad:
            raise UserError(f"{name} values must lie strictly between 0 and 1; {bad[0]:g} does not")
    return vals


def _fmt(v: float) -> str:
    return f"{v:g}"


def cell_name(p: float, q: float, seed: int) -> str:
    """The run id of one AD-DROP cell: p0.3-q0.5-s0."""
    return safe_run_id(f"p{_fmt(p)}-q{_fmt(q)}-s{seed}")


def baseline_name(seed: int) -> str:
    return safe_run_id(f"vanilla-s{seed}")


@dataclass
class SweepSpec:
    """A p x q grid over seeds on top of one TrainConfig (`base`: task, model, sizes, optimisation, attribution
    method, layers, cross-tuning). `base.strategy`, `base.seed`, `p`, `q` and `name` are set per cell."""

    name: str
    base: TrainConfig
    ps: list[float]
    qs: list[float]
    seeds: list[int] = field(default_factory=lambda: [0])
    baseline: bool = True
    max_cells: int = MAX_CELLS  # a larger grid is refused unless this is raised (not saved in sweep.json)

    def __post_init__(self):
        self.name = safe_run_id(self.name)
        if isinstance(self.base, dict):
            self.base = TrainConfig.from_dict(self.base)
        self.ps = parse_values(self.ps, "p")
        self.qs = parse_values(self.qs, "q")
        self.seeds = parse_seeds(self.seeds)
        if isinstance(self.max_cells, bool) or not isinstance(self.max_cells, int) or self.max_cells < 1:
            raise UserError(f"--max-cells must be an integer >= 1, got {self.max_cells!r}")
        n = self.size
        if n > self.max_cells:
            raise UserError(f"this sweep has {n} runs ({len(self.ps)} p x {len(self.qs)} q x {len(self.seeds)} "
                            f"seed(s){' + baselines' if self.baseline else ''}), more than the {self.max_cells} "
                            f"allowed; use a coarser grid, or (command line) pass --max-cells {n} to run it anyway")

    @property
    def size(self) -> int:
        """How many runs the sweep has (cells and baselines), without listing them."""
        return len(self.seeds) * (len(self.ps) * len(self.qs) + (1 if self.baseline else 0))

    def cells(self) -> list[TrainConfig]:
        """Every run of the sweep, baselines first (so the heatmap has its reference early), then seed-major."""
        out = []
        if self.baseline:
            for s in self.seeds:
                out.append(replace(self.base, strategy="vanilla", seed=s, name=baseline_name(s),
                                   attribution=replace(self.base.attribution, seed=s)))
        for s in self.seeds:
            for p in self.ps:
                for q in self.qs:
                    out.append(replace(self.base, strategy="addrop", seed=s, name=cell_name(p, q, s),
                                       attribution=replace(self.base.attribution, p=p, q=q, seed=s)))
        return out

    def to_dict(self) -> dict:
        base = self.base.to_dict()
        base["name"] = None
        return {"version": SWEEP_VERSION, "name": self.name, "grid": {"p": self.ps, "q": self.qs,
                "seeds": self.seeds, "baseline": self.baseline}, "base": base}

    @classmethod
    def from_dict(cls, d: dict, max_cells: int | None = None) -> "SweepSpec":
        """A spec from sweep.json (a grid that was already accepted: no cell cap unless `max_cells`)."""
        g = d.get("grid") or {}
        return cls(name=d["name"], base=TrainConfig.from_dict(d.get("base") or {}), ps=g.get("p", []),
                   qs=g.get("q", []), seeds=g.get("seeds", [0]), baseline=bool(g.get("baseline", True)),
                   max_cells=max_cells or 10**9)


def default_name(base: TrainConfig) -> str:
    """A deterministic sweep name (so that running the same command again resumes): sweep-<task>-<model>."""
    model = os.path.basename(os.path.normpath(base.model)) or "model"
    raw = f"sweep-{base.task}-{model}"
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in raw).strip(".-")[:80]
    return safe_run_id(clean or "sweep")
