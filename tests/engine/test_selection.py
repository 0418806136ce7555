"""Paper presets per task and the best epoch: the paper's layers as the default, `--preset paper`, the
learning-rate schedule, early stopping on the dev metric, and the best epoch beside the last in run records,
the runs table, the comparison and sweeps."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from addrop.config import PAPER_PRESET, AttributionConfig, TrainConfig, paper_layers, with_preset
from addrop.engine.hf_trainer import ADDropConfig
from addrop.engine.runs import list_runs, load_run, load_weights, metrics_frame, runs_table
from addrop.engine.selection import BestTracker, best_epoch
from addrop.engine.training import make_optimizer, train
from addrop.experiments.best import best_vs_last

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("task,want", [("sst-2", (0,)), ("MNLI", (0,)), ("qnli", (0,)), ("qqp", (0,)),
                                       ("sts_b", (0,)), ("cola", None), ("mrpc", None), ("rte", None),
                                       ("demo", None), ("csv", None)])
def test_the_papers_layers_are_the_default_per_task(task, want):
    assert paper_layers(task) == want
    assert TrainConfig(task=task, strategy="addrop").attribution.layers == want
    assert ADDropConfig(task=task).layers == want
    # an explicit choice wins
    assert TrainConfig(task=task, attribution=AttributionConfig(layers="all")).attribution.layers is None
    assert TrainConfig(task=task, attribution=AttributionConfig(layers="1")).attribution.layers == (1,)
    assert ADDropConfig(task=task, layers="all").layers is None
    # the record names the layers actually used, and reads back the same
    cfg = TrainConfig(task=task)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).attribution.layers == want


@pytest.mark.parametrize("alias,task", [("sst", "sst-2"), ("sts", "sts-b"), ("mnli-m", "mnli"), ("SST_2", "sst-2")])
def test_a_tasks_other_names_get_its_layers(alias, task):
    from addrop.engine.tasks import get_task

    assert get_task(alias).name == task
    assert paper_layers(alias) == paper_layers(task) == (0,)
    assert (TrainConfig(task=alias, strategy="addrop").attribution.layers
            == TrainConfig(task=task, strategy="addrop").attribution.layers)
    assert ADDropConfig(task=alias).layers == ADDropConfig(task=task).layers


def test_addropconfig_refuses_a_negative_seed_as_the_commands_do():
    from addrop.errors import UserError

    with pytest.raises(UserError, match="seed"):
        ADDropConfig(seed=-3)
    assert ADDropConfig(seed=3).seed == 3 and ADDropConfig().seed is None


def test_an_unknown_task_in_addropconfig_says_all_layers_are_used():
    with pytest.warns(UserWarning, match="'sst2x' is not one addrop knows .* every layer"):
        assert ADDropConfig(task="sst2x").layers is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ADDropConfig(task="csv"), ADDropConfig(task="demo"), ADDropConfig(task="sst2x", layers="all")


@pytest.mark.parametrize("name", ["csv", "CSV", "custom", ""])
def test_a_csv_task_name_means_the_same_to_the_trainer_and_to_the_data(name):
    """One rule (config.is_csv_task): ADDropConfig takes it as a CSV's task (no warning), load_data asks for the file."""
    import warnings

    from addrop.engine.data import load_data
    from addrop.errors import UserError

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ADDropConfig(task=name)
    with pytest.raises(UserError, match="needs a file"):
        load_data(name)


def test_best_beside_last_is_the_epoch_of_the_best_metric_and_says_so(tmp_path):
    """The table reports the dev metric at its best epoch (the paper's way, as sweeps and the replication), which
    can differ from status.json's best epoch (what early stopping watches: the dev loss by default); its column
    says which epoch it is."""
    import pandas as pd

    rows = [{"run": "r", "strategy": "vanilla", "epoch": e, "dev_loss": lo, "dev_accuracy": a}
            for e, lo, a in ((1, 0.5, 0.6), (2, 0.4, 0.55), (3, 0.45, 0.7))]
    table = best_vs_last(pd.DataFrame(rows), "accuracy")
    assert table.loc[0, "epoch of best accuracy"] == 3 and table.loc[0, "best accuracy"] == pytest.approx(0.7)
    assert best_epoch(rows, "dev_loss", False)["epoch"] == 2  # what a run's status.json would name
    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=2, train_size=24, dev_size=16, batch_size=8, lr=1e-3)
    rec = load_run(train(cfg, runs_dir=str(tmp_path)).path)
    frame = metrics_frame([rec])
    assert metrics_frame(tmp_path).equals(frame) and runs_table(str(tmp_path)).equals(runs_table([rec]))  # a folder


