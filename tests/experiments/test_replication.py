"""The replication study on a tiny plan (tiny-bert, the demo data, 2 epochs): the runner resumes and skips finished
runs, main waits for its selection, the report is the records' numbers, the CLI answers argument errors in one
line with exit 2."""
from __future__ import annotations

import json
import os
import socket
import math
from collections import Counter
from pathlib import Path
import subprocess
import sys

import pytest

from addrop.cli import main
from addrop.engine.runs import list_runs
from addrop.errors import UserError
from addrop.experiments.replication.plan import ReplicationPlan, Unit
from addrop.experiments.replication.report import REPORT_FILE, run_scores, study_report, t_interval
from addrop.experiments.replication.runner import chosen, run_study, survey

ROOT = Path(__file__).resolve().parents[2]
PLAN_FILE_PATH = ROOT / "docs" / "replication-plan.json"
PLAN_ARG = str(PLAN_FILE_PATH)
TINY = {
    "version": 1, "name": "tiny", "model": "tiny-bert",
    "train": {"batch_size": 8, "lr": 1e-3, "lr_schedule": "constant", "warmup_ratio": 0.0, "max_length": 32,
              "early_stopping": 5, "stop_on": "metric"},
    "addrop": {"method": "ga", "target": "pseudo", "layers": "paper", "cross_tuning": True},
    "split_seed": 0,
    "tasks": {"demo": {"task": "demo", "train_size": 16, "dev_size": 12, "epochs": 2}},
    "selection": {"holdout": 10, "p": [0.3], "q": [0.3, 0.5], "seeds": [100], "baseline": True,
                  "without_cross_tuning": ["demo"]},
    "main": {"seeds": [0, 1]},
    "ablation": {"task": "demo", "seeds": [0, 1], "arms": {"rd": {"method": "rd"}}},
}
# runs: selection 1 + 2, selection without cross-tuning 2, main 2 x 2, ablation 2
N_RUNS = 11


def _plan(**kw) -> ReplicationPlan:
    return ReplicationPlan(json.loads(json.dumps(TINY)), device="cpu", **kw)


@pytest.fixture
def trainings(monkeypatch):
    """The runs engine.training.train finished (every run of a sweep goes through it)."""
    import addrop.engine.training as training

    calls = []
    real = training.train

    def counted(cfg, *a, **kw):
        res = real(cfg, *a, **kw)
        if res.status == "finished":
            calls.append(cfg.name)
        return res

    monkeypatch.setattr(training, "train", counted)
    return calls


def test_resumes_and_skips_finished_runs(tmp_path, trainings):
    out = tmp_path / "study"
    plan = _plan()
    with pytest.raises(UserError, match="selection/demo"):  # main alone, before its selection: one clear line
        run_study(plan, out, only=["main/demo"])
    stop_after = 3
    first = run_study(plan, out, should_stop=lambda: len(trainings) >= stop_after)
    assert first.stopped and len(trainings) == stop_after and len(first.ran) == stop_after
    assert survey(plan, out)[0].finished == 3  # the selection of demo: 1 vanilla + 2 cells
    # a run of the group in progress in a live process (this one): the finished ones still count
    group = next(p for p in (out / "selection").iterdir() if p.is_dir())
    busy = group / "p0.3-q0.5-s100"
    saved = (busy / "status.json").read_text()
    (busy / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid(),
                                                  "host": socket.gethostname()}))
    assert survey(plan, out)[0].finished == 2 and survey(plan, out)[0].total == 3
    (busy / "status.json").write_text(saved)
    second = run_study(plan, out)
    assert not second.stopped and not second.failed and not second.waiting
    assert len(trainings) == N_RUNS and len(second.ran) == N_RUNS - stop_after
    third = run_study(plan, out)  # everything finished: nothing trains again
    assert len(trainings) == N_RUNS and not third.ran and len(third.skipped) == N_RUNS
    recs = list_runs(out)
    assert len(recs) == N_RUNS and all(r.status == "finished" for r in recs)
    # selection runs validate on training examples held out; main runs on dev
    sel = [r for r in recs if r.group.startswith("selection")]
    assert all(r.config["holdout"] == 10 and r.config["num_dev"] == 10 for r in sel)
    main_runs = [r for r in recs if r.group.startswith("main")]
    assert all(r.config["holdout"] is None and r.config["num_dev"] == 12 for r in main_runs)
    c = chosen(plan, out, "demo")
    assert all(r.config["attribution"]["q"] == c.q for r in main_runs if r.config["strategy"] == "addrop")
    # two fixed halves of dev are scored every epoch
    assert all(k in main_runs[0].metrics[0] for k in ("half_a_accuracy", "half_b_accuracy"))


