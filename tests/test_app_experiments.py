"""The prior, compare and sweeps pages through AppTest on synthetic run records (no training: cheap): the text
they show is computed from the records, the charts are titled by what they show, tables show every row, the
tiny models are marked untrained, and the sweep's two progress displays agree."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from addrop.config import AttributionConfig, TrainConfig
from addrop.engine.runs import RunWriter

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


from tests.test_app import _errors, env  # noqa: E402,F401 (env, autouse: the app's environment, a temporary runs dir)


def _page(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _write(root: Path, cfg: TrainConfig, epochs: list[dict]) -> None:
    with RunWriter(root, cfg.name, cfg.record()) as w:
        for e, rec in enumerate(epochs, start=1):
            w.log_epoch({"epoch": e, "addrop_epoch": False, "seconds": 1.0, "dropped_share": 0.0, **rec})


def _text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown) + " " + " ".join(c.value for c in at.caption)


def test_prior_page_summarises_the_records_and_quotes_the_paper_apart(env):
    group = env / "prior-synthetic"
    # the numbers: drop-low has the LOWEST dev loss; none parts from its clean loss with no mask at all
    last = {"none": (0.6264, 0.6002, 0.627), "drop-random": (0.62, 0.60, 0.60), "drop-low": (0.58, 0.57, 0.565),
            "drop-high": (0.66, 0.63, 0.64)}
    for s, (tl, cl, dl) in last.items():
        # synthetic records of minilm runs (a tiny model's would get no hint: it learns nothing, however long)
        cfg = TrainConfig(model="minilm", strategy=s, name=s, epochs=2,
                          attribution=AttributionConfig(method="ga", target="gold", p=0.3, layers=(0,)))
        _write(group, cfg, [{"train_loss": 0.69, "clean_train_loss": 0.69, "dev_loss": 0.69, "dev_accuracy": 0.5},
                            {"train_loss": tl, "clean_train_loss": cl, "dev_loss": dl, "dev_accuracy": 0.7}])
    at = _page("pages/prior.py")
    text = _text(at)
    assert "drop-low has fitted the training data fastest" in text
    assert "drop-high generalises worst by dev loss" in text and "No run has started to overfit" in text
    assert "The **Overfitting in view** setting (under Settings above) trains long enough" in text
    assert "The paper's finding." in text and "fits the training data fastest but generalises worst" in text
    assert "masked minus clean +0.0262" in text and "because the masks come from the gold" not in text
    assert "Keys dropped per row: equal" in text
    fig = at.get("plotly_chart")[0].proto.spec
    assert "dev loss per epoch, by strategy" in fig and "prior-synthetic\"" not in fig
    assert at.dataframe and at.dataframe[0].value.shape[0] == 8  # every row (4 runs x 2 epochs)


def test_compare_page_defaults_to_three_seeds_and_gives_a_verdict_with_spread(env):
    at = _page("pages/compare.py")
    assert at.session_state["cm_seeds"] == 3
    assert any("6 runs" in c.value and "example passes" in c.value for c in at.caption)
    one = _page("pages/compare.py", cm_seeds=1)
    assert any("One seed tells nothing" in c.value for c in one.caption)
    group = env / "compare-synthetic"
    for seed, diff in enumerate((0.02, 0.03, 0.04)):
        for strat in ("vanilla", "addrop"):
            cfg = TrainConfig(model="tiny-bert", strategy=strat, seed=seed, name=f"{strat}-s{seed}", epochs=2)
            acc = 0.7 + (diff if strat == "addrop" else 0.0)
            _write(group, cfg, [{"train_loss": 0.6, "dev_loss": 0.6, "dev_accuracy": 0.6},
                                {"train_loss": 0.5, "dev_loss": 0.55, "dev_accuracy": acc}])
    at = _page("pages/compare.py")
    text = _text(at)
    assert "+0.0300 ± 0.0100 (mean ± sd over 3 seeds; the same sign in every seed)" in text
    assert "AD-DROP is better on all 3 seeds" in text
    assert any("No run has started to overfit" in w.value for w in at.warning)
    assert "mean over 3 seeds" in at.get("plotly_chart")[0].proto.spec


def test_sweeps_page_says_no_cell_differs_marks_the_tiny_model_and_has_one_bar(env):
    import math

    from addrop.experiments.sweeps.local import prepare
    from addrop.experiments.sweeps.spec import SweepSpec

    base = TrainConfig(model="tiny-bert", task="demo", strategy="addrop", epochs=1)
    spec = SweepSpec(name="flat", base=base, ps="0.2,0.5", qs="0.3,0.6", seeds="0")
    folder = prepare(spec, env)
    for cfg in spec.cells():  # tiny random models learn nothing: accuracy 0.5, loss ln 2, in every cell
        _write(folder, cfg, [{"train_loss": math.log(2), "dev_loss": math.log(2), "dev_accuracy": 0.5}])
    at = _page("pages/sweeps.py")
    assert any(i.value.startswith("No cell differs from the baseline beyond noise") for i in at.info)
    assert not any(m.label == "best cell" for m in at.metric)
    bars = at.get("progress")
    assert len(bars) == 1 and "5/5 runs finished — 100%" in bars[0].proto.text
    assert any("untrained" in c.value for c in at.caption)
    model = at.sidebar.selectbox(key="model_choice")
    assert "tiny-bert (untrained)" in model.options


def test_prior_page_runs_the_count_rule_it_names(env):
    """The form's rule reaches the runs: reference makes drop-high drop more keys than drop-low, equal does not."""
    import json
    import time

    from addrop.studio.jobs import default_runner

    shares = {}
    for rule in ("reference", "equal"):
        at = _page("pages/prior.py", pr_train=16, pr_dev=8, pr_epochs=1, pr_count=rule, pr_keep=rule == "equal")
        assert any(f"Keys dropped per row: {rule}" in c.value for c in at.caption)
        at.button(key="pr_start").click()
        at.run()
        job = default_runner().current()
        if job is not None:
            job.wait(120)
        time.sleep(0.2)
        group = max((p for p in env.iterdir() if p.name.startswith("prior-")), key=lambda p: p.stat().st_mtime)
        for s in ("drop-high", "drop-low"):
            cfg = json.loads((group / s / "config.json").read_text())
            assert cfg["attribution"]["count"] == rule
            shares[rule, s] = json.loads((group / s / "metrics.jsonl").read_text().splitlines()[0])["dropped_share"]
            assert (group / s / "model.safetensors").is_file() == (rule == "equal")  # the weights toggle
        time.sleep(1.1)  # a new group name (they carry the time)
    assert shares["reference", "drop-high"] > shares["reference", "drop-low"]
    assert shares["equal", "drop-high"] == pytest.approx(shares["equal", "drop-low"])