def _parse(command: str, argv: list[str]):
    from addrop.cli import compare as cmp, sweep, train as tr
    from addrop.cli.options import attribution_from, train_config_from

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    {"train": tr, "compare": cmp, "sweep": sweep}[command].add_parser(sub)
    a = p.parse_args([command, *argv])
    if command == "sweep":
        return sweep.spec_from_args(a).base
    return train_config_from(a, attribution_from(a), name=None)


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
def test_cli_layers_default_to_the_papers_and_preset_paper_sets_the_regime(command):
    assert _parse(command, ["--task", "sst-2"]).attribution.layers == (0,)
    assert _parse(command, ["--task", "rte"]).attribution.layers is None
    plain = _parse(command, ["--task", "sst-2"])
    assert (plain.preset, plain.lr_schedule, plain.stop_on) == ("none", "linear", "loss")
    paper = _parse(command, ["--task", "sst-2", "--preset", "paper"])
    for k, v in PAPER_PRESET.items():
        assert getattr(paper, k) == v, k
    # a setting given explicitly wins over the preset, even when it equals the field's default
    mixed = _parse(command, ["--task", "rte", "--preset", "paper", "--epochs", "3", "--lr", "2e-5"])
    assert (mixed.epochs, mixed.lr, mixed.batch_size, mixed.preset) == (3, 2e-5, 16, "paper")


def test_with_preset_keeps_what_is_given():
    kw = with_preset({"task": "rte", "epochs": 7}, "paper")
    assert kw["epochs"] == 7 and kw["lr"] == 1e-5 and kw["preset"] == "paper"
    assert with_preset({"epochs": 7}, "none") == {"epochs": 7, "preset": "none"}


def test_constant_and_linear_schedules():
    model = torch.nn.Linear(2, 2)
    for schedule, want_end in (("constant", 1e-3), ("linear", 0.0)):
        cfg = TrainConfig(lr=1e-3, warmup_ratio=0.0, lr_schedule=schedule)
        opt, sched = make_optimizer(model, cfg, total_steps=10)
        lrs = []
        for _ in range(10):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert lrs[-1] == pytest.approx(want_end)
        if schedule == "constant":
            assert all(v == pytest.approx(1e-3) for v in lrs)


def test_tracker_stops_on_the_metric_with_patience_and_keeps_the_best_weights():
    model = torch.nn.Linear(2, 1)
    t = BestTracker("metric", "accuracy", patience=2, keep=True)
    accs = [0.5, 0.7, 0.6, 0.7, 0.65]  # 0.7 again is not better: patience runs out at epoch 4
    stops = []
    for e, a in enumerate(accs, 1):
        with torch.no_grad():
            model.weight.fill_(e)
        stops.append(t.update({"epoch": e, "dev_accuracy": a, "dev_loss": 1.0}, model))
        if stops[-1]:
            break
    assert stops == [False, False, False, True]
    assert t.summary() == {"best_by": "dev_accuracy", "last_epoch": 4, "best_epoch": 2, "best_value": 0.7,
                           "best_kept": True}
    assert float(t.state["weight"][0, 0]) == 2.0
    # on the loss, lower is better
    assert best_epoch([{"epoch": 1, "dev_loss": 0.5}, {"epoch": 2, "dev_loss": 0.4}], "dev_loss", False)["epoch"] == 2


def test_a_run_stops_on_the_dev_metric_and_reports_best_beside_last(tmp_path):
    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=6, train_size=24, dev_size=16, batch_size=8, lr=1e-3,
                      early_stopping=1, stop_on="metric", keep_best=True, save_weights=True,
                      lr_schedule="constant", strategy="addrop", attribution=AttributionConfig(layers="0"))
    res = train(cfg, runs_dir=str(tmp_path))
    assert res.status == "finished", res.reason
    accs = [m["dev_accuracy"] for m in res.metrics]
    # patience 1 on the metric: it stopped at the first epoch that did not beat the best so far
    for i in range(1, len(accs) - 1):
        assert accs[i] > max(accs[:i]) + 1e-6
    assert len(accs) == 6 or accs[-1] <= max(accs[:-1]) + 1e-6
    rec = load_run(res.path)
    want = best_epoch(res.metrics, "dev_accuracy", True)
    assert rec.summary["best_epoch"] == want["epoch"] and rec.summary["last_epoch"] == len(accs)
    assert rec.summary["best_by"] == "dev_accuracy" and rec.summary["best_kept"] is True
    row = runs_table(list_runs(tmp_path)).iloc[0]
    assert row["best_epoch"] == want["epoch"] and row["best_value"] == want["dev_accuracy"]
    assert load_weights(res.path)  # the kept best epoch's weights were written
    # without save_weights nothing is written, and the record does not say the best epoch was kept
    plain = train(replace(cfg, save_weights=False, name="unsaved"), runs_dir=str(tmp_path))
    assert load_run(plain.path).summary["best_kept"] is False
    assert not list(Path(plain.path).glob("*.safetensors"))
    table = best_vs_last(metrics_frame(list_runs(tmp_path)), "accuracy")
    assert table.loc[0, "epoch of best accuracy"] == want["epoch"]
    assert table.loc[0, "best accuracy"] == pytest.approx(want["dev_accuracy"])
    assert table.loc[0, "last accuracy"] == pytest.approx(accs[-1])
