"""p x q sweeps: grid parsing, cells as run records, resume, table and heatmap, local vs Ray, the CLI."""
from __future__ import annotations

import json
import os
import sys

import pytest

from addrop.cli import main
from addrop.config import AttributionConfig, TrainConfig
from addrop.experiments.seeds import parse_seeds
from addrop.errors import UserError
from addrop.experiments.sweeps.local import plan, run_sweep
from addrop.experiments.sweeps.ray_backend import RAY_MISSING
from addrop.experiments.sweeps.results import (HEATMAP_FILE, TABLE_FILE, best_cell, cell_runs, list_sweeps, progress,
                                               sweep_table, sweep_verdict)
from addrop.experiments.sweeps.spec import SWEEP_FILE, SweepSpec, baseline_name, cell_name, default_name, parse_values
from addrop.studio.outputs import write_sweep_outputs
from addrop.studio.plots import sweep_heatmap


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _base(**kw) -> TrainConfig:
    d = dict(model="tiny-bert", task="demo", epochs=2, train_size=16, dev_size=8, batch_size=8, lr=1e-3,
             device="cpu", attribution=AttributionConfig(method="ga"))
    d.update(kw)
    return TrainConfig(**d)


def _spec(name="s", ps="0.2,0.5", qs="0.3,0.6", seeds="0", baseline=True, **kw) -> SweepSpec:
    return SweepSpec(name=name, base=_base(**kw), ps=ps, qs=qs, seeds=seeds, baseline=baseline)