def scramble(out, seed: int = 0) -> None:
    """Give the main and ablation runs of a finished tiny study distinct, seeded dev numbers over three epochs
    (a tiny model's are often all equal, and a report check on equal numbers could not fail)."""
    import random

    rng = random.Random(seed)
    for r in list_runs(out):
        if r.group.startswith(("main", "ablation")):
            lines = [{"epoch": e, "train_loss": 0.5, "dev_loss": 0.5, "dev_accuracy": rng.random(),
                      "half_a_accuracy": rng.random(), "half_b_accuracy": rng.random()} for e in (1, 2, 3)]
            (r.path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_report_is_computed_from_the_records(tmp_path):
    out = tmp_path / "study"
    run_study(_plan(), out)
    scramble(out)
    rep = study_report(out)
    main_dir = out / "main" / "demo"
    recs = {(r.config["strategy"], r.config["seed"]): r for r in list_runs(main_dir, recursive=False)}
    for arm, strategy in (("vanilla", "vanilla"), ("AD-DROP (GA)", "addrop")):
        row = next(a for a in rep["arms"] if a["arm"] == arm)
        best = [max(m["dev_accuracy"] for m in recs[(strategy, s)].metrics) for s in (0, 1)]
        last = [recs[(strategy, s)].metrics[-1]["dev_accuracy"] for s in (0, 1)]
        assert row["best_mean"] == pytest.approx(sum(best) / 2) and row["last_mean"] == pytest.approx(sum(last) / 2)
        assert row["best_sd"] == pytest.approx(abs(best[0] - best[1]) / math.sqrt(2))
    d = next(x for x in rep["paired"] if x["arm"] == "AD-DROP (GA)" and x["which"] == "best")
    diffs = [max(m["dev_accuracy"] for m in recs[("addrop", s)].metrics)
             - max(m["dev_accuracy"] for m in recs[("vanilla", s)].metrics) for s in (0, 1)]
    assert d["per_seed"] == {0: pytest.approx(diffs[0]), 1: pytest.approx(diffs[1])}
    assert d["mean"] == pytest.approx(sum(diffs) / 2) and d["mean"] != 0
    h = next(x for x in rep["paired"] if x["arm"] == "AD-DROP (GA)" and x["which"] == "half")
    assert h["per_seed"][0] == pytest.approx(run_scores(recs[("addrop", 0)].metrics, "accuracy")["half"]
                                             - run_scores(recs[("vanilla", 0)].metrics, "accuracy")["half"])
    assert any(x["arm"] == "ablation: rd" for x in rep["paired"])
    assert {r["cross_tuning"] for r in rep["scatter"]} == {True, False}
    assert rep["chosen"]["demo"]["p"] == 0.3
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    assert main(["replicate", str(tmp_path / "tiny.json"), "--out", str(out), "--report"]) == 0
    text = (out / REPORT_FILE).read_text()
    assert f"{d['mean']:+.4f}" in text and (out / "report.html").is_file()


def test_half_dev_figure_and_interval():
    ms = [{"epoch": 1, "dev_accuracy": 0.5, "half_a_accuracy": 0.9, "half_b_accuracy": 0.1},
          {"epoch": 2, "dev_accuracy": 0.6, "half_a_accuracy": 0.2, "half_b_accuracy": 0.8}]
    s = run_scores(ms, "accuracy")
    assert s["best"] == 0.6 and s["last"] == 0.6 and s["best_epoch"] == 2
    assert s["half"] == pytest.approx((0.1 + 0.2) / 2)  # chosen on a (epoch 1) scored on b, and the other way
    m, sd, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and sd == 1.0 and hi - m == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)


