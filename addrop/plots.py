"""Plotly figures from tensors and tables; never from a model."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

STRATEGY_COLORS = {"none": "#636363", "drop-random": "#1f77b4", "drop-low": "#d62728", "drop-high": "#2ca02c",
                   "vanilla": "#636363", "addrop": "#9467bd"}


def loss_curves(frame: pd.DataFrame, label: str = "strategy", clean: bool = True, title: str | None = None) -> go.Figure:
    """Train and dev loss per epoch, one line per `label` value. `frame`: one row per (run, epoch) with columns
    epoch, train_loss, dev_loss, optional clean_train_loss (dashed) and the `label` column."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "dev loss"), shared_xaxes=True)
    if frame is None or frame.empty:
        return fig.update_layout(title=title)
    for i, (name, g) in enumerate(frame.sort_values("epoch").groupby(label, sort=False)):
        color = STRATEGY_COLORS.get(str(name))
        fig.add_trace(go.Scatter(x=g["epoch"], y=g["train_loss"], name=f"{name}", legendgroup=str(name),
                                 mode="lines+markers", line=dict(color=color)), row=1, col=1)
        if clean and "clean_train_loss" in g and g["clean_train_loss"].notna().any():
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["clean_train_loss"], name=f"{name} (clean)",
                                     legendgroup=str(name), mode="lines", line=dict(color=color, dash="dot")),
                          row=1, col=1)
        fig.add_trace(go.Scatter(x=g["epoch"], y=g["dev_loss"], name=f"{name}", legendgroup=str(name),
                                 showlegend=False, mode="lines+markers", line=dict(color=color)), row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="loss")
    return fig.update_layout(title=title, hovermode="x unified", height=380, margin=dict(t=60, b=40))