def _metrics(folder, run_id):
    with open(os.path.join(folder, run_id, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ---------------------------------------------------------------------------------------------- parsing

def test_parse_values_ranges_lists_and_rounding():
    assert parse_values("0.1:0.9:0.1") == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert parse_values("0.5,0.1,0.5") == [0.1, 0.5]
    assert parse_values("0.3") == [0.3]
    assert parse_values([0.30000000000000004]) == [0.3]
    assert parse_values("0.2:0.8:0.3") == [0.2, 0.5, 0.8]


@pytest.mark.parametrize("bad", ["", "0:0.5:0.1", "0.1:0.9", "0.1:0.9:0", "0.9:0.1:0.1", "a,b", "1.0", "0.5,1.2"])
def test_parse_values_refuses_bad_specs(bad):
    with pytest.raises(UserError, match=r"--p|p values"):
        parse_values(bad)


def test_parse_seeds():
    assert parse_seeds("2,0,1") == [0, 1, 2]
    assert parse_seeds("0:2") == [0, 1, 2]
    assert parse_seeds(3) == [3]
    for bad, match in (("", "no seed"), ("x", "comma-separated integers"), ("-1", ">= 0"), ("1,1", "differ"),
                       ("0:100000000", "at most")):
        with pytest.raises(UserError, match=match):
            parse_seeds(bad)


def test_cells_are_named_deterministically_and_baselines_come_first():
    spec = _spec(ps="0.1,0.3", qs="0.5", seeds="0,1")
    names = [c.name for c in spec.cells()]
    assert names == ["vanilla-s0", "vanilla-s1", "p0.1-q0.5-s0", "p0.3-q0.5-s0", "p0.1-q0.5-s1", "p0.3-q0.5-s1"]
    assert cell_name(0.30000000000000004, 0.5, 2) == "p0.3-q0.5-s2" and baseline_name(1) == "vanilla-s1"
    cells = {c.name: c for c in spec.cells()}
    c = cells["p0.3-q0.5-s1"]
    assert (c.strategy, c.seed, c.attribution.p, c.attribution.q, c.attribution.seed) == ("addrop", 1, 0.3, 0.5, 1)
    assert cells["vanilla-s1"].strategy == "vanilla" and cells["vanilla-s1"].seed == 1
    assert default_name(_base(model="/some/where/my-model", task="mrpc")) == "sweep-mrpc-my-model"


def test_head_init_depends_only_on_the_seed():
    """Every backend loads each cell's model itself: the seeded head must not depend on what ran before."""
    import torch

    from addrop.engine.models import load_model

    a = load_model("tiny-bert", "cpu", seed=5).model.classifier.weight.detach().clone()
    torch.rand(1000)  # disturb the global generator
    load_model("tiny-bert", "cpu", seed=1)
    b = load_model("tiny-bert", "cpu", seed=5).model.classifier.weight
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ local sweep

@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps")
    events = []
    res = run_sweep(_spec(), out, on_cell=events.append, refresh=write_sweep_outputs)  # as the CLI and the app
    return out, res, events


def test_local_sweep_writes_run_records_table_and_heatmap(local_sweep):
    out, res, events = local_sweep
    folder = out / "s"
    assert res.path == str(folder) and not res.failed and not res.stopped
    assert sorted(res.ran) == sorted(["vanilla-s0", "p0.2-q0.3-s0", "p0.2-q0.6-s0", "p0.5-q0.3-s0", "p0.5-q0.6-s0"])
    assert [e["done"] for e in events] == [1, 2, 3, 4, 5] and all(e["total"] == 5 for e in events)
    for f in (SWEEP_FILE, TABLE_FILE, HEATMAP_FILE):
        assert (folder / f).is_file()
    meta = json.loads((folder / SWEEP_FILE).read_text())
    assert meta["grid"] == {"p": [0.2, 0.5], "q": [0.3, 0.6], "seeds": [0], "baseline": True}
    cfg = json.loads((folder / "p0.5-q0.3-s0" / "config.json").read_text())
    assert cfg["strategy"] == "addrop" and cfg["attribution"]["p"] == 0.5 and cfg["attribution"]["q"] == 0.3
    # cross-tuning: epoch 1 plain, epoch 2 AD-DROP; a bigger p drops more
    m = {r: _metrics(folder, r) for r in ("p0.2-q0.3-s0", "p0.5-q0.6-s0", "vanilla-s0")}
    assert [e["addrop_epoch"] for e in m["p0.2-q0.3-s0"]] == [False, True]
    assert 0 < m["p0.2-q0.3-s0"][1]["dropped_share"] < m["p0.5-q0.6-s0"][1]["dropped_share"]
    assert all(e["dropped_share"] == 0 for e in m["vanilla-s0"])
    # epoch 1 is plain in every cell: the same numbers as the baseline (same seed -> same head, data, dropout)
    assert m["p0.2-q0.3-s0"][0]["train_loss"] == m["vanilla-s0"][0]["train_loss"]
    assert m["p0.5-q0.6-s0"][0]["dev_loss"] == m["vanilla-s0"][0]["dev_loss"]


def test_table_has_per_cell_mean_std_seeds_and_delta(local_sweep):
    out, res, _ = local_sweep
    t = sweep_table(out / "s")
    assert list(t["kind"]) == ["baseline", "cell", "cell", "cell", "cell"]
    assert {"p", "q", "mean", "std", "n", "s0", "delta"} <= set(t.columns)
    assert t.attrs["metric"] == "accuracy" and t.attrs["which"] == "best"
    base = t.attrs["baseline"]
    row = t[(t["p"] == 0.5) & (t["q"] == 0.6)].iloc[0]
    best = max(e["dev_accuracy"] for e in _metrics(out / "s", "p0.5-q0.6-s0"))
    assert row["mean"] == pytest.approx(best) and row["n"] == 1 and row["std"] == 0
    assert row["delta"] == pytest.approx(best - base)
    last = sweep_table(out / "s", which="last")
    assert last.loc[1, "mean"] == pytest.approx(_metrics(out / "s", "p0.2-q0.3-s0")[-1]["dev_accuracy"])
    csv = (out / "s" / TABLE_FILE).read_text().splitlines()
    assert csv[0].startswith("kind,p,q,mean,std,n") and len(csv) == 6
    b = best_cell(t)
    assert b is not None and b["mean"] == t[t["kind"] == "cell"]["mean"].max()
    assert len(cell_runs(out / "s", 0.2, 0.6)) == 1 and [r.id for r in cell_runs(out / "s", None, None)] == ["vanilla-s0"]
    assert list_sweeps(out) == [out / "s"]
    assert progress(out / "s")["finished"] == 5


def test_loss_table_prefers_lower_values(local_sweep):
    out, _, _ = local_sweep
    t = sweep_table(out / "s", metric="loss")
    assert t.attrs["higher_is_better"] is False and t.attrs["metric"] == "loss"
    row = t[(t["p"] == 0.2) & (t["q"] == 0.3)].iloc[0]
    assert row["mean"] == pytest.approx(min(e["dev_loss"] for e in _metrics(out / "s", "p0.2-q0.3-s0")))
    assert best_cell(t)["mean"] == t[t["kind"] == "cell"]["mean"].min()
    heat = sweep_heatmap(t).data[0]
    assert heat.colorscale[0][1] != sweep_heatmap(sweep_table(out / "s")).data[0].colorscale[0][1]  # flipped
    with pytest.raises(UserError, match="no dev metric 'mcc'"):
        sweep_table(out / "s", metric="mcc")
    with pytest.raises(UserError, match="unknown score 'median'"):
        sweep_table(out / "s", which="median")


def test_heatmap_is_figure_6(local_sweep):
    out, _, _ = local_sweep
    t = sweep_table(out / "s")
    fig = sweep_heatmap(t)
    heat = fig.data[0]
    assert list(heat.x) == ["0.3", "0.6"] and list(heat.y) == ["0.2", "0.5"]  # columns q, rows p
    assert heat.zmid == 0
    z = [[v for v in row] for row in heat.z]
    expect = t[(t["p"] == 0.2) & (t["q"] == 0.6)]["delta"].iloc[0] * 100
    assert z[0][1] == pytest.approx(expect)
    assert heat.text[0][1] == f"{expect:+.2f}"
    # the best cell is outlined only when it beats the baseline beyond noise (tests/experiments/test_sweep_verdict.py)
    assert len(fig.layout.shapes) == (1 if sweep_verdict(t)["best"] is not None else 0)
    scaled = sweep_heatmap(t, scale="maxabs").data[0].z
    finite = [abs(v) for row in scaled for v in row if v is not None]
    assert not finite or max(finite) in (0.0, pytest.approx(1.0))
    with pytest.raises(UserError, match="unknown heatmap scale"):
        sweep_heatmap(t, scale="nope")


def test_rerun_skips_finished_cells_and_reruns_broken_ones(local_sweep):
    out, _, _ = local_sweep
    folder = out / "s"
    before = _metrics(folder, "p0.5-q0.6-s0")
    res = run_sweep(_spec(), out)
    assert res.ran == [] and len(res.skipped) == 5
    # a cell whose run failed (or was killed) runs again, with the same numbers
    status = folder / "p0.5-q0.6-s0" / "status.json"
    st = json.loads(status.read_text())
    st.update(status="failed", reason="killed for the test")
    status.write_text(json.dumps(st))
    todo, done = plan(_spec(), folder)
    assert [c.name for c in todo] == ["p0.5-q0.6-s0"] and len(done) == 4
    res = run_sweep(_spec(), out)
    assert res.ran == ["p0.5-q0.6-s0"]
    after = _metrics(folder, "p0.5-q0.6-s0")
    assert [e["train_loss"] for e in after] == [e["train_loss"] for e in before]


def test_extending_the_grid_merges_and_other_settings_are_refused(local_sweep):
    out, _, _ = local_sweep
    res = run_sweep(_spec(ps="0.2", qs="0.9"), out)
    assert res.ran == ["p0.2-q0.9-s0"] and "vanilla-s0" in res.skipped
    meta = json.loads((out / "s" / SWEEP_FILE).read_text())
    assert meta["grid"]["q"] == [0.3, 0.6, 0.9]
    t = sweep_table(out / "s")
    assert len(t) == 1 + 2 * 3  # the merged grid: the new column has one finished cell, the rest empty
    assert t[(t["p"] == 0.5) & (t["q"] == 0.9)]["n"].iloc[0] == 0
    with pytest.raises(UserError, match="other settings"):
        run_sweep(_spec(epochs=3), out)


def test_stop_between_cells_then_resume(tmp_path):
    calls = []
    res = run_sweep(_spec(name="stop", ps="0.3", qs="0.3,0.6"), tmp_path, on_cell=calls.append,
                    should_stop=lambda: len(calls) >= 1)
    assert res.stopped and len(calls) == 1
    # a stop during a run: that run is kept as stopped (not a failure) and runs again on resume
    flag = []
    res = run_sweep(_spec(name="stop", ps="0.3", qs="0.3,0.6"), tmp_path, should_stop=lambda: bool(flag),
                    on_epoch=lambda rec: flag.append(rec["run"]))
    assert res.stopped and not res.failed and res.ran == [] and flag == ["p0.3-q0.3-s0"]
    assert json.loads((tmp_path / "stop" / "p0.3-q0.3-s0" / "status.json").read_text())["status"] == "stopped"
    res = run_sweep(_spec(name="stop", ps="0.3", qs="0.3,0.6"), tmp_path)
    assert not res.stopped and res.ran == ["p0.3-q0.3-s0", "p0.3-q0.6-s0"] and res.skipped == ["vanilla-s0"]


def test_processes_give_the_same_numbers_as_inline(local_sweep, tmp_path):
    out, _, _ = local_sweep
    res = run_sweep(_spec(name="procs", ps="0.5", qs="0.6"), tmp_path, max_concurrent=2)
    assert not res.failed and sorted(res.ran) == ["p0.5-q0.6-s0", "vanilla-s0"]
    for rid in res.ran:
        a, b = _metrics(out / "s", rid), _metrics(tmp_path / "procs", rid)
        for x, y in zip(a, b):
            assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)
            assert x["dev_accuracy"] == y["dev_accuracy"]


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="backend"):
        run_sweep(_spec(), tmp_path, backend="slurm")
    with pytest.raises(UserError, match="max-concurrent"):
        run_sweep(_spec(), tmp_path, max_concurrent=0)
    with pytest.raises(UserError, match="ray-address"):
        run_sweep(_spec(), tmp_path, ray_address="auto")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "junk.txt").write_text("x")
    with pytest.raises(UserError, match="not a sweep folder"):
        run_sweep(_spec(), tmp_path)


