"""Checks of a list of runs before the first of them starts: everything that would otherwise fail after some
runs were trained (a layer the model does not have, two runs with one name, a runs folder that cannot be made).
The plans, the sweeps and the command line call `check_runs` first; `train` repeats the layer check itself."""
from __future__ import annotations

import os
from collections import Counter

from ..config import TrainConfig, resolve_layers
from ..errors import UserError
from .runs import check_folder


def check_runs(configs: list[TrainConfig], runs_dir: str | os.PathLike | None = None) -> None:
    """UserError when any run of `configs` would fail on its settings: the runs folder (a file, or through one),
    run names used twice, layers out of the model's range (read from its config, no weights loaded)."""
    from .models import model_config  # transformers: imported only once the arguments are known to be good

    if runs_dir is not None:
        check_folder(runs_dir, what="runs folder")
    names = Counter(c.name for c in configs if c.name)
    twice = [n for n, k in names.items() if k > 1]
    if twice:
        raise UserError(f"two runs would be named {twice[0]!r}; give each run its own seed or name")
    layers: dict[str, int] = {}
    for c in configs:
        if not c.uses_masks:
            continue
        if c.model not in layers:
            layers[c.model] = int(model_config(c.model).num_hidden_layers)
        resolve_layers(c.attribution.layers, layers[c.model])
