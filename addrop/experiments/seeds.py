"""Seeds of plans, sweeps and replications: the command line's `--seeds 0,1,2` (or 0:2) and the lists in plan
files, parsed once."""
from __future__ import annotations

from ..config import MAX_SEED
from ..errors import UserError

MAX_SEEDS = 10_000  # seeds one command may name


def parse_seeds(spec) -> list[int]:
    """'0,1,2' | '0:2' (inclusive) | 3 | [0, 1] -> sorted unique seeds >= 0 (at most MAX_SEEDS of them)."""
    if isinstance(spec, bool):
        raise UserError(f"seeds must be integers, got {spec!r}")
    if isinstance(spec, int):
        spec = [spec]
    if isinstance(spec, str):
        s = spec.strip()
        try:
            if ":" in s:
                a, b = (int(x) for x in s.split(":"))
                if b < a:
                    raise UserError(f"seeds {spec!r}: the end is below the start")
                if b - a + 1 > MAX_SEEDS:
                    raise UserError(f"seeds {spec!r} name {b - a + 1} seeds; use at most {MAX_SEEDS}")
                vals = list(range(a, b + 1))
            else:
                vals = [int(x) for x in s.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"seeds {spec!r}: comma-separated integers such as 0,1,2 (or a range such as 0:2)"
                            ) from None
    else:
        try:
            vals = [int(x) for x in spec]
        except (TypeError, ValueError):
            raise UserError(f"seeds must be integers, got {spec!r}") from None
    if len(vals) != len(set(vals)):
        raise UserError(f"the seeds must differ from each other, got {spec!r}")
    vals = sorted(vals)
    if not vals:
        raise UserError("the seeds name no seed")
    if len(vals) > MAX_SEEDS:
        raise UserError(f"{len(vals)} seeds named; use at most {MAX_SEEDS}")
    if vals[0] < 0 or vals[-1] > MAX_SEED:
        raise UserError(f"seeds must be >= 0 and at most {MAX_SEED} (64 bits), got {str(spec)[:80]!r}")
    return vals
