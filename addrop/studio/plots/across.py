"""Figures of a run's probes over epochs (studio/explore/across.py): predictions, and per-head heatmaps."""
from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from .style import FONT


def probe_predictions(frame, title: str | None = None) -> go.Figure:
    """`frame`: across.predictions(...): the gold class's probability per probe over epochs."""
    fig = px.line(frame, x="epoch", y="value", color="probe", markers=True,
                  hover_data=[c for c in ("gold", "predicted") if c in frame])
    fig.update_layout(title=title or "Each probe's probability of its gold class<br>(epoch 0 = before training)",
                      yaxis_title="P(gold class)", font=dict(size=14, **FONT), height=360,
                      legend=dict(orientation="h", y=-0.3), margin=dict(l=60, r=20, t=70, b=40))
    fig.update_xaxes(dtick=1)
    return fig


def head_heatmap(values: np.ndarray, title: str, zmin: float = 0.0, zmax: float = 1.0,
                 colorscale: str = "Viridis") -> go.Figure:
    """[L, H] values, one cell per head, with the value written in it."""
    L, H = values.shape
    text = [[("" if np.isnan(v) else f"{v:.2f}") for v in row] for row in values]
    fig = go.Figure(go.Heatmap(z=values, x=[f"h{h}" for h in range(H)], y=[f"layer {l}" for l in range(L)],
                               zmin=zmin, zmax=zmax, colorscale=colorscale, text=text, texttemplate="%{text}",
                               hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>"))
    lines = title.count("<br>") + 1  # titles broken into lines so that half a page's width holds them
    fig.update_layout(title=title, font=dict(size=14, **FONT), height=100 + 20 * lines + 34 * L,
                      margin=dict(l=70, r=20, t=30 + 20 * lines, b=30))
    fig.update_yaxes(autorange="reversed")
    return fig
