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
from addrop.experiments.replication.notes import SHORT_LABELS, cross_tuning_notes, intervals_note
from addrop.experiments.replication.report import REPORT_FILE, answer, markdown, run_scores, study_report, t_interval
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
    def row(setting, mean, low, high, arm="AD-DROP (GA)", which="best"):
        return {"setting": setting, "arm": arm, "which": which, "seeds": 5, "mean": mean, "low": low, "high": high}

    rep = {"level": 0.95, "model": "minilm", "paired": [
        row("a", 0.02, 0.01, 0.03), row("b", -0.02, -0.03, -0.01), row("c", 0.0, -0.01, 0.01),
        row("d", 0.01, None, None), row("a", 0.5, 0.4, 0.6, which="last"), row("a", 0.5, 0.4, 0.6, arm="ablation: rd")]}
    first, note = answer(rep).split("\n\n")
    assert first == ("AD-DROP (GA) against vanilla, paired by seed and scored at the best epoch: better than "
                     "vanilla in a; worse in b; no clear difference in c: the 95% interval of the paired "
                     "difference includes 0; too few seeds to tell in d. The mean differences run from "
                     "-0.0200 to +0.0200 over 4 settings (minilm).")
    assert note == intervals_note(rep)  # then every interval of the report that excludes 0, ablations and all
    assert answer({"level": 0.95, "model": "m", "paired": []}) is None


def test_the_intervals_note_names_each_interval_that_excludes_0_and_the_chance_rate():
    def row(setting, arm, which, low, high, seeds=5):
        return {"setting": setting, "arm": arm, "which": which, "seeds": seeds, "mean": (low + high) / 2 if
                low is not None else 0.01, "low": low, "high": high}

    paired = [row("a", "AD-DROP (GA)", w, -0.01, 0.02) for w in ("best", "last", "half")]
    paired += [row("a", "ablation: rd", "best", -0.03, -0.01), row("a", "ablation: rd", "last", 0.01, 0.05),
               row("a", "ablation: rd", "half", -0.01, 0.01), row("b", "AD-DROP (GA)", "best", None, None, 1)]
    for level in (0.95, 0.9):
        rep = {"level": level, "model": "m", "paired": paired}
        note = intervals_note(rep)
        computed = [d for d in paired if d["low"] is not None]
        excl = [d for d in computed if d["low"] > 0 or d["high"] < 0]
        assert note.startswith(f"Of the {len(computed)} paired intervals in this report") and len(excl) == 2
        assert f", {len(excl)} exclude 0: " in note
        for d in computed:
            said = f"{d['arm']} on {d['setting']} at {SHORT_LABELS[d['which']]}, "
            if d in excl:
                way = "higher" if d["low"] > 0 else "lower"
                assert f"{said}{way} than vanilla ({d['mean']:+.4f}, {round(level * 100)}% interval " in note
            else:
                assert said not in note
        assert f"about 1 interval in {round(1 / (1 - level))} excludes 0 by chance alone" in note
        assert f"({len(computed) * (1 - level):.1f} of {len(computed)} expected" in note
        assert "no correction for multiple comparisons" in note
    quiet = [d for d in paired if d["arm"] != "ablation: rd"]
    none = intervals_note({"level": 0.95, "model": "m", "paired": quiet})
    assert none.startswith(f"None of the {len(quiet) - 1} paired intervals") and "than vanilla" not in none
    assert intervals_note({"level": 0.95, "model": "m", "paired": quiet[-1:]}) is None  # no interval computed


# ------------------------------------------------------------------ the report's sentences, on synthetic records
# A tiny study with an ablation without cross-tuning, run once; each test copies it and gives its runs dev curves
# of its own, so that each sentence's condition holds in one copy and not in another.
NOTES_PLAN = {**TINY, "ablation": {"task": "demo", "seeds": [0, 1],
                                   "arms": {"rd": {"method": "rd"}, "no-ct": {"cross_tuning": False}}}}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("notes") / "study"
    run_study(ReplicationPlan(json.loads(json.dumps(NOTES_PLAN)), device="cpu"), out)
    return out


@pytest.fixture
def study(tiny_study, tmp_path):
    import shutil

    return Path(shutil.copytree(tiny_study, tmp_path / "study"))