def test_prior_page_runs_side_by_side_in_workers_started_as_it_is_drawn(env, monkeypatch):
    """ADDROP_APP_WORKERS=2 (unset: where it pays, studio.background.app_workers): drawing the page starts the
    worker processes, Start trains the four runs two at a time in them, and they stay for the next plan."""
    import json
    import os

    from addrop.experiments import parallel
    from addrop.studio.jobs import default_runner

    monkeypatch.setenv("ADDROP_APP_WORKERS", "2")
    try:
        at = _page("pages/prior.py", pr_train=16, pr_dev=8, pr_epochs=1)
        kept = parallel.kept_workers()
        assert kept is not None and kept["shape"][0] == 2 and kept["preload"][0] == "tiny-bert"
        assert "2 at a time, side by side" in at.button(key="pr_start").help
        assert any("2 runs at a time" in c.value or "seconds with a tiny model" in c.value for c in at.caption)
        at.button(key="pr_start").click()
        at.run()
        job = default_runner().current()
        assert job is not None
        job.wait(180)
        snap = job.snapshot()
        assert snap["status"] == "finished", snap["error"]
        group = next(p for p in env.iterdir() if p.name.startswith("prior-"))
        pids = {json.loads((group / r / "status.json").read_text())["pid"] for r in
                ("none", "drop-random", "drop-low", "drop-high")}
        assert len(pids) == 2 and os.getpid() not in pids
        assert parallel.kept_workers() == dict(kept, busy=False)  # kept for the next plan
    finally:
        parallel.release_workers()