def test_plan_checks_and_estimate():
    plan = ReplicationPlan.load(PLAN_FILE_PATH)
    assert len([c for u in plan.units() for c in plan.sweep(u, 0.1, 0.1).cells()]) == 104
    total = sum(plan.seconds(c) for u in plan.units() for c in plan.sweep(u, 0.1, 0.1).cells())
    assert 5.0 * 3600 < total < 6.0 * 3600  # docs/replication.md: 19,535 s
    assert [u.label for u in plan.select(["main/cola", "selection"])][-1] == "main/cola"
    with pytest.raises(UserError, match="stage"):
        plan.select(["nope/cola"])
    bad = json.loads(json.dumps(TINY))
    bad["tasks"]["demo"]["lr_typo"] = 1
    with pytest.raises(UserError, match="lr_typo"):
        ReplicationPlan(bad)
    assert Unit("ablation", "demo", "rd").label == "ablation/demo-rd"


@pytest.mark.parametrize("args, says", [
    (["replicate", "missing.json"], "no plan file"),
    (["replicate", PLAN_ARG, "--only", "bogus/cola", "--dry-run"], "stage"),
    (["replicate", PLAN_ARG, "--dry-run", "--report"], "one of"),
])
def test_argument_errors_are_one_line_exit_2_before_torch(args, says):
    code = ("import sys; from addrop.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0]


@pytest.mark.slow
def test_ray_backend_gives_the_local_records(tmp_path):
    pytest.importorskip("ray")
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    run_study(_plan(), local, only=["selection/demo"])
    res = run_study(_plan(), ray_out, only=["selection/demo"], backend="ray")
    assert len(res.ran) == 5 and not res.failed  # both selection groups of demo

    def scores(out):
        return {r.id: [m["dev_accuracy"] for m in r.metrics] for r in list_runs(out / "selection" / "demo")}

    assert scores(ray_out) == scores(local)
    assert run_study(_plan(), ray_out, only=["selection/demo"], backend="ray").ran == []  # resumed: nothing left


def test_the_plan_s_data_on_glue(glue_dir):
    """Every setting of docs/replication-plan.json on the real files (no training): the sizes it promises, the
    selection's validation slice drawn from the training split (not dev), the same dev subset for every seed."""
    from addrop.engine.models import load_model
    from addrop.engine.training import load_splits, prepare_data

    plan = ReplicationPlan.load(PLAN_FILE_PATH, data_dir=str(glue_dir))
    tok = load_model("tiny-bert").tokenizer
    for setting, row in plan.tasks.items():
        cfg = plan.config(setting)
        splits = load_splits(cfg)
        n_train = row.get("train_size") or 2 * row["shots"]
        devs = []
        for seed in (0, 1):
            d = prepare_data(plan.config(setting, seed=seed), tok, splits)
            assert len(d.train) == n_train and len(d.dev) == row["dev_size"]
            devs.append(d.dev.texts)
        assert devs[0] == devs[1]
        sel = prepare_data(plan.config(setting, holdout=plan.holdout, seed=100), tok, splits)
        assert len(sel.dev) == plan.holdout and len(sel.train) == n_train

        def rows(split):  # examples as a multiset (the files repeat some sentences)
            return Counter(zip(split.texts, split.pairs or [None] * len(split), split.labels))

        # the held-out slice and the selection's training examples are distinct training examples
        assert not (rows(sel.train) + rows(sel.dev)) - rows(splits[1])


def test_the_answer_sorts_settings_by_where_their_interval_lies():
    from addrop.experiments.replication.report import answer

    def row(setting, mean, low, high, arm="AD-DROP (GA)", which="best"):
        return {"setting": setting, "arm": arm, "which": which, "seeds": 5, "mean": mean, "low": low, "high": high}

    rep = {"level": 0.95, "model": "minilm", "paired": [
        row("a", 0.02, 0.01, 0.03), row("b", -0.02, -0.03, -0.01), row("c", 0.0, -0.01, 0.01),
        row("d", 0.01, None, None), row("a", 0.5, 0.4, 0.6, which="last"), row("a", 0.5, 0.4, 0.6, arm="ablation: rd")]}
    assert answer(rep) == ("AD-DROP (GA) against vanilla, paired by seed and scored at the best epoch: better than "
                           "vanilla in a; worse in b; no clear difference in c: the 95% interval of the paired "
                           "difference includes 0; too few seeds to tell in d. The mean differences run from "
                           "-0.0200 to +0.0200 over 4 settings (minilm).")
    assert answer({"level": 0.95, "model": "m", "paired": []}) is None
