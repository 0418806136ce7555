"""A plan's runs side by side in worker processes (addrop/experiments/parallel.py): the same runs, records and
progress as one after the other, and a stop request that reaches the workers."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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
ROOT = Path(__file__).resolve().parents[2]


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


class _Said(_Job):
    """Keeps every progress message."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.said: list[str] = []

    def update(self, **kw):
        super().update(**kw)
        if "message" in kw:
            self.said.append(kw["message"])


def test_the_progress_message_names_every_run_under_way(tmp_path):
    turn, side = _Said(), _Said()
    plans.run_plan(turn, plans.prior_plan(_base(epochs=6), 0.3, [0], str(tmp_path), group="t"), workers=1)
    plans.run_plan(side, plans.prior_plan(_base(epochs=6), 0.3, [0], str(tmp_path), group="s"), workers=2)
    assert not [m for m in turn.said if m.startswith("runs ")]  # one after the other: one run at a time
    assert any(m.startswith("run 4/4 · drop-high: epoch 6/6") for m in turn.said)
    both = [m for m in side.said if m.startswith("runs ")]
    assert both and all(m.count(": epoch") + m.count(": loading") == 2 for m in both), both[:3]
    assert any(m.startswith("runs 3 and 4 of 4 · drop-low: ") and "; drop-high: " in m for m in both), both[-3:]
    assert side.said[-1] == turn.said[-1] == "done"


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
    assert "- At epoch 1" in out and "did not run to its end" not in out  # the summary, of four finished runs
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


# ------------------------------------------------------------------------------- a sweep's cells side by side

def _sweep(name: str, epochs: int = 2, ps: str = "0.3,0.6"):
    from addrop.config import AttributionConfig
    from addrop.experiments.sweeps.spec import SweepSpec

    return SweepSpec(name=name, base=_base(epochs=epochs, attribution=AttributionConfig(method="ga")), ps=ps,
                     qs="0.5", seeds="0", baseline=True)


def test_sweep_cells_side_by_side_go_on_after_a_failed_cell_and_end_on_an_error(tmp_path):
    from addrop.experiments.sweeps.local import prepare, run_sweep

    # a learning rate that makes every cell's loss non-finite: each ends failed, and the next one still runs
    bad = {"workers": _sweep("w"), "turn": _sweep("t")}
    bad = {k: replace(v, base=replace(v.base, lr=1e30)) for k, v in bad.items()}
    turn = run_sweep(bad["turn"], tmp_path, max_concurrent=1)
    side = run_sweep(bad["workers"], tmp_path, max_concurrent=2)
    assert sorted(side.failed) == sorted(turn.failed) == ["p0.3-q0.5-s0", "p0.6-q0.5-s0", "vanilla-s0"]
    assert side.failed == turn.failed and all("loss became nan" in why for why in side.failed.values())
    # an error a cell raises (here: its folder is taken by a file) ends the sweep, in turn or side by side alike
    for name, workers in (("f", 1), ("g", 2)):
        prepare(_sweep(name), tmp_path)
        (tmp_path / name / "vanilla-s0").write_text("not a run folder")
        with pytest.raises(UserError, match="already exists"):
            run_sweep(_sweep(name), tmp_path, max_concurrent=workers)


def test_sweep_stop_reaches_the_cells_in_workers_and_they_resume(tmp_path):
    from addrop.experiments.sweeps.local import run_sweep

    seen = []
    res = run_sweep(_sweep("s", epochs=200), tmp_path, max_concurrent=2, should_stop=lambda: bool(seen),
                    on_epoch=seen.append)
    assert res.stopped and not res.failed and not res.ran and seen[0]["run"] in ("vanilla-s0", "p0.3-q0.5-s0")
    recs = {r.id: r for r in list_runs(tmp_path / "s")}
    assert recs and all(r.status == "stopped" and r.epochs_done < 200 for r in recs.values())
    # the stopped cells run again (to their end this time), from the start; 200 epochs: under load, no cell can
    # finish before the stop reaches it
    res = run_sweep(_sweep("s", epochs=200, ps="0.3"), tmp_path, max_concurrent=2)
    assert sorted(res.ran) == ["p0.3-q0.5-s0", "vanilla-s0"] and not res.stopped


