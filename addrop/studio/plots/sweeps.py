"""The paper's Figure 6: the p x q heatmap of a sweep table (addrop.experiments.sweeps.results.sweep_table)."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from ...errors import UserError, counted
from ...experiments.sweeps.results import sweep_verdict


def sweep_heatmap(table, title: str | None = None, scale: str | None = None):
    """The paper's Figure 6: rows are p, columns are q, each cell the mean dev metric of AD-DROP minus the
    baseline's (red better than the baseline, blue worse, white equal), annotated, with the best cell outlined.

    `scale`: points (the difference x 100, as GLUE scores are usually quoted; the default for metrics), raw
    (the difference itself; the default for a loss) or maxabs (divided by the largest |difference|, into [-1, 1], as the paper's MaxAbsScaler).
    Without a baseline the cells show the metric itself.
    """
    cells = table[table["kind"] == "cell"]
    ps = sorted({float(p) for p in cells["p"].dropna()})
    qs = sorted({float(q) for q in cells["q"].dropna()})
    metric = table.attrs.get("metric", "metric")
    higher = table.attrs.get("higher_is_better", True)
    base = table.attrs.get("baseline", math.nan)
    has_base = isinstance(base, float) and not math.isnan(base)
    col = "delta" if has_base else "mean"
    scale = scale or ("points" if higher else "raw")
    lookup = {(round(float(r.p), 6), round(float(r.q), 6)): r for r in cells.itertuples()}
    z, text, hover = [], [], []
    raw = [[getattr(lookup.get((round(p, 6), round(q, 6))), col, math.nan) for q in qs] for p in ps]
    finite = [abs(v) for row in raw for v in row if isinstance(v, float) and not math.isnan(v)]
    top = max(finite) if finite else 0.0
    factor = {"points": 100.0, "raw": 1.0, "maxabs": (1.0 / top if top > 0 else 1.0)}.get(scale)
    if factor is None:
        raise UserError(f"unknown heatmap scale {scale!r}: choose points, raw or maxabs")
    if not has_base and scale == "points":
        factor = 100.0
    shown = top * factor if has_base else max((abs(v) * factor for v in finite), default=0.0)
    # enough decimals for the largest value to show two significant digits (0.0009 -> 0.00090)
    decimals = 2 if shown >= 0.1 or shown == 0 else min(6, 1 - int(math.floor(math.log10(shown))))
    for i, p in enumerate(ps):
        zr, tr, hr = [], [], []
        for j, q in enumerate(qs):
            r = lookup.get((round(p, 6), round(q, 6)))
            v = raw[i][j]
            ok = isinstance(v, float) and not math.isnan(v)
            zr.append(v * factor if ok else None)
            if ok:
                tr.append(f"{v * factor:+.{decimals}f}" if has_base else f"{v * factor:.{decimals}f}")
            else:
                tr.append("running" if r is not None and r.running else "")
            n = int(r.n) if r is not None else 0
            mean = r.mean if r is not None else math.nan
            std = r.std if r is not None else math.nan
            hr.append(f"p={p:g} q={q:g}<br>{metric}: {mean:.4f} ± {std:.4f} ({counted(n, 'seed')})"
                      + (f"<br>vs baseline {base:.4f}: {v:+.4f}" if has_base and ok else ""))
        z.append(zr)
        text.append(tr)
        hover.append(hr)
    unit = {"points": " (points)", "raw": "", "maxabs": " (max-abs scaled)"}[scale]
    zlabel = (f"Δ {metric}{unit}" if has_base else f"{metric}{' x 100' if scale == 'points' else ''}")
    heat = go.Heatmap(z=z, x=[f"{q:g}" for q in qs], y=[f"{p:g}" for p in ps], text=text,
                      texttemplate="%{text}", hovertext=hover, hoverinfo="text",
                      colorscale=("RdBu_r" if higher else "RdBu") if has_base else "Viridis",
                      zmid=0 if has_base else None,
                      colorbar=dict(title=dict(text=zlabel)), xgap=2, ygap=2)
    fig = go.Figure(heat)
    b = sweep_verdict(table)["best"]  # None when no cell differs from the baseline beyond noise
    if b is not None and ps and qs:
        i, j = ps.index(round(b["p"], 6)), qs.index(round(b["q"], 6))
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="black", width=3))
    if title is None:
        name = table.attrs.get("name") or "sweep"
        which = table.attrs.get("which", "best")
        title = f"{name}: {which} dev {metric}" + (f", AD-DROP minus baseline ({base:.4f})" if has_base else "")
        if b is not None:
            title += f"; best p={b['p']:g} q={b['q']:g}"
        elif has_base and (table["kind"] == "cell").any() and table["n"].gt(0).any():
            title += "; no cell differs beyond noise"
    fig.update_layout(title=title, xaxis=dict(title="q (drop probability in the region)", type="category"),
                      yaxis=dict(title="p (candidate region size)", type="category", autorange="reversed"),
                      height=120 + 48 * max(len(ps), 3), margin=dict(t=70, b=50, l=70, r=30))
    return fig
