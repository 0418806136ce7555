"""Checks of a list of runs before the first of them starts: everything that would otherwise fail after some
runs were trained (a task no data source knows, a layer the model does not have, two runs with one name, a runs
folder that cannot be made, an AD-DROP run too short to mask).
The plans, the sweeps and the command line call `check_runs` first; `train` repeats the layer check itself."""
from __future__ import annotations

import os
from collections import Counter

from ..config import TrainConfig, is_csv_task, resolve_layers
from ..errors import UserError, counted
from .runs import check_folder
from .tasks import get_task


def check_runs(configs: list[TrainConfig], runs_dir: str | os.PathLike | None = None) -> None:
    """UserError when any run of `configs` would fail on its settings: a task no data source knows (every task but
    demo and a CSV's own must be a named one), the runs folder (a file, or through one), run names used twice,
    layers out of the model's range (read from its config, no weights loaded), AD-DROP runs that would never reach
    an AD-DROP epoch (check_schedule)."""
    from .models import model_config  # transformers: imported only once the arguments are known to be good

    for task in sorted({c.task for c in configs if not is_csv_task(c.task)}):
        get_task(task)  # demo or a named task, else "unknown task 'sst2typo': choose one of ..."
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
    check_schedule(configs)


def check_schedule(configs: list[TrainConfig]) -> None:
    """UserError for a masking run that would never reach a masked epoch (core.algorithm.masks_in_epoch): with
    cross-tuning, AD-DROP's epochs 1, 3, ... are plain and only 2, 4, ... masked, so a one-epoch run would train
    exactly as vanilla does while its record says addrop (and a sweep's cells would all equal the baseline)."""
    from ..core.algorithm import masks_in_epoch

    for c in configs:
        if c.uses_masks and not any(masks_in_epoch(c, e) for e in range(1, c.epochs + 1)):
            raise UserError(f"AD-DROP with cross-tuning masks epochs 2, 4, ... only, and {counted(c.epochs, 'epoch')}"
                            " would never reach one: the run would train exactly as vanilla. "
                            "Train for 2 or more epochs, or turn cross-tuning off (the Cross-tuning toggle in the "
                            "app, --no-cross-tuning on the command line) to mask every epoch.")
