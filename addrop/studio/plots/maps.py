"""Attention and attribution maps: one head (`attention_attribution`), every head (`head_grid`), the backends'
difference (`backend_diff`) and what a mask does to the prediction (`mask_effect`)."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import DETAIL_TOKENS, DROP_COLOR, FONT, GRID_CELLS, OVERLAY_TOKENS, REGION_COLOR


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def region_outline(region: np.ndarray) -> tuple[list, list]:
    """Line segments (x, y with None breaks) along the border of the True cells of a [rows, cols] grid whose
    cell (i, j) is centred on (x=j, y=i)."""
    r = region.astype(bool)
    rows, cols = r.shape
    pad = np.zeros((rows + 2, cols + 2), dtype=bool)
    pad[1:-1, 1:-1] = r
    xs: list = []
    ys: list = []
    # vertical edges: between (i, j-1) and (i, j)
    v = pad[1:-1, 1:] != pad[1:-1, :-1]  # [rows, cols + 1]
    for i, j in zip(*np.nonzero(v)):
        x = j - 0.5
        xs += [x, x, None]
        ys += [i - 0.5, i + 0.5, None]
    h = pad[1:, 1:-1] != pad[:-1, 1:-1]  # [rows + 1, cols]
    for i, j in zip(*np.nonzero(h)):
        y = i - 0.5
        xs += [j - 0.5, j + 0.5, None]
        ys += [y, y, None]
    return xs, ys


def _pool(M: np.ndarray, k: int, signed: bool) -> np.ndarray:
    """[L, H, n, n] -> [L, H, ceil(n/k), ceil(n/k)]: per k x k block, the value of largest magnitude (signed) or
    the largest value."""
    L, H, n, _ = M.shape
    m = int(np.ceil(n / k))
    P = np.full((L, H, m * k, m * k), np.nan)
    P[:, :, :n, :n] = M
    P = P.reshape(L, H, m, k, m, k).transpose(0, 1, 2, 4, 3, 5).reshape(L, H, m, m, k * k)
    if signed:
        a = np.where(np.isnan(P), -1.0, np.abs(P))
        return np.take_along_axis(P, a.argmax(-1)[..., None], -1)[..., 0]
    return np.nanmax(P, -1)


def score_title(method: str = "ga", steps: int = 20, mode: str = "high") -> str:
    """The attribution map's subtitle: what B is for each method, and where the outlined region does not come from
    B (RD, or a random region: a coin per key, probability p), so that nobody looks for the darkest cells in it."""
    title = {"ga": "B = ∂F_c/∂A (GA, Eq. 5)",
             "iga": f"B: integrated gradients (IGA, Eq. 3, m = {steps})",
             "aa": "B = the attention weights themselves (AA)",
             "rd": "B = random scores (RD)"}.get(method, f"attribution B ({method})")
    if method == "rd" or mode == "random":
        return title + "<br>outlined: a random region, not drawn from B"
    return title + ("<br>outlined: the lowest B of each row" if mode == "low" else "")


UNSIGNED_METHODS = ("aa", "rd")  # scores never negative: attention weights, uniform random scores


def score_scale(scores, top: float, method: str | None = None) -> dict:
    """Heatmap colours for attribution scores up to `top` in size: red for positive and blue for negative around a
    white 0 for a signed method (GA, IGA); white to red from 0 for AA's weights and RD's random scores, so that
    those use the whole colour range instead of its red half. Without a method, the scores decide."""
    values = np.asarray(scores, dtype=np.float64)
    unsigned = (method in UNSIGNED_METHODS if method is not None
                else bool(np.isfinite(values).any() and np.nanmin(values) >= 0))
    if unsigned:
        return dict(colorscale="Reds", zmin=0.0, zmax=top, zmid=None)
    return dict(colorscale="RdBu_r", zmin=-top, zmax=top, zmid=0.0)


def _tick_font(n: int) -> int:
    return 12 if n <= 24 else 10 if n <= 40 else 8 if n <= 64 else 6


def _key_font(n: int) -> int:
    """The key labels along a map that has half the figure's width (the query labels have its whole height)."""
    return 12 if n <= 12 else 10 if n <= 20 else 9 if n <= 32 else _tick_font(n)


