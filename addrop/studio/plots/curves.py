"""Curves per epoch: loss curves (the prior experiment, curves.html), seed bands (the comparison), cost bars."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import FONT, STRATEGY_COLORS, STRATEGY_NAMES, STRATEGY_SYMBOLS, alpha


def loss_curves(frame: pd.DataFrame, label: str = "strategy", clean: bool = True, title: str | None = None) -> go.Figure:
    """Train and dev loss per epoch, one line per `label` value. `frame`: one row per (run, epoch) with columns
    epoch, train_loss, dev_loss, optional clean_train_loss (dashed) and the `label` column."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "dev loss"), shared_xaxes=True)
    if frame is None or frame.empty:
        return fig.update_layout(title=title)
    lines = list(frame.sort_values("epoch").groupby(label, sort=False))
    for i, (name, g) in enumerate(lines):
        color = STRATEGY_COLORS.get(str(name))
        # the first lines drawn widest and their markers largest: a later line on top of one leaves it in view
        width, size, symbol = 2 + (len(lines) - 1 - i), 7 + 2 * (len(lines) - 1 - i), STRATEGY_SYMBOLS.get(str(name))
        marker = dict(symbol=symbol, size=size, color=color)
        fig.add_trace(go.Scatter(x=g["epoch"], y=g["train_loss"], name=f"{name}", legendgroup=str(name),
                                 mode="lines+markers", line=dict(color=color, width=width), marker=marker),
                      row=1, col=1)
        if clean and "clean_train_loss" in g and g["clean_train_loss"].notna().any():
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["clean_train_loss"], name=f"{name} (clean)",
                                     legendgroup=str(name), mode="lines+markers", line=dict(color=color, dash="dot"),
                                     marker=dict(marker, symbol=f"{symbol or 'circle'}-open")),
                          row=1, col=1)
        fig.add_trace(go.Scatter(x=g["epoch"], y=g["dev_loss"], name=f"{name}", legendgroup=str(name),
                                 showlegend=False, mode="lines+markers", line=dict(color=color, width=width),
                                 marker=marker), row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="loss")
    return fig.update_layout(title=title, hovermode="x unified", height=380, margin=dict(t=60, b=40))


# ------------------------------------------------------------------------------------------ one head, two maps


def seed_curves(frame: pd.DataFrame, label: str = "strategy", panels=None, title: str | None = None) -> go.Figure:
    """One subplot per (column, title) in `panels` (default train and dev loss), one line per `label` value:
    the mean over runs (seeds) per epoch with a shaded min-max band when more than one run contributed."""
    panels = panels or [("train_loss", "training loss"), ("dev_loss", "dev loss")]
    panels = [(c, t) for c, t in panels if frame is not None and c in frame.columns]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[t for _, t in panels] or None)
    if frame is None or frame.empty or not panels:
        return fig.update_layout(title=title, height=360)
    for name, g in frame.groupby(label, sort=False):
        color = STRATEGY_COLORS.get(str(name), None)
        shown = STRATEGY_NAMES.get(str(name), str(name))
        for k, (col, _) in enumerate(panels, start=1):
            agg = g.groupby("epoch")[col].agg(["mean", "min", "max", "count"]).reset_index()
            if agg["count"].max() > 1:
                fig.add_trace(go.Scatter(x=list(agg["epoch"]) + list(agg["epoch"][::-1]),
                                         y=list(agg["max"]) + list(agg["min"][::-1]), fill="toself", mode="lines",
                                         fillcolor=alpha(color, 0.18), line=dict(width=0), hoverinfo="skip",
                                         showlegend=False, legendgroup=str(name)), row=1, col=k)
            n = int(agg["count"].max())
            fig.add_trace(go.Scatter(x=agg["epoch"], y=agg["mean"], mode="lines+markers", line=dict(color=color),
                                     name=shown + (f" (mean of {n})" if n > 1 else ""), legendgroup=str(name),
                                     showlegend=k == 1), row=1, col=k)
    fig.update_xaxes(title_text="epoch", dtick=1)
    return fig.update_layout(title=title, hovermode="x unified", height=380, font=FONT,
                             margin=dict(t=70 if title else 50, b=40))


def cost_bars(frame: pd.DataFrame, label: str = "strategy", title: str | None = None) -> go.Figure:
    """Mean seconds per epoch per `label` (and per epoch kind when an addrop_epoch column is there)."""
    fig = go.Figure()
    if frame is None or frame.empty or "seconds" not in frame:
        return fig
    rows = []
    for name, g in frame.groupby(label, sort=False):
        if "addrop_epoch" in g and g["addrop_epoch"].astype(bool).any() and not g["addrop_epoch"].astype(bool).all():
            for kind, gg in g.groupby(g["addrop_epoch"].astype(bool)):
                rows.append((f"{STRATEGY_NAMES.get(str(name), name)} ({'AD-DROP' if kind else 'plain'} epochs)",
                             gg["seconds"].mean(), STRATEGY_COLORS.get(str(name))))
        else:
            rows.append((STRATEGY_NAMES.get(str(name), str(name)), g["seconds"].mean(), STRATEGY_COLORS.get(str(name))))
    fig.add_trace(go.Bar(x=[r[1] for r in rows], y=[r[0] for r in rows], orientation="h",
                         marker_color=[r[2] or "#888" for r in rows], text=[f"{r[1]:.1f}s" for r in rows],
                         textposition="auto", hovertemplate="%{y}: %{x:.2f} s per epoch<extra></extra>"))
    fig.update_xaxes(title_text="seconds per epoch")
    return fig.update_layout(title=title, height=120 + 40 * len(rows), font=FONT, margin=dict(t=40, b=10, l=10, r=10))
