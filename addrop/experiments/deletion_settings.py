"""Settings of the deletion curves (experiments/faithfulness.py), in a module without torch so that the CLI checks
them before torch is imported."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import parse_layers
from ..errors import UserError

FAITH_METHODS = ("ga", "iga", "aa", "rd", "low")
FAITH_LABELS = {"ga": "GA (top-p by gradient)", "iga": "IGA (integrated gradients)", "aa": "AA (attention weights)",
                "rd": "RD (random positions)", "low": "low (bottom-p by GA)"}
DEFAULT_METHODS = ("ga", "aa", "rd", "low")
DEFAULT_PS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


@dataclass
class DeletionSettings:
    """Settings of the deletion curves (experiments/faithfulness.py), checked here so that the CLI refuses them
    before torch is imported."""

    n: int = 64
    methods: tuple = DEFAULT_METHODS
    ps: tuple = DEFAULT_PS
    q: float = 1.0
    layers: object = "all"
    rd_seeds: int = 3
    seed: int = 0
    batch_size: int = 16
    max_length: int = 128
    bootstrap: int = 1000
    ties: str = "strict"  # rows whose scores are all equal are not candidates (GA's top layer: rows that cannot
    #                      reach the output), so the dropped share counts only drops that can act
    count: str = "equal"  # every method drops exactly n - int(n(1-p)) keys of a row (low included: a fair race)
    chunk_rows: int = 256  # examples per stacked masked pass

    def __post_init__(self):
        self.methods = tuple(str(m).strip().lower() for m in self.methods if str(m).strip())
        bad = [m for m in self.methods if m not in FAITH_METHODS]
        if bad or not self.methods:
            raise UserError(f"unknown method {bad[0] if bad else '(none)'!r}: use some of {', '.join(FAITH_METHODS)}")
        self.ps = tuple(sorted({float(p) for p in self.ps}))
        if not self.ps or any(not (0 <= p < 1) or math.isnan(p) for p in self.ps):
            raise UserError(f"every p must be in [0, 1), got {self.ps}")
        parse_layers(self.layers)  # 'all', 'paper' or integers (negative from the top); the range needs the model
        if not 0 < self.q <= 1:
            raise UserError(f"q must be in (0, 1], got {self.q}")
        for name, lo, hi in (("n", 1, 5000), ("rd_seeds", 1, 50), ("batch_size", 1, 512), ("bootstrap", 0, 100_000)):
            v = getattr(self, name)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise UserError(f"{name.replace('_', ' ')} must be an integer from {lo} to {hi}, got {v!r}")