def attention_attribution(tokens, attention, scores, region=None, dropped=None, title: str | None = None,
                          key_mask=None, height: int | None = None, method: str = "ga", steps: int = 20,
                          mode: str = "high") -> go.Figure:
    """One head: attention (left) and attribution (right) as heatmaps with tokens on both axes (rows = query,
    columns = key). Both maps carry the same hover text (tokens, attention, attribution, region, dropped). On
    the attribution map the candidate discard region is outlined and the dropped positions are marked with x.

    attention, scores, region, dropped: [T, T]; key_mask: [T] (pads are shown blank). method, steps, mode: what the
    scores are and how the region was drawn (the right map's subtitle, `score_title`).
    """
    A, B = _np(attention).astype(np.float32), _np(scores).astype(np.float32)
    T = A.shape[-1]
    toks = [str(t) for t in tokens][:T]
    km = np.ones(T, dtype=bool) if key_mask is None else _np(key_mask).astype(bool).reshape(-1)[:T]
    real = np.outer(km, km)
    A = np.where(real, A, np.nan).astype(np.float32)
    B = np.where(real, B, np.nan).astype(np.float32)
    reg = np.zeros((T, T), bool) if region is None else _np(region).astype(bool) & real
    drp = np.zeros((T, T), bool) if dropped is None else _np(dropped).astype(bool) & real
    subtitle = score_title(method, steps, mode)
    above = 1.09 + (0.06 if "<br>" in subtitle else 0.0)  # the legend, above a subtitle of one or two lines
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.15,  # room for A's colour bar and its tick labels
                        subplot_titles=("attention A (Eq. 1)", subtitle))
    fig.update_annotations(font=dict(size=12))  # the two subtitles
    if T <= DETAIL_TOKENS:  # one hover text, shared by both maps
        esc = [html.escape(t) for t in toks]
        text = [[f"query {i} <b>{esc[i]}</b> → key {j} <b>{esc[j]}</b><br>attention {A[i, j]:.4f}"
                 f"<br>attribution {B[i, j]:.3g}"
                 + ("<br>in the candidate region" if reg[i, j] else "")
                 + ("<br><b>dropped</b>" if drp[i, j] else "")
                 if real[i, j] else "" for j in range(T)] for i in range(T)]
        hover = dict(text=text, hovertemplate="%{text}<extra></extra>")
        hover_a = hover_b = hover
    else:  # long inputs: per-cell strings would make the figure huge
        hover_a = dict(hovertemplate="query %{y} → key %{x}<br>attention %{z:.4f}<extra></extra>")
        hover_b = dict(hovertemplate="query %{y} → key %{x}<br>attribution %{z:.3g}<extra></extra>")
    amax = float(np.nanmax(A)) if np.isfinite(A).any() else 1.0
    fig.add_trace(go.Heatmap(z=A, **hover_a, colorscale="Blues", zmin=0, zmax=amax or 1.0,
                             colorbar=dict(title="A", x=0.44, xanchor="left", len=0.9, thickness=10)),
                  row=1, col=1)
    bmax = float(np.nanmax(np.abs(B))) if np.isfinite(B).any() else 1.0
    scale = score_scale(B, bmax or 1.0, method)
    fig.add_trace(go.Heatmap(z=B, **hover_b, **scale, colorbar=dict(title="B", x=1.0, xanchor="left", len=0.9,
                                                                     thickness=12)), row=1, col=2)
    if T <= OVERLAY_TOKENS:
        if reg.any():
            xs, ys = region_outline(reg)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=REGION_COLOR, width=2 if T <= 48 else 1),
                                     name="candidate region (p)", hoverinfo="skip"), row=1, col=2)
        if drp.any():
            ii, jj = np.nonzero(drp)
            fig.add_trace(go.Scatter(x=jj, y=ii, mode="markers", name="dropped (q)", hoverinfo="skip",
                                     marker=dict(symbol="x-thin", size=max(4, min(12, 260 // max(T, 1))),
                                                 line=dict(width=2 if T <= 48 else 1, color=DROP_COLOR),
                                                 color=DROP_COLOR)),
                          row=1, col=2)
    elif reg.any():
        fig.add_annotation(text=f"{T} tokens: the region outline and drop marks are left out (see the mask tiles)",
                           xref="paper", yref="paper", x=1.0, y=above, showarrow=False, xanchor="right",
                           font=dict(size=11, color="#666"))
    step = max(1, int(np.ceil(T / 80)))  # at most ~80 token labels per axis
    tick = dict(tickmode="array", tickvals=list(range(0, T, step)), ticktext=toks[::step],
                tickfont=dict(size=_tick_font(T if step == 1 else 80)), showgrid=False, zeroline=False)
    key_tick = dict(tick, tickfont=dict(size=_key_font(T if step == 1 else 80)))  # the keys share half the width
    fig.update_xaxes(**key_tick, tickangle=-60 if T <= 12 else -90, range=[-0.5, T - 0.5], constrain="domain")
    fig.update_yaxes(**tick, autorange=False, range=[T - 0.5, -0.5], scaleanchor=None)
    fig.update_xaxes(matches="x", row=1, col=2)
    fig.update_yaxes(matches="y", showticklabels=False, row=1, col=2)  # the same query tokens as on the left
    fig.update_xaxes(title_text="key", row=1, col=1)
    fig.update_xaxes(title_text="key", row=1, col=2)
    fig.update_yaxes(title_text="query", row=1, col=1)
    fig.update_layout(title=title, height=height or int(min(780, max(440, 280 + 15 * T))),
                      margin=dict(t=(80 if title else 60) + (20 if above > 1.09 else 0), b=10, l=10, r=50),
                      font=FONT, legend=dict(orientation="h", yanchor="bottom", y=above, xanchor="right", x=1.0,
                                  font=dict(size=11)), title_font=dict(size=13), plot_bgcolor="white")
    return fig


# ----------------------------------------------------------------------------------------- small multiples

def head_grid(maps, key_mask=None, summary: pd.DataFrame | None = None, layers=None, selected=None,
              tokens=None, value: str = "attribution", title: str | None = None,
              method: str | None = None) -> go.Figure:
    """Every layer x head as small multiples in one heatmap trace (tiles separated by gaps).

    maps: [L, H, T, T]. For value "attribution" each tile is scaled by its own largest |value| (so every head
    uses the whole colour range); "attention" uses 0..tile max; "mask" expects 0 (kept), 1 (candidate), 2
    (dropped). `summary` (layer, head, spearman, dropped_share) titles the tiles; `selected` = (layer, head)
    is framed; `method` (attribution) picks the colours (score_scale).
    """
    M = _np(maps).astype(float)
    L, H, T, _ = M.shape
    layers = list(layers) if layers is not None else list(range(L))
    km = np.ones(T, dtype=bool) if key_mask is None else _np(key_mask).astype(bool).reshape(-1)[:T]
    idx = np.nonzero(km)[0]
    n = len(idx)
    M = M[:, :, idx][:, :, :, idx]  # real tokens only
    toks = [str(tokens[i]) for i in idx] if tokens is not None else [str(i) for i in idx]
    esc = [html.escape(t) for t in toks]
    k = int(np.ceil(n / GRID_CELLS)) if n > GRID_CELLS else 1
    if k > 1:  # long inputs: each cell of a tile stands for k x k positions (the largest |value| among them)
        M = _pool(M, k, signed=value == "attribution")
        esc = [f"tokens {a}–{min(a + k, n) - 1}" for a in range(0, n, k)]
        n = M.shape[-1]
    gap = max(2, int(round(n * 0.3)))  # room between tiles (and for the tile titles)
    size = n + gap
    big = np.full((L * size, H * size), np.nan, dtype=np.float32)
    raw = np.full(big.shape, np.nan, dtype=np.float32)  # the unscaled values, for the hover
    for li in range(L):
        for h in range(H):
            tile = M[li, h]
            if value in ("attribution", "attention"):
                s = np.nanmax(np.abs(tile)) if np.isfinite(tile).any() else 0.0
                tile = tile / s if s > 0 else tile
            r0, c0 = li * size, h * size
            big[r0:r0 + n, c0:c0 + n] = tile
            raw[r0:r0 + n, c0:c0 + n] = M[li, h]
    # the hover names a cell by its row and column labels (category axes: one label per row and column, not one
    # string per cell, which made the grid of a 20-token sentence a 2 MB message); the gaps get labels of their own
    # (categories are unique) but are never hovered
    def name(i: int, kind: str) -> str:  # pooled cells already say which tokens they stand for
        return esc[i] if k > 1 else f"{esc[i]} ({kind} {i})"

    rows = [f"layer {layers[r // size]} · {name(r % size, 'query')}" if r % size < n else f"gap {r}"
            for r in range(L * size)]
    cols = [f"head {c // size} · {name(c % size, 'key')}" if c % size < n else f"gap {c}" for c in range(H * size)]
    if value == "attribution":
        sc = score_scale(M, 1.0, method)  # tiles scaled to their own max |B|: -1..1, or 0..1 (AA, RD)
        cs, zmin, zmax, zmid = sc["colorscale"], sc["zmin"], sc["zmax"], sc["zmid"]
        cbar = dict(title=dict(text="B / max|B|", side="right"), thickness=10, len=0.5)
    elif value == "attention":
        cs, zmin, zmax, zmid = "Blues", 0, 1, None
        cbar = dict(title=dict(text="A / max A", side="right"), thickness=10, len=0.5)
    else:
        cs = [[0, "#f0f0f0"], [0.33, "#f0f0f0"], [0.34, "#9ecae1"], [0.66, "#9ecae1"], [0.67, DROP_COLOR],
              [1, DROP_COLOR]]
        zmin, zmax, zmid = 0, 2, None
        cbar = dict(title="", tickvals=[0.33, 1, 1.67], ticktext=["kept", "candidate", "dropped"], thickness=10,
                    len=0.5)
    fig = go.Figure(go.Heatmap(z=big, x=cols, y=rows, customdata=raw, colorscale=cs, zmin=zmin, zmax=zmax,
                               zmid=zmid, colorbar=cbar, hoverongaps=False,
                               hovertemplate=f"%{{y}}<br>%{{x}}<br>{value} %{{customdata:.3g}}<extra></extra>"))
    annotations = []
    summ = {}
    if summary is not None and not summary.empty:
        for _, r in summary.iterrows():
            summ[(int(r["layer"]), int(r["head"]))] = r
    small = 11 if H <= 8 else 10  # readable on a projector (the chart is scaled to the page's width)
    for li in range(L):
        annotations.append(dict(x=-0.6, y=li * size + (n - 1) / 2, text=f"layer {layers[li]}", showarrow=False,
                                xanchor="right", font=dict(size=12)))
        for h in range(H):
            r = summ.get((layers[li], h))
            if r is not None:
                rho = r.get("spearman")
                rho_s = "ρ n/a" if rho is None or not np.isfinite(rho) else f"ρ {rho:+.2f}"
                share = r.get("dropped_share")
                txt = rho_s + (f" · {share:.0%}" if share is not None and np.isfinite(share) else "")
                annotations.append(dict(x=h * size + (n - 1) / 2, y=li * size - 0.7, text=txt, showarrow=False,
                                        yanchor="bottom", font=dict(size=small, color="#333")))
    for h in range(H):
        annotations.append(dict(x=h * size + (n - 1) / 2, y=(L - 1) * size + n - 0.3, text=f"head {h}",
                                showarrow=False, yanchor="top", font=dict(size=12)))
    shapes = []
    if selected is not None and selected[0] in layers:
        li, h = layers.index(selected[0]), selected[1]
        shapes.append(dict(type="rect", x0=h * size - 0.7, x1=h * size + n - 0.3, y0=li * size - 0.7,
                           y1=li * size + n - 0.3, line=dict(color="#000", width=2)))
    x0, x1 = -size * 0.9, H * size - gap + 0.5
    y0, y1 = -gap - 0.5, (L - 1) * size + n + gap * 0.9
    # category axes place category k at k, so the tiles, titles and frame keep their numeric positions
    fig.update_xaxes(visible=False, type="category", range=[x0, x1], constrain="domain")
    fig.update_yaxes(visible=False, type="category", range=[y1, y0], scaleanchor="x", scaleratio=1,
                     constrain="domain")
    plot_w = 960  # the chart's usual width in the wide layout, less the colour bar
    height = int(plot_w * (y1 - y0) / (x1 - x0)) + (50 if title else 10) + 10
    fig.update_layout(annotations=annotations, shapes=shapes, title=title, font=FONT,
                      height=int(min(1800, max(220, height))),
                      margin=dict(t=50 if title else 10, b=10, l=10, r=10), plot_bgcolor="white")
    return fig


# ----------------------------------------------------------------------------------------------- backends

def backend_diff(tokens, native, captum, key_mask=None, title: str | None = None) -> go.Figure:
    """Captum minus native attribution of one head, [T, T], on a symmetric colour scale."""
    a, b = _np(native).astype(float), _np(captum).astype(float)
    T = a.shape[-1]
    km = np.ones(T, dtype=bool) if key_mask is None else _np(key_mask).astype(bool).reshape(-1)[:T]
    real = np.outer(km, km)
    d = np.where(real, b - a, np.nan)
    toks = [str(t) for t in tokens][:T]
    m = float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else 0.0
    m = m if m > 0 else 1e-12
    esc = [html.escape(t) for t in toks]
    text = [[f"{esc[i]} → {esc[j]}<br>native {a[i, j]:.4g}<br>captum {b[i, j]:.4g}<br>diff {b[i, j] - a[i, j]:.3g}"
             for j in range(T)] for i in range(T)]
    fig = go.Figure(go.Heatmap(z=d, text=text, hovertemplate="%{text}<extra></extra>", colorscale="PuOr",
                               zmid=0, zmin=-m, zmax=m, colorbar=dict(title="Δ", thickness=12, tickformat=".1e")))
    tick = dict(tickmode="array", tickvals=list(range(T)), ticktext=toks, tickfont=dict(size=_tick_font(T)),
                showgrid=False)
    fig.update_xaxes(**tick, tickangle=-60, title_text="key")
    fig.update_yaxes(**tick, autorange="reversed", title_text="query")
    return fig.update_layout(title=title, height=int(min(620, max(360, 200 + 12 * T))), font=FONT,
                             margin=dict(t=50 if title else 20, b=10, l=10, r=10), plot_bgcolor="white")


# -------------------------------------------------------------------------------------------- mask effect

def mask_effect(frame: pd.DataFrame, title: str | None = None, target_name: str = "c") -> go.Figure:
    """What each mask changed against no mask: grouped bars of the change in the probability of the attributed
    class (column p_c) and in the loss, for the AD-DROP and the random mask, labelled with 3 decimals (the bars
    of the probabilities themselves all read "0.50" when the masks move them little). A regression frame
    (column score) gets the change of the score and of the squared error."""
    fig = go.Figure()
    if frame is None or frame.empty or "no mask" not in set(frame["condition"]):
        return fig
    base = frame[frame["condition"] == "no mask"].iloc[0]
    masks = frame[frame["condition"] != "no mask"]
    conds = list(masks["condition"])
    first = "p_c" if "p_c" in frame.columns else "score"
    names = {"p_c": f"p({target_name})", "score": "score", "loss": "loss"}
    palette = {"p_c": "#4c78a8", "score": "#4c78a8", "loss": "#e45756"}
    for col in (first, "loss"):
        if col not in frame.columns:
            continue
        d = [float(v) - float(base[col]) for v in masks[col]]
        if any(v != v for v in d):  # no loss without a reference
            continue
        label = names[col]
        fig.add_trace(go.Bar(x=conds, y=d, name=f"Δ {label}", marker_color=palette[col],
                             text=[f"{v:+.3f}" for v in d], textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}<br>Δ " + html.escape(label) + " = %{y:+.4f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#333", width=1))
    fig.update_yaxes(title_text="change against no mask", zeroline=True)
    return fig.update_layout(barmode="group", title=title, height=320, font=FONT,
                             margin=dict(t=50 if title else 30, b=10, l=10, r=10),
                             legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))


# ----------------------------------------------------------------------------------------------- several seeds