def test_a_killed_worker_ends_the_sweep_with_a_clear_error(tmp_path):
    import json
    import os
    import signal

    from addrop.experiments.parallel import WorkerDied
    from addrop.experiments.sweeps.local import run_sweep

    killed = []

    def kill_its_worker(rec):
        if not killed:
            pid = json.loads((tmp_path / "k" / rec["run"] / "status.json").read_text())["pid"]
            assert pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            killed.append(rec["run"])

    with pytest.raises(WorkerDied, match="worker process died") as e:
        run_sweep(_sweep("k", epochs=1000), tmp_path, max_concurrent=2, on_epoch=kill_its_worker)  # nothing ends first
    assert isinstance(e.value, UserError)  # the command line prints it on one line (exit 2), the app shows it
    assert killed and not [r for r in list_runs(tmp_path / "k") if r.status == "finished"]


def test_workers_end_with_their_main_process(tmp_path):
    """Killing the command (SIGKILL: no clean-up in it at all) leaves no worker training on, or waiting for work."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "addrop", "sweep", "--model", "tiny-bert", "--device", "cpu", "--task", "demo",
           "--train-size", "16", "--dev-size", "8", "--batch-size", "8", "--epochs", "500", "--p", "0.3",
           "--q", "0.5", "--max-concurrent", "2", "--out", str(tmp_path), "--name", "o"]
    main_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids: set = set()
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline:  # both cells under way, each in its worker
            time.sleep(0.5)
            for f in (tmp_path / "o").glob("*/status.json"):
                try:
                    pids.add(json.loads(f.read_text())["pid"])
                except (ValueError, KeyError):
                    pass
        assert len(pids) == 2 and main_proc.pid not in pids, pids
    finally:
        main_proc.kill()
        main_proc.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their main process"


def test_a_stop_request_after_every_cell_finished_is_not_a_stopped_sweep(tmp_path):
    from addrop.experiments.sweeps.local import run_sweep

    cells = []
    res = run_sweep(_sweep("late", ps="0.3"), tmp_path, max_concurrent=2, on_cell=cells.append,
                    should_stop=lambda: len(cells) >= 2)  # true once both cells have ended
    assert sorted(res.ran) == ["p0.3-q0.5-s0", "vanilla-s0"] and not res.stopped


# ------------------------------------------------------------------------- a pool kept between plans (the app's)

def _pids(root) -> set:
    import json

    return {json.loads(f.read_text())["pid"] for f in root.glob("*/status.json")}


def test_a_kept_pool_serves_plan_after_plan_a_stop_included(tmp_path):
    from addrop.experiments import parallel

    base = _base()
    shape = plan_workers([base] * 4, 2)
    preload = ("tiny-bert", "cpu", 2, 0)
    try:
        assert parallel.keep_workers(*shape, preload)  # started: its processes load the model now
        assert not parallel.keep_workers(*shape, preload)  # kept already: nothing new
        assert not parallel.keep_workers(*shape, preload[:3] + (7,))  # nor for another seed (a run loads its own)
        assert parallel.kept_workers() == {"shape": shape, "preload": preload, "busy": False}
        said = _Said()
        first = plans.run_plan(said, plans.prior_plan(base, 0.3, [0], str(tmp_path), group="a"), workers=2)
        assert not [m for m in said.said if "loading the model" in m]  # the workers had loaded it ahead
        stopped = plans.run_plan(_Job(stop_after=1), plans.prior_plan(_base(epochs=40), 0.3, [0], str(tmp_path),
                                                                      group="stop"), workers=2)
        again = plans.run_plan(_Job(), plans.prior_plan(base, 0.3, [0], str(tmp_path), group="b"), workers=2)
        assert [r["status"] for r in first["runs"]] == [r["status"] for r in again["runs"]] == ["finished"] * 4
        assert stopped["runs"][0]["status"] == "stopped"  # and the stop request did not outlive its plan
        pids = _pids(tmp_path / "a")
        assert len(pids) == 2 and pids == _pids(tmp_path / "b") and _pids(tmp_path / "stop") <= pids
        assert parallel.kept_workers()["busy"] is False
        # the same processes, the same numbers
        a, b = (metrics_frame(list_runs(tmp_path / g)).sort_values(["run", "epoch"]).reset_index(drop=True)
                for g in ("a", "b"))
        for col in ("train_loss", "clean_train_loss", "dev_loss", "dropped_share"):
            assert b[col].tolist() == a[col].tolist(), col
        # another model replaces an idle pool; a plan of another shape gets a pool of its own
        assert parallel.keep_workers(*shape, ("tiny-roberta", "cpu", 2, 0))
        assert parallel.kept_workers()["preload"][0] == "tiny-roberta"
    finally:
        parallel.release_workers()
    assert parallel.kept_workers() is None
    plans.run_plan(_Job(), plans.prior_plan(base, 0.3, [0], str(tmp_path), group="c"), workers=2)
    assert not _pids(tmp_path / "c") & _pids(tmp_path / "a")  # no pool kept: new processes, ended after the plan


def test_a_kept_pool_idle_too_long_is_shut_down(monkeypatch):
    from addrop.experiments import parallel

    monkeypatch.setattr(parallel, "KEEP_IDLE_S", 0.5)
    assert parallel.keep_workers(2, 1, None)
    import time

    deadline = time.monotonic() + 20
    while parallel.kept_workers() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert parallel.kept_workers() is None
    assert not parallel.keep_workers(1, 1, None)  # one worker: nothing to keep


def test_the_app_runs_side_by_side_where_it_pays(monkeypatch):
    from types import SimpleNamespace

    import torch

    from addrop.experiments import parallel
    from addrop.studio import background

    def model(params: int, device: str = "cpu"):
        return SimpleNamespace(model=torch.nn.Linear(params, 1, bias=False), device=torch.device(device))

    monkeypatch.delenv(background.WORKERS_ENV, raising=False)
    monkeypatch.setattr(background, "_available_bytes", lambda: 64 * 2 ** 30)
    cpus = available_cpus()
    big, tiny = model(background.SIDE_BY_SIDE_PARAMS), model(1000)
    assert background.app_workers(big, 4) == ((2, max(1, cpus // 2)) if cpus >= 2 else (1, 0))
    assert background.app_workers(big, 1) == (1, 0)  # one run: nothing to run beside it
    assert background.app_workers(tiny, 4) == (1, 0)  # a tiny model trains faster than a worker starts
    assert background.app_workers(model(background.SIDE_BY_SIDE_PARAMS, "cuda"), 4) == (1, 0)  # a GPU: in turn
    monkeypatch.setattr(background, "_available_bytes", lambda: 2 * 2 ** 30)
    assert background.app_workers(big, 4) == (1, 0)  # no room for two more processes
    monkeypatch.setenv(background.WORKERS_ENV, "1")
    monkeypatch.setattr(background, "_available_bytes", lambda: 64 * 2 ** 30)
    assert background.app_workers(big, 4) == (1, 0)
    monkeypatch.setenv(background.WORKERS_ENV, "3")
    assert background.app_workers(tiny, 4)[0] == 3 and background.app_workers(tiny, 2)[0] == 2
    assert background.warm_workers(big, "minilm", "cpu", 2, 0, 1) == 1  # one run: in turn, nothing started
    assert parallel.kept_workers() is None


def test_the_exit_of_the_process_stops_the_runs_side_by_side(tmp_path):
    """The app's server stopped (its main thread ends) while a plan's runs train in kept workers, from a daemon
    thread as the app's jobs run: the exit asks them to stop instead of waiting for their ends."""
    import json
    import subprocess
    import sys
    import time

    script = f"""
import threading, time
from addrop.config import TrainConfig
from addrop.experiments import parallel, plans
from tests.experiments.test_plans import _FakeJob
if __name__ == "__main__":
    base = TrainConfig(model="tiny-bert", device="cpu", task="demo", source="demo", epochs=5000, train_size=16,
                       dev_size=8, batch_size=8, lr=1e-4)
    parallel.keep_workers(2, 1, ("tiny-bert", "cpu", 2, 0))
    plan = plans.prior_plan(base, 0.3, [0], {str(tmp_path)!r}, group="g")
    threading.Thread(target=plans.run_plan, args=(_FakeJob(), plan), kwargs=dict(workers=2), daemon=True).start()
    deadline = time.monotonic() + 120
    while len(list(plan.root.glob("*/metrics.jsonl"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # both runs under way, an epoch each
"""
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), timeout=240, check=True)
    assert time.monotonic() - t < 200  # 5000 epochs each would take far longer
    status = {f.parent.name: json.loads(f.read_text())["status"] for f in (tmp_path / "g").glob("*/status.json")}
    assert status and set(status.values()) == {"stopped"}, status
