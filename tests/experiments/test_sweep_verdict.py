"""Whether a sweep shows anything (addrop/experiments/sweeps/results.py, sweep_verdict): no best cell is named
when no cell differs from the baseline beyond noise, on synthetic sweep folders (records written directly)."""
from __future__ import annotations

import math

import pytest

from addrop.config import AttributionConfig, TrainConfig
from addrop.engine.runs import RunWriter
from addrop.experiments.sweeps.local import prepare
from addrop.experiments.sweeps.results import best_cell, sweep_table, sweep_verdict
from addrop.experiments.sweeps.spec import SweepSpec
from addrop.studio.plots import sweep_heatmap


def make_sweep(root, acc, seeds="0", model="tiny-bert", baseline=True):
    """A finished sweep over p, q in {0.2, 0.5} whose run of (p, q, seed) ends at dev accuracy acc(p, q, seed)
    (p = q = None: the baseline)."""
    base = TrainConfig(model=model, task="demo", strategy="addrop", epochs=1, attribution=AttributionConfig())
    spec = SweepSpec(name="s", base=base, ps="0.2,0.5", qs="0.2,0.5", seeds=seeds, baseline=baseline)
    folder = prepare(spec, root)
    for cfg in spec.cells():
        p, q = (None, None) if cfg.strategy == "vanilla" else (cfg.attribution.p, cfg.attribution.q)
        with RunWriter(folder, cfg.name, cfg.record()) as w:
            w.log_epoch({"epoch": 1, "train_loss": math.log(2), "dev_loss": math.log(2),
                         "dev_accuracy": acc(p, q, cfg.seed)})
    return folder


def test_every_cell_equal_to_the_baseline_names_no_best_cell(tmp_path):
    """The issue's case: tiny random models learn nothing, accuracy 0.5 everywhere."""
    t = sweep_table(make_sweep(tmp_path, lambda p, q, s: 0.5))
    assert best_cell(t) is not None  # the raw ranking still has a first row...
    v = sweep_verdict(t)
    assert v["best"] is None and v["differs"] == 0  # ...but it is not a finding
    assert v["sentence"].startswith("No cell differs from the baseline beyond noise") and "one seed" in v["sentence"]
    assert "within 0.10 points (the least difference counted; one seed gives no spread" in v["sentence"]
    assert "Every run, the baseline's included, has the same accuracy (0.5000): the models may have learned " \
           "nothing yet" in v["sentence"]
    fig = sweep_heatmap(t)
    assert "best p=" not in fig.layout.title.text and "no cell differs" in fig.layout.title.text
    assert not fig.layout.shapes  # no cell boxed as the best


def test_differences_within_the_seeds_spread_are_noise(tmp_path):
    # seed 0 and seed 1 disagree by 0.1 everywhere; the cell p=0.5 q=0.5 is 0.02 above the baseline on average
    acc = lambda p, q, s: 0.6 + 0.1 * s + (0.02 if (p, q) == (0.5, 0.5) else 0.0)  # noqa: E731
    v = sweep_verdict(sweep_table(make_sweep(tmp_path, acc, seeds="0,1")))
    assert v["best"] is None and "the seeds' spread" in v["sentence"]
    assert "learned nothing" not in v["sentence"]  # the runs differ: they learned something


def test_a_real_difference_names_the_best_cell(tmp_path):
    acc = lambda p, q, s: 0.5 + (0.1 if (p, q) == (0.2, 0.5) else 0.0) + 0.001 * s  # noqa: E731
    v = sweep_verdict(sweep_table(make_sweep(tmp_path, acc, seeds="0,1")))
    assert (v["best"]["p"], v["best"]["q"]) == (0.2, 0.5) and v["differs"] == 1
    # in the heatmap's units: points of the metric (x 100)
    assert v["sentence"].startswith("Best cell p=0.2 q=0.5: Δ accuracy +10.00 points")
    assert "1 of 4 cells" in v["sentence"]


def test_cells_worse_than_the_baseline_name_no_best_cell(tmp_path):
    v = sweep_verdict(sweep_table(make_sweep(tmp_path, lambda p, q, s: 0.7 if p is None else 0.6)))
    assert v["best"] is None and "4 of 4 are worse" in v["sentence"]


@pytest.mark.parametrize("spread, named", [(0.0, False), (0.05, True)])
def test_without_a_baseline_equal_cells_stand_out_not(tmp_path, spread, named):
    acc = lambda p, q, s: 0.5 + (spread if p == 0.5 else 0.0)  # noqa: E731
    v = sweep_verdict(sweep_table(make_sweep(tmp_path, acc, baseline=False)))
    assert (v["best"] is not None) == named
