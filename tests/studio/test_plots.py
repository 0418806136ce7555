"""addrop/studio/plots/: figures from arrays and tables (no model involved)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from addrop.studio import plots
from addrop.studio.plots.maps import region_outline


def _frame(seeds=(0,), strategies=("none", "drop-high"), epochs=3, clean=True):
    rows = []
    for s in seeds:
        for k, strat in enumerate(strategies):
            for e in range(1, epochs + 1):
                r = {"run": f"{strat}-s{s}", "strategy": strat, "seed": s, "epoch": e,
                     "train_loss": 1.0 / e + 0.1 * k + 0.01 * s, "dev_loss": 0.8 + 0.05 * e - 0.1 * k,
                     "dev_accuracy": 0.5 + 0.1 * e, "seconds": 1.0 + k,
                     "addrop_epoch": strat not in ("none", "vanilla") and e % 2 == 0}
                if clean:
                    r["clean_train_loss"] = r["train_loss"] + 0.05
                rows.append(r)
    return pd.DataFrame(rows)


def test_loss_curves():
    fig = plots.loss_curves(_frame(), label="strategy", title="t")
    names = [t.name for t in fig.data]
    assert "none" in names and "drop-high (clean)" in names
    assert len(fig.data) == 2 * 3  # train, clean, dev per strategy
    # two strategies' curves on top of each other both show: their own markers, the one drawn first wider
    train = {t.name: t for t in fig.data if t.xaxis == "x" and not t.name.endswith("(clean)")}
    assert len({t.marker.symbol for t in train.values()}) == len(train) == 2
    first, second = list(train.values())
    assert first.line.width > second.line.width and first.marker.size > second.marker.size
    assert len(plots.loss_curves(_frame(), clean=False).data) == 4
    assert len(plots.loss_curves(pd.DataFrame()).data) == 0


def test_outline_of_one_cell_and_a_block():
    xs, ys = region_outline(np.array([[False, False], [False, True]]))
    assert xs.count(None) == 4  # four edges around one cell
    pts = {(x, y) for x, y in zip(xs, ys) if x is not None}
    assert pts == {(0.5, 0.5), (0.5, 1.5), (1.5, 0.5), (1.5, 1.5)}
    xs, _ = region_outline(np.ones((3, 3), bool))
    assert xs.count(None) == 12  # the perimeter of a 3 x 3 block: 12 unit edges, no inner ones


def test_attention_attribution_figure():
    T = 5
    rng = np.random.default_rng(0)
    att = rng.random((T, T))
    att /= att.sum(-1, keepdims=True)
    scores = rng.normal(size=(T, T))
    region = scores > 0.5
    dropped = region & (rng.random((T, T)) < 0.5)
    key_mask = np.array([1, 1, 1, 1, 0], bool)
    toks = ["[CLS]", "good", "good", "[SEP]", "[PAD]"]  # repeated tokens must not merge
    fig = plots.attention_attribution(toks, att, scores, region, dropped, key_mask=key_mask, title="x")
    heat = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heat) == 2
    assert heat[0].text == heat[1].text  # one hover text for both maps
    z = np.array(heat[1].z, dtype=float)
    assert np.isnan(z[4]).all() and np.isnan(z[:, 4]).all()  # pads blank
    assert list(fig.layout.xaxis.ticktext) == toks and fig.layout.xaxis2.matches == "x"
    traces = {t.name for t in fig.data if not isinstance(t, go.Heatmap)}
    if (region & np.outer(key_mask, key_mask)).any():
        assert "candidate region (p)" in traces
    if (dropped & np.outer(key_mask, key_mask)).any():
        marks = next(t for t in fig.data if t.name == "dropped (q)")
        assert len(marks.x) == int((dropped & np.outer(key_mask, key_mask)).sum())


def test_head_grid_tiles_and_summary():
    L, H, T = 2, 3, 4
    maps = np.random.default_rng(1).normal(size=(L, H, T, T))
    summary = pd.DataFrame([{"layer": l, "head": h, "spearman": 0.5, "dropped_share": 0.1}
                            for l in range(L) for h in range(H)])
    fig = plots.head_grid(maps, key_mask=np.array([1, 1, 1, 0], bool), summary=summary, selected=(1, 2))
    assert len(fig.data) == 1
    z = np.array(fig.data[0].z, dtype=float)
    finite = z[np.isfinite(z)]
    assert finite.size == L * H * 3 * 3  # pads dropped from every tile
    assert np.abs(finite).max() == pytest.approx(1.0)  # each tile scaled by its own max |value|
    texts = [a.text for a in fig.layout.annotations]
    assert sum("ρ +0.50" in t for t in texts) == L * H and "layer 1" in texts and "head 2" in texts
    assert len(fig.layout.shapes) == 1
    # the hover: unscaled values in customdata, cells named by unique row and column labels (no per-cell strings)
    tr = fig.data[0]
    assert tr.text is None and len(set(tr.y)) == len(tr.y) == z.shape[0] and len(set(tr.x)) == len(tr.x) == z.shape[1]
    raw = np.array(tr.customdata, dtype=float)
    size = z.shape[0] // L
    np.testing.assert_allclose(raw[size:size + 3, 2 * size:2 * size + 3], maps[1, 2, :3, :3], rtol=1e-6)
    assert tr.y[size + 2].startswith("layer 1 · 2 (query 2)") and tr.x[2 * size].startswith("head 2 · 0 (key 0)")
    mask = plots.head_grid(np.zeros((L, H, T, T)), value="mask")
    assert mask.data[0].zmax == 2


def test_backend_diff_and_mask_effect():
    a = np.ones((3, 3))
    fig = plots.backend_diff(["a", "b", "c"], a, a + 1e-7)
    assert np.nanmax(np.array(fig.data[0].z, dtype=float)) == pytest.approx(1e-7)
    frame = pd.DataFrame([{"condition": c, "p_c": pc, "loss": lo} for c, pc, lo in
                          (("no mask", 0.501, 0.69), ("AD-DROP mask", 0.4987, 0.6957), ("random mask", 0.503, 0.687))])
    fig = plots.mask_effect(frame, target_name="positive")
    assert [t.name for t in fig.data] == ["Δ p(positive)", "Δ loss"] and list(fig.data[0].x) == ["AD-DROP mask",
                                                                                                  "random mask"]
    np.testing.assert_allclose(fig.data[0].y, [-0.0023, 0.002], atol=1e-9)  # the change, not the level
    assert list(fig.data[0].text) == ["-0.002", "+0.002"] and list(fig.data[1].text) == ["+0.006", "-0.003"]
    reg = plots.mask_effect(pd.DataFrame([{"condition": c, "score": v, "loss": float("nan")}
                                          for c, v in (("no mask", 2.0), ("AD-DROP mask", 2.5), ("random mask", 1.0))]))
    assert len(reg.data) == 1 and list(reg.data[0].y) == [0.5, -1.0]


def test_seed_curves_band_and_cost():
    one = plots.seed_curves(_frame(seeds=(0,), strategies=("vanilla", "addrop")))
    assert all(t.fill is None for t in one.data)  # one seed: no band
    two = plots.seed_curves(_frame(seeds=(0, 1), strategies=("vanilla", "addrop")),
                            panels=[("train_loss", "train"), ("dev_loss", "dev"), ("dev_accuracy", "acc")])
    bands = [t for t in two.data if t.fill == "toself"]
    assert len(bands) == 2 * 3  # a band per strategy and panel
    assert all(t.mode == "lines" for t in bands)  # plotly's default for few points adds markers, in other colours
    means = [t for t in two.data if t.fill is None and t.showlegend]
    assert any("mean of 2" in t.name for t in means)
    cost = plots.cost_bars(_frame(strategies=("vanilla", "addrop")))
    labels = list(cost.data[0].y)
    assert "vanilla" in labels and any("AD-DROP epochs" in y for y in labels)


def test_attribution_subtitle_says_what_each_method_is():
    T = 3
    a = np.full((T, T), 1 / T)
    subtitles = {}
    for method in ("ga", "iga", "aa", "rd"):
        fig = plots.attention_attribution(["a", "b", "c"], a, a, method=method, steps=7)
        subtitles[method] = fig.layout.annotations[1].text
    assert "GA, Eq. 5" in subtitles["ga"] and "∂F_c/∂A" in subtitles["ga"]
    assert "integrated gradients" in subtitles["iga"] and "m = 7" in subtitles["iga"]
    assert "attention weights" in subtitles["aa"] and "random" in subtitles["rd"]
    assert len(set(subtitles.values())) == 4
    # where the outlined region does not come from B, the subtitle says so (nobody looks for the darkest cells)
    assert "not drawn from B" in subtitles["rd"] and "not drawn from B" not in subtitles["ga"]
    for mode, said in (("random", "not drawn from B"), ("low", "the lowest B of each row")):
        fig = plots.attention_attribution(["a", "b", "c"], a, a, method="ga", mode=mode)
        assert said in fig.layout.annotations[1].text


@pytest.mark.parametrize("signed", [True, False])
def test_scores_without_negatives_use_the_whole_colour_range(signed):
    """GA/IGA scores (signed): blue-white-red around 0; AA weights and RD scores (never negative): white to red from
    0, the same in the one-head figure and in the tiles, so none of them spends half its colours on nothing."""
    T = 4
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(2, 3, T, T)) if signed else rng.random((2, 3, T, T))
    att = np.full((T, T), 1.0 / T)
    method = "ga" if signed else "rd"
    one = [t for t in plots.attention_attribution(list("abcd"), att, scores[0, 0], method=method).data
           if isinstance(t, go.Heatmap)][1]
    tiles = plots.head_grid(scores, method=method).data[0]
    top = float(np.abs(scores[0, 0]).max())
    for trace, hi in ((one, top), (tiles, 1.0)):
        assert trace.zmax == pytest.approx(hi)
        if signed:
            assert trace.zmin == pytest.approx(-hi) and trace.zmid == 0
            assert trace.colorscale[0][1] != trace.colorscale[-1][1]  # two colours at the ends
        else:
            assert trace.zmin == 0 and trace.zmid is None
            assert trace.colorscale == go.Heatmap(colorscale="Reds").colorscale


def test_the_method_not_the_draw_picks_the_colours():
    """A GA head whose scores happen to be all >= 0 keeps the signed colours of its neighbours."""
    from addrop.studio.plots.maps import score_scale

    assert score_scale(np.ones((3, 3)), 1.0, "ga")["colorscale"] == "RdBu_r"
    assert score_scale(np.ones((3, 3)), 1.0, "aa")["colorscale"] == "Reds"
    assert score_scale(-np.ones((3, 3)), 1.0)["colorscale"] == "RdBu_r"  # no method: the scores decide
