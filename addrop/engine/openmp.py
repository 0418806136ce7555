"""How torch's OpenMP threads wait between parallel regions: set before torch loads (`python -m addrop` and the
app call `set_wait_policy` first; in a script of your own, call it before importing torch, or set the variables).

libgomp, which torch's CPU build uses, lets an idle thread spin for GOMP_SPINCOUNT rounds before it sleeps:
300,000 by default, which is fast on an idle machine and ruinous on a shared one (a minilm training step 14x
slower with one other busy process on a 2-core CPU); OMP_WAIT_POLICY=PASSIVE (sleep at once) is safe there but
costs a third on an idle machine. A bounded spin of 10,000 rounds is as fast as the default when the machine is
idle and within 1.5x of PASSIVE when it is shared (docs/performance.md, "OpenMP threads")."""
from __future__ import annotations

import os

SPIN_COUNT = "10000"


def set_wait_policy() -> bool:
    """Bound the spin (GOMP_SPINCOUNT) unless the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT already
    set). Has effect only before torch is first imported. Returns whether it set anything."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
