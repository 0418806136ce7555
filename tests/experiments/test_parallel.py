"""A plan's runs side by side in worker processes (addrop/experiments/parallel.py): the same runs, records and
progress as one after the other, and a stop request that reaches the workers."""
from __future__ import annotations

import pytest

from addrop.cli import main
from addrop.config import TrainConfig
from addrop.engine.runs import list_runs, metrics_frame
from addrop.errors import UserError
from addrop.experiments import plans
from addrop.experiments.parallel import plan_workers
from addrop.experiments.sweeps.cell import available_cpus
from tests.experiments.test_plans import _FakeJob as _Job  # what run_plan needs of a jobs.Job

pytestmark = pytest.mark.usefixtures("one_thread")


def _base(**kw) -> TrainConfig:
    return TrainConfig(model="tiny-bert", device="cpu", task="demo", source="demo", epochs=kw.pop("epochs", 2),
                       train_size=16, dev_size=8, batch_size=8, lr=1e-4, **kw)


def test_plan_workers_counts():
    cfgs = [_base()] * 4
    assert plan_workers(cfgs, 1) == (1, 0)
    assert plan_workers(cfgs[:1], 4) == (1, 0)  # one run: nothing to run beside it
    assert plan_workers(cfgs, 2) == (2, max(1, available_cpus() // 2))
    assert plan_workers(cfgs, 16)[0] == 4  # never more workers than runs
    with pytest.raises(UserError, match="workers"):
        plan_workers(cfgs, 0)


def test_side_by_side_gives_the_runs_one_after_the_other_gives(tmp_path):
    base = _base()
    job_turn, job_side = _Job(), _Job()
    turn = plans.run_plan(job_turn, plans.prior_plan(base, 0.3, [0], str(tmp_path), group="turn"), workers=1)
    side = plans.run_plan(job_side, plans.prior_plan(base, 0.3, [0], str(tmp_path), group="side"), workers=2)
    assert job_side.progress["workers"] == 2 and job_turn.progress["workers"] == 1
    assert [r["status"] for r in side["runs"]] == [r["status"] for r in turn["runs"]] == ["finished"] * 4
    assert [r["id"] for r in side["runs"]] == [r["id"] for r in turn["runs"]]
    assert sorted((e["run"], e["epoch"]) for e in job_side.events) == sorted((e["run"], e["epoch"])
                                                                           for e in job_turn.events)
    assert len(job_side.progress["epochs"]) == 8 and job_side.progress["done_epochs"] == 8
    assert job_side.progress["fraction"] == pytest.approx(1.0)
    # the same seed, data, model and settings: the same numbers (a worker's thread count may move the last digits)
    a, b = (metrics_frame(list_runs(tmp_path / g)).sort_values(["run", "epoch"]).reset_index(drop=True)
            for g in ("turn", "side"))
    for col in ("train_loss", "clean_train_loss", "dev_loss", "dropped_share"):
        assert b[col].tolist() == pytest.approx(a[col].tolist(), rel=1e-5, abs=1e-7), col


def test_side_by_side_stop_reaches_the_workers(tmp_path):
    plan = plans.prior_plan(_base(epochs=40), 0.3, [0], str(tmp_path), group="stop")
    out = plans.run_plan(_Job(stop_after=1), plan, workers=2)
    status = [r["status"] for r in out["runs"]]
    # the stop comes after the first epoch record; the second run is somewhere in its first epochs by then, or (its
    # worker still starting) not started at all: then it stays waiting and leaves no record, as a run never begun
    assert status[0] == "stopped" and status[1] in ("stopped", "waiting") and status[2:] == ["waiting", "waiting"]
    recs = {r.id: r for r in list_runs(tmp_path / "stop")}
    assert set(recs) == {r["run"] for r in out["runs"] if r["status"] == "stopped"}
    assert all(r.status == "stopped" and r.epochs_done < 40 for r in recs.values())
    assert recs["none"].epochs_done >= 1


def test_cli_workers_option(tmp_path, capsys):
    args = ["prior", "--model", "tiny-bert", "--device", "cpu", "--task", "demo", "--train-size", "16",
            "--dev-size", "8", "--batch-size", "8", "--epochs", "1", "--out", str(tmp_path)]
    assert main([*args, "--workers", "0", "--name", "bad"]) == 2
    assert "workers must be 1" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*args, "--workers", "2", "--name", "p2"]) == 0
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if " epoch 1" in line and "train_loss=" in line]) == 4
    assert {r.id for r in list_runs(tmp_path / "p2")} == {"none", "drop-random", "drop-low", "drop-high"}
    assert (tmp_path / "p2" / "curves.html").is_file()


class _BrokenPrinter(_Job):
    """A progress whose printing fails at the first epoch line (e.g. `... | head -1`)."""

    def add_event(self, e):
        raise BrokenPipeError("the reader went away")


def test_side_by_side_error_in_reporting_stops_the_runs_and_is_raised(tmp_path):
    plan = plans.prior_plan(_base(epochs=40), 0.3, [0], str(tmp_path), group="pipe")
    with pytest.raises(BrokenPipeError):
        plans.run_plan(_BrokenPrinter(), plan, workers=2)  # returns (raising) instead of waiting for 40 epochs
    recs = list_runs(tmp_path / "pipe")
    assert recs and all(r.status == "stopped" and r.epochs_done < 40 for r in recs)


def test_side_by_side_run_error_is_the_plan_s_error(tmp_path, capsys):
    args = ["prior", "--model", "tiny-bert", "--device", "cpu", "--task", "demo", "--train-size", "16",
            "--dev-size", "8", "--batch-size", "8", "--epochs", "1", "--out", str(tmp_path), "--name", "again"]
    assert main([*args, "--workers", "1"]) == 0
    capsys.readouterr()
    # the same group again: every run fails on its existing record, one after the other or side by side alike
    assert main([*args, "--workers", "1"]) == 2
    err_turn = capsys.readouterr().err
    assert main([*args, "--workers", "2"]) == 2
    err_side = capsys.readouterr().err
    assert "already exists" in err_turn and "already exists" in err_side
