"""The small balanced sentiment set written for addrop-studio (400 train / 140 dev), shipped in assets/demo."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..tasks import TASKS, Split, TaskSpec
from .glue import read_tsv

DEMO_DIR = Path(__file__).resolve().parents[3] / "assets" / "demo"


def load_demo() -> tuple[TaskSpec, Split, Split]:
    """The small sentiment set in assets/demo (0 = negative, 1 = positive)."""
    spec = TASKS["demo"]
    paths = (DEMO_DIR / "train.tsv", DEMO_DIR / "dev.tsv")
    for p in paths:
        if not p.is_file():
            raise UserError(f"the demo data is missing: expected {p} (reinstall addrop-studio)")
    return spec, read_tsv(paths[0], spec), read_tsv(paths[1], spec)
