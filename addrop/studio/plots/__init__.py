"""Plotly figures from tensors/arrays and tables; never from a model.

- `loss_curves`: train/dev loss per epoch, one line per strategy (the prior experiment, the CLI's curves.html).
- `attention_attribution`: one head's attention map beside its attribution map, tokens on both axes, one hover
  text for both; the candidate discard region outlined and the sampled drops marked on the attribution map.
- `head_grid`: every layer x head as small multiples, each titled with its summary.
- `backend_diff`: the Captum minus native difference map of one head.
- `mask_effect`: the change of p(c) and of the loss under the AD-DROP and the random mask.
- `seed_curves`: curves per strategy with the mean and a min-max band when several seeds ran.
- `cost_bars`: seconds per epoch per strategy.
- `sweep_heatmap`: the paper's Figure 6 from a sweep table.
- `report_figures` (replication.py): a replication study's bars with intervals and its Figure 4 scatter.
- `deletion_figure`: the deletion curve, one line per attribution method with 95% bands.
- `probe_predictions`, `head_heatmap` (across.py): a run's probes over epochs: predictions; drift and the
  region kept per head.

Modules: curves.py, maps.py, sweeps.py, replication.py, faithfulness.py, across.py, style.py; every figure is importable from here.
"""
from __future__ import annotations

from .across import head_heatmap, probe_predictions
from .curves import cost_bars, loss_curves, seed_curves
from .faithfulness import deletion_figure
from .maps import attention_attribution, backend_diff, head_grid, mask_effect, score_title
from .style import STRATEGY_COLORS, STRATEGY_NAMES
from .replication import report_figures
from .sweeps import sweep_heatmap

__all__ = ["cost_bars", "loss_curves", "seed_curves", "attention_attribution", "backend_diff", "head_grid",
           "mask_effect", "score_title", "sweep_heatmap", "deletion_figure", "head_heatmap", "probe_predictions",
           "STRATEGY_COLORS", "STRATEGY_NAMES", "report_figures"]
