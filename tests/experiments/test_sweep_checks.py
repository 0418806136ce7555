"""Sweeps without bounds: a grid of a million cells, infinite or NaN values, 10^8 seeds, a layer the model does
not have, an unknown metric: each refused before a cell runs or a file is written (experiments/sweeps/spec.py,
results.check_metric, engine/preflight.check_runs); and a large sweep's table is not rewritten after every cell."""
from __future__ import annotations

import pytest

import addrop.experiments.sweeps.local as local
from addrop.config import AttributionConfig, TrainConfig
from addrop.errors import UserError
from addrop.experiments.sweeps.results import check_metric
from addrop.experiments.sweeps.spec import MAX_CELLS, SweepSpec, parse_values

pytestmark = pytest.mark.usefixtures("one_thread")


def _base(**kw) -> TrainConfig:
    d = dict(model="tiny-bert", task="demo", epochs=1, cross_tuning=False, train_size=16, dev_size=8, batch_size=8,
             lr=1e-3, device="cpu", attribution=AttributionConfig(method="ga"))
    d.update(kw)
    return TrainConfig(**d)


@pytest.mark.parametrize("spec,match", [
    ("0.1:inf:0.1", "finite numbers"), ("nan:0.9:0.1", "finite numbers"), ("0.1,inf", "finite number"),
    ("0.1:0.9:0", "step must be > 0"), ("0.1:0.9:1e-300", "use at most 1000"), ("0.1,nan", "finite number"),
])
def test_values_that_never_end_are_refused(spec, match):
    with pytest.raises(UserError, match=match):
        parse_values(spec)


def test_a_grid_over_the_cap_needs_an_explicit_override():
    grid = "0.001:0.999:0.001"
    with pytest.raises(UserError, match=r"998002 runs .* more than the 500 allowed; use a coarser grid, "
                                         r"or \(command line\) pass --max-cells 998002"):
        SweepSpec(name="big", base=_base(), ps=grid, qs=grid)
    big = SweepSpec(name="big", base=_base(), ps=grid, qs="0.5", seeds="0,1", max_cells=5000)
    assert big.size == 2 * (999 + 1) == len(big.cells())
    assert SweepSpec(name="ok", base=_base(), ps="0.1:0.9:0.1", qs="0.1:0.9:0.1").size == 82 <= MAX_CELLS
    with pytest.raises(UserError, match="use at most 10000"):
        SweepSpec(name="seeds", base=_base(), ps="0.5", qs="0.5", seeds="0:100000000")


def test_a_layer_the_model_lacks_is_found_before_any_cell(tmp_path, monkeypatch):
    import addrop.engine.training as training

    monkeypatch.setattr(training, "_loop", lambda *a, **k: pytest.fail("a cell was trained"))
    spec = SweepSpec(name="s", base=_base(attribution=AttributionConfig(method="ga", layers="9")), ps="0.3", qs="0.3")
    with pytest.raises(UserError, match="layer 9 is out of range: this model has 2 layers"):
        local.run_sweep(spec, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_cross_tuned_grid_that_never_reaches_an_addrop_epoch_is_refused_before_any_cell(tmp_path, monkeypatch,
                                                                                         capsys):
    """With cross-tuning, epoch 1 is plain: a one-epoch grid's cells would all train as the baseline does."""
    import addrop.engine.training as training
    from addrop.cli import main
    from addrop.engine.preflight import check_schedule

    monkeypatch.setattr(training, "_loop", lambda *a, **k: pytest.fail("a cell was trained"))
    spec = SweepSpec(name="s", base=_base(cross_tuning=True), ps="0.3", qs="0.3")
    with pytest.raises(UserError, match="cross-tuning masks epochs 2, 4, ... only, and 1 epoch would never reach"):
        local.run_sweep(spec, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    args = ["--model", "tiny-bert", "--task", "demo", "--epochs", "1", "--out", str(tmp_path / "runs")]
    for argv in (["sweep", "--p", "0.3", "--q", "0.3"], ["train", "--strategy", "addrop"], ["compare", "--seeds", "0"]):
        capsys.readouterr()
        assert main([*argv, *args]) == 2
        assert "1 epoch would never reach one" in capsys.readouterr().err, argv
    # the library's own train() refuses it too, as ADDropTrainer warns of it
    from addrop.config import TrainConfig

    with pytest.raises(UserError, match="1 epoch would never reach one"):
        training.train(TrainConfig(model="tiny-bert", strategy="addrop", epochs=1), runs_dir=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "runs").exists()
    check_schedule(SweepSpec(name="s", base=_base(cross_tuning=True, epochs=2), ps="0.3", qs="0.3").cells())  # fine
    check_schedule([_base(strategy="drop-low", epochs=1)])  # the prior experiment's drop-* mask every epoch


def test_an_unknown_metric_is_found_before_any_cell():
    check_metric(_base(task="demo"), "accuracy")
    check_metric(_base(task="mrpc"), "f1")
    check_metric(_base(task="sts-b"), "dev_spearman")
    with pytest.raises(UserError, match=r"unknown --metric 'bleu' for task demo: choose one of accuracy, loss"):
        check_metric(_base(task="demo"), "bleu")
    with pytest.raises(UserError, match="unknown --metric 'f1'"):
        check_metric(_base(task="sts-b"), "f1")


def test_outputs_are_not_rewritten_after_every_cell(tmp_path, monkeypatch):
    """With the refresh interval longer than the sweep, the table is drawn after the first cell and at the end
    only: not once per cell."""
    monkeypatch.setattr(local, "REFRESH_EVERY_S", 1e9)
    calls = []
    spec = SweepSpec(name="s", base=_base(), ps="0.2", qs="0.2,0.4,0.6", baseline=False)

    def refresh(folder):
        calls.append(folder)
        return local.write_table(folder)

    res = local.run_sweep(spec, tmp_path / "runs", refresh=refresh)
    assert len(res.ran) == 3 and not res.failed
    assert len(calls) == 2
    assert (tmp_path / "runs" / "s" / "table.csv").is_file()


def test_a_misspelt_task_is_refused_before_any_cell_or_folder(tmp_path, monkeypatch):
    """It used to fail in the first cell, after the sweep folder was made (and, in the app, silently)."""
    import addrop.engine.training as training

    monkeypatch.setattr(training, "_loop", lambda *a, **k: pytest.fail("a cell was trained"))
    spec = SweepSpec(name="s", base=_base(task="sst2typo"), ps="0.3", qs="0.3")
    with pytest.raises(UserError, match="unknown task 'sst2typo': choose one of demo, sst-2"):
        local.run_sweep(spec, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    for task in ("demo", "csv", "SST2", "sts_b"):  # demo, a CSV's own labels and spellings of named tasks pass
        from addrop.engine.preflight import check_runs

        check_runs([_base(task=task)])