def cell_of(r) -> tuple:
    """What a run of the study is: ('vanilla' | 'AD-DROP (GA)' | an ablation arm, seed) for main and ablation runs,
    ('vanilla',) or (cross-tuning, p, q) for selection runs."""
    stage, name = r.group.split("/")
    if stage == "selection":
        if r.config["strategy"] == "vanilla":
            return ("vanilla",)
        return (not name.endswith("-no-ct"), r.config["attribution"]["p"], r.config["attribution"]["q"])
    if stage == "main":
        return ("vanilla" if r.config["strategy"] == "vanilla" else "AD-DROP (GA)", r.config["seed"])
    return (name.removeprefix("demo-"), r.config["seed"])


def give_scores(out, score) -> None:
    """Every run gets a dev curve over the epochs score(cell_of(run)) lists (accuracy; its best is its last epoch
    only where the list ends on its highest value); both dev halves follow it."""
    for r in list_runs(out):
        curve = score(cell_of(r))
        lines = [{"epoch": e, "train_loss": 0.5, "dev_loss": 0.5, "dev_accuracy": v, "half_a_accuracy": v,
                  "half_b_accuracy": v} for e, v in enumerate(curve, 1)]
        (r.path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def arms_score(shift: dict, held_out: dict | None = None):
    """Main and ablation runs: vanilla 0.6 + 0.01 x seed at its best epoch, an arm that plus shift[arm][seed];
    selection runs: held_out[cell] (0.5 where not given)."""
    def score(cell):
        if len(cell) == 2 and isinstance(cell[1], int):
            arm, seed = cell
            v = 0.6 + 0.01 * seed + (shift.get(arm, {}).get(seed, 0.0) if arm != "vanilla" else 0.0)
            return [v - 0.05, v]
        v = (held_out or {}).get(cell, 0.5)
        return [v - 0.05, v]
    return score


NOISE = {0: 0.05, 1: -0.04}  # paired differences of both signs: the interval includes 0


def test_the_report_names_every_interval_that_excludes_0(study):
    for rd, way in (({0: 0.10, 1: 0.11}, "higher"), ({0: -0.10, 1: -0.105}, "lower"), (NOISE, None)):
        give_scores(study, arms_score({"AD-DROP (GA)": NOISE, "rd": rd, "no-ct": NOISE}))
        rep = study_report(study)
        computed = [d for d in rep["paired"] if d["low"] is not None]
        excluded = [d for d in computed if d["low"] > 0 or d["high"] < 0]
        text, said = markdown(rep), answer(rep)
        n = len(computed)
        assert n == 9 and f"{n * 0.05:.1f} of {n} expected" in text and "1 interval in 20" in said
        if way is None:
            assert not excluded and f"None of the {n} paired intervals in this report" in said
            assert "than vanilla (" not in text + said
            continue
        assert {d["arm"] for d in excluded} == {"ablation: rd"} and len(excluded) == 3  # best, last, half-dev
        assert f"Of the {n} paired intervals in this report" in text and f"{len(excluded)} exclude 0" in said
        for d in excluded:
            line = f"ablation: rd on demo at {SHORT_LABELS[d['which']]}, {way} than vanilla ({d['mean']:+.4f}"
            assert line in text and line in said
        assert "AD-DROP (GA) on demo at" not in said


def test_the_p_q_table_says_where_vanilla_beat_every_grid_cell(study):
    cells = {(True, 0.3, 0.3): 0.6, (True, 0.3, 0.5): 0.7, (False, 0.3, 0.3): 0.95}  # no-ct cells do not count
    for vanilla, says in ((0.9, "above every cell"), (0.7, "level with the best"), (0.65, None)):
        give_scores(study, arms_score({}, {**cells, ("vanilla",): vanilla}))
        rep = study_report(study)
        sel = [r for r in rep["selection"] if r["cross_tuning"]]
        van = next(r["held_out_best"] for r in sel if r["strategy"] == "vanilla")
        best = max(r["held_out_best"] for r in sel if r["strategy"] == "addrop")
        assert van == pytest.approx(vanilla) and best == pytest.approx(0.7)
        text = markdown(rep)
        row = next(line for line in text.splitlines() if line.startswith("| demo | 0.3 |"))
        if says is None:
            assert van < best and "vanilla" not in row and "On the held-out slice (" not in text
        elif says == "above every cell":
            assert row.endswith(f"| vanilla {van:.4f} above every cell |")
            assert (f"vanilla scored above every AD-DROP grid cell in demo ({van:.4f} against at most {best:.4f})"
                    in text)
            assert f"On the held-out slice ({rep['holdout']} training examples held out, seed 100, one run" in text
        else:
            assert van == best and row.endswith(f"| vanilla {van:.4f} level with the best |")
            assert f"vanilla was level with the best cell in demo ({van:.4f})" in text


def test_the_cross_tuning_grid_is_said_in_words(study):
    on = {(True, 0.3, 0.3): 0.6, (True, 0.3, 0.5): 0.7}
    for off, leader in (({(False, 0.3, 0.3): 0.8, (False, 0.3, 0.5): 0.7}, "without"),
                        ({(False, 0.3, 0.3): 0.55, (False, 0.3, 0.5): 0.65}, "with"),
                        ({(False, 0.3, 0.3): 0.7, (False, 0.3, 0.5): 0.6}, None)):
        give_scores(study, arms_score({"AD-DROP (GA)": NOISE, "rd": NOISE, "no-ct": NOISE}, {**on, **off}))
        rep = study_report(study)
        grid = {(r["cross_tuning"], r["p"], r["q"]): r["held_out_best"] for r in rep["scatter"]}
        assert grid == pytest.approx({**on, **off})
        notes = cross_tuning_notes(rep)
        assert len(notes) == 1 and notes[0] in markdown(rep)
        note = notes[0]
        assert note.startswith(f"demo, held-out slice ({rep['holdout']} training examples held out, seed 100, one "
                               "run per cell; accuracy at the best epoch): ")
        best_on, best_off = max(on.values()), max(off.values())
        if leader is None:
            assert f"the best cells with and without cross-tuning are level ({best_on:.4f})" in note
            assert "Figure 4" not in note
        else:
            gap = abs(best_off - best_on)
            assert f"the best cell {leader} cross-tuning, {max(best_on, best_off):.4f} " in note
            assert f"is {gap:.4f} ({round(gap * rep['holdout'])} of {rep['holdout']} examples) above" in note
            assert ("the opposite of" if leader == "without" else "the direction of") in note
        up = sum(off[(False, p, q)] > v for (_, p, q), v in on.items())
        down = sum(off[(False, p, q)] < v for (_, p, q), v in on.items())
        assert (f"without cross-tuning is higher in {up}, level in {len(on) - up - down} and lower in {down} of "
                f"{len(on)}") in note
        assert "One run per cell and no interval: this is a description of the grid, not a test" in note
        noct = next(d for d in rep["paired"] if d["arm"] == "ablation: no-ct" and d["which"] == "best")
        assert f"AD-DROP without cross-tuning (ablation: no-ct) is {noct['mean']:+.4f} against vanilla" in note
    for key in ("scatter", "selection"):  # no grid without cross-tuning: no sentence
        rep[key] = [r for r in rep[key] if r["cross_tuning"]]
    assert cross_tuning_notes(rep) == [] and "Cell by cell" not in markdown(rep)


def test_the_mean_best_epoch_says_out_of_how_many_epochs(study):
    # one run stopped after its first epoch, one has its best epoch first; the others' best is their last (2)
    short = {("vanilla", 0): [0.6], ("AD-DROP (GA)", 0): [0.7, 0.65]}
    give_scores(study, lambda cell: short.get(cell) or arms_score({"AD-DROP (GA)": NOISE})(cell))
    rep = study_report(study)
    recs = list_runs(study / "main" / "demo", recursive=False)
    cap, patience = recs[0].config["epochs"], recs[0].config["early_stopping"]
    text = markdown(rep)
    assert "| mean best epoch | epochs run (of cap) |" in text
    for arm, strategy in (("vanilla", "vanilla"), ("AD-DROP (GA)", "addrop")):
        runs = [r for r in recs if r.config["strategy"] == strategy]
        ran = sum(len(r.metrics) for r in runs) / len(runs)
        best = sum(max(m, key=lambda x: x["dev_accuracy"])["epoch"] for m in (r.metrics for r in runs)) / len(runs)
        row = next(line for line in text.splitlines() if line.startswith(f"| demo | {arm} |"))
        assert row.endswith(f"| {best:.1f} | {ran:.1f} of {cap} |")
        assert best < cap and (ran < cap or strategy == "addrop")  # three different numbers in the row
    assert (f"Each run trains at most its setting's epoch cap (demo {cap}); early stopping ends it sooner, once "
            f"{patience} epochs pass without a better dev metric") in text
    rep["arms"] = []  # no main or ablation run: nothing to count epochs of
    assert "Mean best epoch:" not in markdown(rep)
