"""Experiment plans (addrop/experiments/plans.py): the prior experiment and the comparison, the same plans whether
the app's background job or the command line runs them."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from addrop.cli import main
from addrop.config import AttributionConfig, TrainConfig
from addrop.engine.models import load_model
from addrop.engine.runs import list_runs, load_run
from addrop.engine.training import load_splits
from addrop.errors import UserError
from addrop.experiments import groups, plans
from addrop.studio.background import plan_job

pytestmark = pytest.mark.usefixtures("one_thread")


class _FakeJob:
    """What run_plan needs of a jobs.Job; stops itself after `stop_after` epoch records when given."""

    def __init__(self, stop_after: int | None = None):
        self.progress: dict = {}
        self.events: list = []
        self.stop_after = stop_after

    def update(self, **kw):
        self.progress.update(kw)

    def add_event(self, e):
        self.events.append(e)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.progress.get("epochs") or []) >= self.stop_after


def _tiny_base(**kw):
    from addrop.config import TrainConfig

    return TrainConfig(model="tiny-bert", device="cpu", task="demo", source="demo", epochs=kw.pop("epochs", 1),
                       train_size=16, dev_size=8, batch_size=8, lr=1e-4, **kw)


def test_run_plan_prior_layout_and_progress(tmp_path):
    base = _tiny_base()
    plan = plans.prior_plan(base, 0.3, [0], str(tmp_path), group="prior-test")
    assert [c.strategy for c in plan.configs] == ["none", "drop-random", "drop-low", "drop-high"]
    assert all(c.attribution.target == "gold" and c.attribution.p == 0.3 for c in plan.configs)
    job = _FakeJob()
    out = plan_job(job, plan, load_model("tiny-bert", "cpu", 2), load_splits(base))  # what the app submits
    assert [r["status"] for r in out["runs"]] == ["finished"] * 4
    assert out["stopped"] is False  # a stop pressed now (while the curves are written) cut nothing (studio/jobs.py)
    assert (tmp_path / "prior-test" / "curves.html").is_file() and out["curves"] == job.progress["curves"]
    assert {r.id for r in list_runs(tmp_path / "prior-test")} == {"none", "drop-random", "drop-low", "drop-high"}
    epochs = job.progress["epochs"]
    assert len(epochs) == 4 and {e["run"] for e in epochs} == {"none", "drop-random", "drop-low", "drop-high"}
    assert all("clean_train_loss" in e for e in epochs)
    assert job.progress["fraction"] == pytest.approx(1.0)
    assert groups.list_groups(tmp_path, kind="prior")[0]["name"] == "prior-test"
    with pytest.raises(UserError, match="already exists"):
        plans.check_plan(plans.prior_plan(base, 0.3, [0], str(tmp_path), group="prior-test"), 2)


def test_run_plan_stop_marks_the_run_stopped(tmp_path):
    base = _tiny_base(epochs=3)
    plan = plans.prior_plan(base, 0.3, [0], str(tmp_path), group="stopped")
    out = plan_job(_FakeJob(stop_after=1), plan, load_model("tiny-bert", "cpu", 2), load_splits(base))
    assert [r["status"] for r in out["runs"]] == ["stopped", "waiting", "waiting", "waiting"]
    assert out["stopped"] is True
    recs = list_runs(tmp_path / "stopped")
    assert [(r.id, r.status, r.epochs_done) for r in recs] == [("none", "stopped", 1)]


def test_compare_plan_pairs_and_validation(tmp_path):
    plan = plans.compare_plan(_tiny_base(epochs=2), AttributionConfig(layers=[5]), True, [0, 1], str(tmp_path))
    assert [c.name for c in plan.configs] == ["vanilla-s0", "addrop-s0", "vanilla-s1", "addrop-s1"]
    assert [c.seed for c in plan.configs] == [0, 0, 1, 1]
    with pytest.raises(UserError, match="out of range"):
        plans.check_plan(plan, 2)
    with pytest.raises(UserError, match="differ"):
        plans.compare_plan(_tiny_base(), AttributionConfig(), True, [1, 1], str(tmp_path))


def test_compare_summary_ratio():

    rows = []
    for seed in (0, 1):
        for e in (1, 2):
            rows.append({"run": f"vanilla-s{seed}", "strategy": "vanilla", "seed": seed, "epoch": e, "seconds": 2.0,
                         "addrop_epoch": False, "dev_loss": 0.5, "dev_accuracy": 0.7 + 0.1 * seed})
            rows.append({"run": f"addrop-s{seed}", "strategy": "addrop", "seed": seed, "epoch": e,
                         "seconds": 2.0 if e == 1 else 5.0, "addrop_epoch": e == 2, "dev_loss": 0.4,
                         "dev_accuracy": 0.8})
    frame = pd.DataFrame(rows)
    metrics, (cost, ratio) = groups.last_epoch_metrics(frame), groups.epoch_cost(frame)
    assert ratio == pytest.approx(2.5)  # AD-DROP epochs 5 s / vanilla 2 s
    van = metrics[metrics["strategy"] == "vanilla"].iloc[0]
    assert van["dev_accuracy"] == pytest.approx(0.75) and van["dev_accuracy (sd)"] > 0
    assert set(cost.columns) >= {"all epochs", "plain epochs", "AD-DROP epochs"}


def test_only_seeds_whose_runs_all_finished_are_compared():
    live = [{"run": "vanilla-s0", "strategy": "vanilla", "seed": 0, "status": "finished"},
            {"run": "addrop-s0", "strategy": "addrop", "seed": 0, "status": "finished"},
            {"run": "vanilla-s1", "strategy": "vanilla", "seed": 1, "status": "stopped"},
            {"run": "addrop-s1", "strategy": "addrop", "seed": 1, "status": "waiting"},
            {"run": "vanilla-s2", "strategy": "vanilla", "seed": 2, "status": "finished"}]
    done, notes = groups.finished_seeds(live)
    assert done == {0}
    assert notes == ["seed 1: vanilla stopped, addrop waiting", "seed 2: vanilla finished"]


def test_a_sweep_or_replication_group_is_not_a_comparison(tmp_path):
    # a p x q sweep holds vanilla and addrop runs too, but its cells are not one comparison's seeds
    from addrop.experiments.sweeps.spec import SWEEP_FILE
    from addrop.engine.training import train

    base = _tiny_base(cross_tuning=False)
    for name in ("cmp", "sweep"):
        for strategy in ("vanilla", "addrop"):
            train(replace(base, strategy=strategy, name=f"{strategy}-s0"), runs_dir=str(tmp_path / name))
    (tmp_path / "sweep" / SWEEP_FILE).write_text("{}")
    assert [g["name"] for g in groups.list_groups(tmp_path, kind="compare")] == ["cmp"]
    assert groups.group_kind(tmp_path / "sweep") is None and groups.group_kind(tmp_path / "cmp") == "compare"


TINY_ARGS = ["--model", "tiny-bert", "--device", "cpu", "--task", "demo", "--train-size", "16", "--dev-size", "8",
             "--batch-size", "8", "--lr", "1e-4", "--epochs", "1"]


def test_cli_prior_runs_the_app_s_plan(tmp_path, capsys, monkeypatch):
    from addrop.studio import background

    ran = []
    real = plans.run_plan
    # the CLI runs the app's background job function, which runs the plan
    monkeypatch.setattr(background, "run_plan", lambda progress, plan, *a, **k: ran.append(plan) or real(progress, plan,
                                                                                                        *a, **k))
    code = main(["prior", *TINY_ARGS, "--rate", "0.2", "--out", str(tmp_path), "--name", "p1"])
    out = capsys.readouterr().out
    assert code == 0, out
    (plan,) = ran
    want = plans.prior_plan(plan.configs[0], 0.2, plans.PRIOR_DEFAULTS["layers"], str(tmp_path), group="p1")
    assert [c.to_dict() for c in plan.configs] == [c.to_dict() for c in want.configs]  # the page's plan, same args
    assert {r.id for r in list_runs(tmp_path / "p1")} == {"none", "drop-random", "drop-low", "drop-high"}
    assert (tmp_path / "p1" / "curves.html").is_file()
    cfg = load_run(tmp_path / "p1" / "drop-low").config
    assert cfg["attribution"]["p"] == 0.2 and cfg["attribution"]["layers"] == [0] and cfg["lr"] == 1e-4
    assert len([line for line in out.splitlines() if " epoch 1" in line and "train_loss=" in line]) == 4
    assert "drop-high" in out
    assert "- At epoch 1" in out and "the paper's finding" in out
    assert ("prior experiment (quick setting): tiny-bert on demo, 16 training and 8 dev examples (at most), 1 epoch, "
            "lr 0.0001, batch 8, rate 0.2 in layers [0], seed 0") in out  # what ran, before the first epoch
    assert cfg["attribution"]["count"] == "equal" and cfg["attribution"]["mode"] == "low"
    from addrop.engine.precision import resolve_precision

    assert plan.configs[0].precision == plans.PRIOR_DEFAULTS["precision"] == "auto"
    assert cfg["precision"] == resolve_precision("auto", "cpu") and f"precision {cfg['precision']}" in out
    assert cfg["attribution"]["q"] is None and cfg["cross_tuning"] is False


def test_cli_prior_setting_fills_the_sizes_not_given(monkeypatch, capsys):
    """--setting overfit takes its run sizes from PRIOR_SETTINGS where no option gives them; quick is the options'
    defaults, which PRIOR_SETTINGS["quick"] repeats."""
    from addrop.errors import UserError

    seen = []

    def stop(base, *a, **k):
        seen.append(base)
        raise UserError("stopped before training")

    monkeypatch.setattr(plans, "prior_plan", stop)
    assert main(["prior", "--model", "tiny-bert", "--setting", "overfit", "--epochs", "2"]) == 2
    assert main(["prior", "--model", "tiny-bert", "--setting", "overfit", "--preset", "paper"]) == 2
    assert main(["prior", "--model", "tiny-bert"]) == 2
    assert "stopped before training" in capsys.readouterr().err
    given, with_paper, quick = seen
    over = dict(plans.PRIOR_SETTINGS["overfit"])
    assert {k: getattr(given, k) for k in over} == dict(over, epochs=2)  # an option given explicitly wins
    assert {k: getattr(with_paper, k) for k in over} == over  # the setting's sizes win over the preset's
    assert {k: getattr(quick, k) for k in over} == plans.PRIOR_SETTINGS["quick"]
    assert plans.PRIOR_SETTINGS["quick"]["lr"] == plans.PRIOR_DEFAULTS["lr"]


def test_the_overfit_setting_is_suggested_only_where_it_helps():
    """On the demo data (where it was chosen) and only to runs that did not use it already."""
    over = plans.PRIOR_SETTINGS["overfit"]
    quick = TrainConfig(task="demo", epochs=3, lr=5e-5).record()
    assert plans.overfit_setting_helps(quick)
    assert not plans.overfit_setting_helps(TrainConfig(task="demo", epochs=over["epochs"], lr=over["lr"]).record())
    assert not plans.overfit_setting_helps(TrainConfig(task="mrpc", epochs=3).record())
    assert not plans.overfit_setting_helps(None)
    assert not plans.overfit_setting_helps(TrainConfig(model="tiny-bert", task="demo", epochs=3).record())


def test_cli_compare_runs_the_app_s_plan_and_prints_the_summary(tmp_path, capsys):
    code = main(["compare", *TINY_ARGS, "--epochs", "2", "--seeds", "0,1", "--p", "0.4", "--out", str(tmp_path),
                 "--name", "c1"])  # 2 epochs: cross-tuning's first AD-DROP epoch is the second
    out = capsys.readouterr().out
    assert code == 0, out
    assert sorted(r.id for r in list_runs(tmp_path / "c1")) == ["addrop-s0", "addrop-s1", "vanilla-s0", "vanilla-s1"]
    assert load_run(tmp_path / "c1" / "addrop-s1").config["attribution"]["p"] == 0.4
    assert load_run(tmp_path / "c1" / "addrop-s1").config["seed"] == 1
    assert "dev metrics at the last epoch" in out and "seconds per epoch" in out and (tmp_path / "c1" / "curves.html").is_file()
    assert "mean ± sd over 2 seeds" in out
    assert main(["compare", *TINY_ARGS, "--seeds", "1,1", "--out", str(tmp_path)]) == 2
    assert "differ" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "prior", "compare", "sweep"])
def test_training_commands_take_each_setting_the_same_way(command):
    """Options come from the TrainConfig fields: every command that trains has the same flags and defaults, except
    that `prior` starts from the app's prior-experiment form (PRIOR_DEFAULTS: sizes, lr, layers, precision)."""
    from addrop.cli import build_parser
    from addrop.config import TrainConfig
    from addrop.experiments.plans import PRIOR_DEFAULTS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = {f for a in sub._actions for f in a.option_strings}
    for name in ("model", "task", "data_dir", "epochs", "batch_size", "lr", "warmup_ratio", "max_length", "device",
                 "early_stopping", "weight_decay"):
        assert "--" + name.replace("_", "-") in flags, (command, name)
    defaults = {a.dest: a.default for a in sub._actions}
    own = PRIOR_DEFAULTS if command == "prior" else {}
    for name in ("lr", "warmup_ratio", "train_size", "dev_size", "epochs", "batch_size", "max_length"):
        assert defaults[name] == own.get(name, getattr(TrainConfig(), name)), (command, name)
    if command != "prior":
        assert {"--method", "--attribution", "--layers", "--target"} <= flags