def test_experiment_pages_fine_tune_the_pre_trained_base_of_a_fine_tuned_model(env):
    """A fine-tuned model in the sidebar (here a tiny-bert run's checkpoint; minilm-demo is the shipped one) is
    never trained again by the prior, compare or sweeps pages: they start from its base with a new head, and say
    so."""
    import json

    from addrop.engine.training import train
    from addrop.studio.jobs import default_runner

    ck = train(TrainConfig(model="tiny-bert", device="cpu", task="demo", epochs=1, train_size=16, dev_size=8,
                           batch_size=8, name="ck", save_weights=True), runs_dir=str(env))
    ref = f"run:{ck.path}"
    at = _page("pages/prior.py", model_choice=ref, pr_train=16, pr_dev=8, pr_epochs=1)
    assert at.sidebar.selectbox(key="model_choice").value == ref
    note = "Fine-tunes **tiny-bert** with a new classification head. The sidebar's"
    assert any(note in c.value for c in at.caption), [c.value for c in at.caption]
    at.button(key="pr_start").click()
    at.run()
    job = default_runner().current()
    if job is not None:
        job.wait(120)
    group = next(p for p in env.iterdir() if p.name.startswith("prior-"))
    assert {json.loads((group / s / "config.json").read_text())["model"]
            for s in ("none", "drop-random", "drop-low", "drop-high")} == {"tiny-bert"}
    at = _page("pages/compare.py", model_choice=ref)
    assert any(note in c.value for c in at.caption)
    at = _page("pages/sweeps.py", model_choice=ref)
    assert at.text_input[0].label == "Model" and at.text_input[0].value == "tiny-bert"
    # a model that is not a fine-tuned one is the one trained
    at = _page("pages/prior.py")
    assert any("Fine-tunes **tiny-bert**, the sidebar's model." in c.value for c in at.caption)


@pytest.mark.parametrize("page,prefix,runs", [("pages/prior.py", "pr", "4 runs × 6 epochs"),
                                              ("pages/compare.py", "cm", "2 runs × 6 epochs")])
def test_a_number_out_of_range_is_an_error_and_the_estimate_follows_every_field(env, page, prefix, runs):
    """In a form, the browser refused an out-of-range number with a red mark only, and Start then did nothing, said
    nothing; and the time estimate kept the values of the last start."""
    from addrop.studio.jobs import default_runner

    at = _page(page, **{f"{prefix}_seeds": 1} if prefix == "cm" else {})
    at.number_input(key=f"{prefix}_epochs").set_value(6)
    at.run()
    assert any(c.value.startswith(runs) for c in at.caption), [c.value for c in at.caption]
    at.number_input(key=f"{prefix}_batch").set_value(100000)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["Batch size: between 1 and 256, not 100,000."]
    assert at.button(key=f"{prefix}_start").disabled
    assert not any(c.value.startswith(runs) for c in at.caption)  # no estimate for settings that cannot run
    at.number_input(key=f"{prefix}_batch").set_value(16)
    at.run()
    assert not at.error and not at.button(key=f"{prefix}_start").disabled
    assert default_runner().current() is None