def test_missing_ray_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UserError) as e:
        run_sweep(_spec(), tmp_path, backend="ray")
    assert str(e.value) == RAY_MISSING == "Ray is not installed: pip install 'ray[tune]'"
    assert not (tmp_path / "s").exists()  # nothing written
    assert main(["sweep", "--model", "tiny-bert", "--backend", "ray", "--out", str(tmp_path)]) == 2


# ------------------------------------------------------------------------------------------------- CLI

def test_cli_sweep_runs_and_resumes(tmp_path, capsys, monkeypatch):
    args = ["sweep", "--model", "tiny-bert", "--task", "demo", "--p", "0.3", "--q", "0.2:0.4:0.2", "--epochs", "2",
            "--train-size", "16", "--dev-size", "8", "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "sweep sweep-demo-tiny-bert: 1 p x 2 q x 1 seed(s) + baseline = 3 runs" in text
    assert "[3/3]" in text and "heatmap ->" in text
    folder = tmp_path / "sweep-demo-tiny-bert"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["p0.3-q0.2-s0", "p0.3-q0.4-s0", "vanilla-s0"]
    # a finished sweep resumes without checking the model again (reading its config imports transformers)
    import addrop.engine.models as models

    monkeypatch.setattr(models, "model_config", lambda name: pytest.fail("read the model's config"))
    assert main(args + ["--quiet"]) == 0
    assert "0 run(s) finished" in capsys.readouterr().out


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["sweep", "--p", "0.1:1.5:0.5", "--out", str(tmp_path)]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
    assert main(["sweep", "--seeds", "a", "--out", str(tmp_path)]) == 2


# ------------------------------------------------------------------------------------------------- Ray

def _ray_or_skip():
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        if _on_ci():
            pytest.fail("Ray is not installed (pip install 'ray[tune]'); the Ray backend test must run on CI")
        pytest.skip("Ray is not installed (pip install 'ray[tune]')")


@pytest.mark.slow
def test_ray_backend_matches_local(local_sweep, tmp_path):
    """A 2 x 2 grid + baseline through a local Ray instance: the same run records, the same numbers; then one
    cell whose record travels back to the driver (as on a cluster without a shared file system)."""
    _ray_or_skip()
    import ray

    from addrop.experiments.sweeps.ray_backend import init_ray

    out, _, _ = local_sweep
    started = init_ray()
    try:
        res = run_sweep(_spec(name="ray"), tmp_path, backend="ray", max_concurrent=1)
        assert not res.failed, res.failed
        names = ["vanilla-s0", "p0.2-q0.3-s0", "p0.2-q0.6-s0", "p0.5-q0.3-s0", "p0.5-q0.6-s0"]
        assert sorted(res.ran) == sorted(names)
        for rid in names:
            a, b = _metrics(out / "s", rid), _metrics(tmp_path / "ray", rid)
            assert len(a) == len(b) == 2
            for x, y in zip(a, b):
                for k in ("train_loss", "dev_loss", "dev_accuracy", "dropped_share"):
                    assert x[k] == pytest.approx(y[k], abs=1e-6), (rid, k)
        t_local, t_ray = sweep_table(out / "s"), sweep_table(tmp_path / "ray")
        cells = t_local[t_local["q"] != 0.9].reset_index(drop=True)
        assert list(cells["mean"]) == pytest.approx(list(t_ray["mean"]), abs=1e-9)
        # resume: nothing left to run
        res = run_sweep(_spec(name="ray"), tmp_path, backend="ray")
        assert res.ran == [] and len(res.skipped) == 5
        # shipped records: the trial writes into a private folder, the driver writes the files
        res = run_sweep(_spec(name="shipped", ps="0.5", qs="0.6", baseline=False), tmp_path, backend="ray",
                        ship_records=True)
        assert res.ran == ["p0.5-q0.6-s0"] and not res.failed
        shipped = _metrics(tmp_path / "shipped", "p0.5-q0.6-s0")
        assert [e["train_loss"] for e in shipped] == pytest.approx(
            [e["train_loss"] for e in _metrics(out / "s", "p0.5-q0.6-s0")], abs=1e-6)
        assert json.loads((tmp_path / "shipped" / "p0.5-q0.6-s0" / "status.json").read_text())["status"] == "finished"
    finally:
        if started:
            ray.shutdown()


def test_a_sweep_written_before_a_new_attribution_setting_still_resumes(tmp_path):
    from addrop.experiments.sweeps.local import prepare

    folder = prepare(_spec(), tmp_path)
    meta = json.loads((folder / SWEEP_FILE).read_text())
    meta["base"]["attribution"].pop("count")  # as written before the count rule existed
    (folder / SWEEP_FILE).write_text(json.dumps(meta))
    assert prepare(_spec(), tmp_path) == folder
    with pytest.raises(UserError, match="other settings"):
        prepare(_spec(attribution=AttributionConfig(method="ga", count="equal")), tmp_path)


def test_a_sweep_written_before_a_new_training_setting_still_resumes(tmp_path):
    """A sweep.json from before `layout` and `group_by_length` existed: the same sweep reopens (the old runs ran
    as their defaults do); a non-default value of a new setting is a difference, a layout is not (same numbers)."""
    from addrop.experiments.sweeps.local import prepare

    folder = prepare(_spec(), tmp_path)
    meta = json.loads((folder / SWEEP_FILE).read_text())
    for k in ("layout", "group_by_length"):
        meta["base"].pop(k)
    (folder / SWEEP_FILE).write_text(json.dumps(meta))
    assert prepare(_spec(), tmp_path) == folder
    assert prepare(_spec(layout="padded"), tmp_path) == folder
    (folder / SWEEP_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="group_by_length"):
        prepare(_spec(group_by_length=True), tmp_path)
