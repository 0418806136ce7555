"""The deletion curve (experiments/faithfulness.py): one line per method, the measure against p, 95% bands."""
from __future__ import annotations

import plotly.graph_objects as go

from .style import FONT, alpha

METHOD_COLORS = {"ga": "#9467bd", "iga": "#8c564b", "aa": "#1f77b4", "rd": "#7f7f7f", "low": "#d62728"}
METHOD_NAMES = {"ga": "GA", "iga": "IGA", "aa": "AA (attention)", "rd": "RD (random)", "low": "low (bottom-p GA)"}
AXIS = {"prob_change": "change of P(predicted class)", "logit_change": "change of the predicted class's logit",
        "flip_rate": "share of predictions flipped"}


def deletion_figure(table, measure: str = "prob_change", title: str | None = None) -> go.Figure:
    """`table`: deletion_curves(...).table (columns method, p, <measure>, <measure>_lo, <measure>_hi)."""
    fig = go.Figure()
    for method, rows in table.groupby("method", sort=False):
        rows = rows.sort_values("p")
        color = METHOD_COLORS.get(method, "#333333")
        name = METHOD_NAMES.get(method, method)
        x, lo, hi = rows.p.tolist(), rows[f"{measure}_lo"].tolist(), rows[f"{measure}_hi"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], mode="lines", fill="toself",  # the 95% band
                                 fillcolor=alpha(color, 0.15),
                                 line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=method))
        fig.add_trace(go.Scatter(x=x, y=rows[measure], mode="lines+markers", name=name, legendgroup=method,
                                 line=dict(color=color, width=2.5),
                                 hovertemplate=f"{name}<br>p = %{{x}}<br>{AXIS[measure]}: %{{y:.3f}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999999", width=1, dash="dot"))
    fig.update_layout(title=title or f"Deletion curve: {AXIS[measure]} when p of each row's keys are dropped",
                      xaxis_title="p (share of each row's keys dropped)", yaxis_title=AXIS[measure],
                      font=dict(size=15, **FONT), height=460, margin=dict(l=70, r=20, t=60, b=60),
                      legend=dict(orientation="h", y=-0.2))
    return fig
