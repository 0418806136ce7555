"""Colours, names and fonts shared by every figure."""
from __future__ import annotations

STRATEGY_COLORS = {"none": "#636363", "drop-random": "#1f77b4", "drop-low": "#d62728", "drop-high": "#2ca02c",
                   "vanilla": "#636363", "addrop": "#9467bd"}
# each strategy its own marker, so that two curves on top of each other both show
STRATEGY_SYMBOLS = {"none": "circle", "drop-random": "square", "drop-low": "triangle-down", "drop-high": "triangle-up",
                    "vanilla": "circle", "addrop": "diamond"}
STRATEGY_NAMES = {"none": "none (no drop)", "drop-random": "random", "drop-low": "low attribution",
                  "drop-high": "high attribution", "vanilla": "vanilla", "addrop": "AD-DROP"}
REGION_COLOR = "#111111"
DETAIL_TOKENS = 64  # up to this many tokens, every cell gets a hover text shared by both maps
OVERLAY_TOKENS = 128  # up to this many, the region outline and the drop marks are drawn
GRID_CELLS = 40  # tiles of the layer x head grid are pooled to at most this many cells a side
DROP_COLOR = "#ff7f0e"
FONT = dict(family="Inter, 'Source Sans Pro', Arial, sans-serif")


def alpha(color: str | None, a: float) -> str:
    if not color or not color.startswith("#") or len(color) != 7:
        return f"rgba(100,100,100,{a})"
    r, g, b = int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    return f"rgba({r},{g},{b},{a})"
