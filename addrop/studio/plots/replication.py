"""Figures of a replication study's report (addrop.experiments.replication.report.study_report): per-setting bars
with intervals, the paired differences, and the Figure 4-style scatter of grid cells with and without
cross-tuning."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from .style import STRATEGY_COLORS

ARM_COLORS = {"vanilla": STRATEGY_COLORS.get("vanilla", "#636efa"),
              "AD-DROP (GA)": STRATEGY_COLORS.get("addrop", "#ef553b")}


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and not math.isnan(v)


def arm_bars(rep: dict, ablation: bool = False):
    """Dev metric at the best epoch per setting and arm: the mean over seeds with its t interval (error bars)."""
    from scipy.stats import t

    fig = go.Figure()
    arms = [a for a in rep["arms"] if a["arm"].startswith("ablation") == ablation or
            (ablation and a["setting"] in {b["setting"] for b in rep["arms"] if b["arm"].startswith("ablation")})]
    for name in dict.fromkeys(a["arm"] for a in arms):
        rows = [a for a in arms if a["arm"] == name and _ok(a["best_mean"])]
        err = [float(t.ppf(0.5 + rep["level"] / 2, a["seeds"] - 1)) * a["best_sd"] / math.sqrt(a["seeds"])
               if a["seeds"] > 1 and _ok(a["best_sd"]) else 0.0 for a in rows]
        fig.add_bar(x=[f"{a['setting']} ({a['metric']})" for a in rows], y=[a["best_mean"] for a in rows], name=name,
                    error_y={"type": "data", "array": err, "visible": True}, marker_color=ARM_COLORS.get(name))
    pct = int(round(rep["level"] * 100))
    fig.update_layout(barmode="group", height=380, margin=dict(t=50, b=40, l=50, r=20),
                      title=("Ablations" if ablation else "Vanilla vs AD-DROP") + f": dev metric at the best epoch "
                            f"(mean over seeds, {pct}% interval)", yaxis_title="dev metric")
    return fig


def paired_bars(rep: dict):
    """The paired difference to vanilla per setting, arm and scoring, with its t interval (0: no difference)."""
    fig = go.Figure()
    for which, label in (("best", "best epoch"), ("last", "last epoch"), ("half", "half-dev")):
        rows = [d for d in rep["paired"] if d["which"] == which and d["seeds"] and _ok(d["mean"])]
        fig.add_bar(x=[f"{d['setting']}: {d['arm']}" for d in rows], y=[d["mean"] for d in rows], name=label,
                    error_y={"type": "data", "symmetric": False, "visible": True,
                             "array": [(d["high"] - d["mean"]) if d["high"] is not None else 0 for d in rows],
                             "arrayminus": [(d["mean"] - d["low"]) if d["low"] is not None else 0 for d in rows]})
    fig.add_hline(y=0, line_color="#888")
    pct = int(round(rep["level"] * 100))
    fig.update_layout(barmode="group", height=400, margin=dict(t=50, b=120, l=50, r=20), yaxis_title="difference",
                      title=f"Arm minus vanilla, paired by seed (mean, {pct}% interval)")
    return fig


def cross_tuning_scatter(rep: dict):
    """Figure 4: the held-out metric of every grid cell (p, q), with and without cross-tuning, per setting that
    has both; None when no setting has both."""
    both = {r["setting"] for r in rep["scatter"] if not r["cross_tuning"]} & \
        {r["setting"] for r in rep["scatter"] if r["cross_tuning"]}
    if not both:
        return None
    fig = go.Figure()
    for ct, name, color in ((True, "with cross-tuning", "#1f77b4"), (False, "without cross-tuning", "#ff7f0e")):
        rows = [r for r in rep["scatter"] if r["setting"] in both and r["cross_tuning"] == ct
                and _ok(r["held_out_best"])]
        fig.add_scatter(x=[f"{r['setting']} ({'on' if ct else 'off'})" for r in rows],
                        y=[r["held_out_best"] for r in rows], mode="markers", name=name,
                        marker=dict(size=10, color=color),
                        text=[f"p={r['p']} q={r['q']} seed {r['seed']}" for r in rows],
                        hovertemplate="%{text}: %{y:.4f}<extra></extra>")
    fig.update_layout(height=360, margin=dict(t=50, b=40, l=50, r=20), yaxis_title="held-out metric (best epoch)",
                      title="Grid cells with and without cross-tuning (as the paper's Figure 4)")
    return fig


def report_figures(rep: dict) -> list:
    """(title, figure) pairs of a report, in the order the page and report.html show them."""
    out = []
    if any(not a["arm"].startswith("ablation") for a in rep["arms"]):
        out.append(("main", arm_bars(rep)))
    if rep["paired"]:
        out.append(("paired", paired_bars(rep)))
    if any(a["arm"].startswith("ablation") for a in rep["arms"]):
        out.append(("ablation", arm_bars(rep, ablation=True)))
    sc = cross_tuning_scatter(rep)
    if sc is not None:
        out.append(("cross-tuning", sc))
    return out