def test_prior_page_settings_fill_the_run_sizes_and_say_which_is_in_use(env):
    """The two settings' buttons fill the four run-size fields (PRIOR_SETTINGS, capped at the data); a caption says
    which setting the fields hold, or that they are the user's own."""
    from addrop.experiments import plans

    at = _page("pages/prior.py")
    keys = {"train_size": "pr_train", "dev_size": "pr_dev", "epochs": "pr_epochs"}

    def sizes():
        sizes = {k: at.number_input(key=key).value for k, key in keys.items()}
        return sizes | {"lr": at.select_slider(key="pr_lr").value}

    assert sizes() == plans.PRIOR_SETTINGS["quick"]
    assert any("below: the **Quick look** setting" in c.value for c in at.caption)
    at.button(key="pr_use_overfit").click()
    at.run()
    assert sizes() == plans.PRIOR_SETTINGS["overfit"]  # the demo data has 400 + 140 examples: nothing capped
    assert any("below: the **Overfitting in view** setting" in c.value for c in at.caption)
    est = next(c.value for c in at.caption if c.value.startswith("4 runs × 12 epochs on 128 + 140 examples"))
    # a contrast's runs: their weights are not kept unless asked, and the caption says what keeping them costs
    assert "The runs' weights are not kept (about" in est and "Keep each run's weights" in est
    at.toggle(key="pr_keep").set_value(True)
    at.run()
    assert any("Each run's weights are kept: about" in c.value for c in at.caption)
    at.number_input(key="pr_epochs").set_value(5)
    at.run()
    assert any("Examples, epochs and learning rate below: your own." in c.value for c in at.caption)
    at.button(key="pr_use_quick").click()
    at.run()
    assert sizes() == plans.PRIOR_SETTINGS["quick"] and not at.exception


def test_the_sweep_form_counts_its_runs_as_it_changes_and_starts_them(env):
    from addrop.studio.jobs import default_runner

    at = _page("pages/sweeps.py", sw_train=16, sw_dev=8)
    said = next(c.value for c in at.caption if "p ×" in c.value)
    assert said.startswith("10 runs, (3 p × 3 q + a vanilla baseline) × 1 seed, of 2 epochs on 16 + 8 examples (")
    assert "seconds with a tiny model" in said
    next(t for t in at.text_input if t.label == "p values").set_value("0.3")
    next(t for t in at.text_input if t.label == "q values").set_value("0.5")
    at.run()
    assert any(c.value.startswith("2 runs, (1 p × 1 q + a vanilla baseline) × 1 seed") for c in at.caption)
    for label, bad, good in (("p values", "0.3,x", "0.3"), ("Task", "sst2typo", "demo")):
        next(t for t in at.text_input if t.label == label).set_value(bad)
        at.run()
        assert _errors(at) and at.button(key="sw_start").disabled  # said before Start, and nothing to start
        next(t for t in at.text_input if t.label == label).set_value(good)
        at.run()
    at.button(key="sw_start").click()
    at.run()
    assert not _errors(at), _errors(at)
    job = default_runner().current() or default_runner().recent(1)[0]
    assert job.wait(120) and job.status == "finished", job.error
    assert (env / "sweep-demo-tiny-bert" / "table.csv").is_file()


def _live_view():
    import streamlit as st

    from addrop.studio.jobs import Job
    from pages import _jobs

    job = Job("demo")  # queued: shown as running
    job.update(fraction=0.25, message="run 1 of 4")
    draw = (lambda snap: st.markdown(f"curves at {snap['fraction']:.0%}")) if st.session_state.get("draws") else None
    _jobs.live_job(job, draw, key="demo")


@pytest.mark.parametrize("draws", [True, False])
def test_a_running_job_shows_its_progress_then_what_the_page_draws(env, draws):
    # two fragments (the bar every 2 s, the page's drawing every 6 s): both are there on the first run
    at = AppTest.from_function(_live_view, default_timeout=60)
    at.session_state["draws"] = draws
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "run 1 of 4 — 25%" in at.get("progress")[0].proto.text
    assert [m.label for m in at.metric] == ["Elapsed", "Remaining (estimate)"]
    assert [m.value for m in at.markdown if m.value.startswith("curves")] == (["curves at 25%"] if draws else [])


def test_the_server_does_not_collect_garbage_after_every_rerun():
    # Streamlit's default runs gc.collect() after every script run: about 0.2 s holding the GIL with torch and a
    # model loaded, every 2 s while a job's live view reruns (docs/performance.md)
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
