"""The Streamlit app through streamlit.testing.v1.AppTest: every page renders, the explorer draws its charts,
tiny training runs finish and show their curves, bad input shows an error message instead of an exception.

The tiny model (ADDROP_DEFAULT_MODEL=tiny-bert) and a temporary runs folder (ADDROP_RUNS_DIR) keep it fast.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = {"pages/home.py": "AD-DROP studio", "pages/explorer.py": "Attribution explorer",
         "pages/prior.py": "Prior experiment", "pages/compare.py": "AD-DROP vs vanilla", "pages/runs.py": "Runs",
         "pages/replication.py": "Replication study"}


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    # AppTest resets Streamlit's pages/-folder flag before every run (pages/_compat.py says why that matters)
    from pages import _compat

    _compat.patch_for_apptest(monkeypatch)
    runs = tmp_path / "runs"
    monkeypatch.setenv("ADDROP_DEFAULT_MODEL", "tiny-bert")
    monkeypatch.setenv("ADDROP_RUNS_DIR", str(runs))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = st_config.get_option("client.showErrorDetails")
    st_config.set_option("client.showErrorDetails", "full")  # real messages if something does break
    yield runs
    st_config.set_option("client.showErrorDetails", before)
    from addrop.studio.jobs import default_runner

    job = default_runner().current()
    if job is not None:  # never leave a job running for the next test
        job.stop()
        job.wait(60)


def _app(page: str | None = None, params: dict | None = None, **state) -> AppTest:
    """A new session: `params` in its address (as a reload or a link starts one), `state` set before its first run,
    then `page` opened."""
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def _wait_job(at: AppTest, timeout: float = 120) -> AppTest:
    """Rerun the page until its job has ended (the page shows a success, warning or error box)."""
    end = time.time() + timeout
    while time.time() < end:
        time.sleep(0.5)
        at.run()
        _ok(at)
        if any("Finished in" in s.value for s in at.success):
            return at
        if any("Stopped" in w.value for w in at.warning):
            return at
        assert not _errors(at), _errors(at)
    raise AssertionError("the job did not end in time")


def test_every_page_renders():
    at = _app()
    _ok(at)
    assert at.title[0].value == "AD-DROP studio"
    assert any("tiny-bert" in c.value for c in at.sidebar.caption)  # the model in use, in the sidebar
    assert at.sidebar.selectbox(key="model_choice").value == "tiny-bert"
    assert at.get("latex"), "the page opens with the paper's equations"
    for page, title in PAGES.items():
        at.switch_page(page)
        at.run()
        _ok(at)
        assert at.title[0].value == title
        assert not _errors(at), (page, _errors(at))


def test_sweeps_page_in_navigation():
    assert (ROOT / "pages" / "sweeps.py").is_file()
    at = _app()
    _ok(at)
    at.switch_page("pages/sweeps.py")  # raises when st.navigation did not register it
    at.run()
    _ok(at)
    assert at.title[0].value == "p × q sweeps" and not _errors(at), _errors(at)


def test_explorer_draws_every_chart():
    at = _app("pages/explorer.py")
    _ok(at)
    assert not _errors(at)
    assert _charts(at) >= 3  # one head, the grid, the mask effect (+ the backend difference unless exactly 0)
    labels = [m.label for m in at.metric]
    assert {"Prediction", "Attributed class c", "Tokens", "Positions dropped", "p(c), AD-DROP mask"} <= set(labels)
    assert "Largest relative difference" not in labels  # the Captum cross-check runs on demand
    text = " ".join(m.value for m in at.markdown)
    assert "under the AD-DROP mask" in text and "regularizer" not in text  # computed sentences, no general claim
    # tiny-bert's head is untrained: said beside the numbers, not only in the sidebar
    assert any("classification head is untrained" in w.value for w in at.main.warning)
    captions = " ".join(m.value for m in at.caption)
    assert "positions are dropped in rows that cannot act" in captions  # GA's top layer, said on the page
    drops = next(m for m in at.metric if m.label == "Positions dropped")
    assert ", rows that act" in str(drops.proto.body) + str(drops.proto.delta)
    at.button(key="ex_cmp").click()
    at.run()
    labels = [m.label for m in at.metric]
    assert "Largest relative difference" in labels  # native vs captum cross-check
    assert float(next(m.value for m in at.metric if m.label == "Largest relative difference")) < 1e-4
    assert len(at.get("download_button")) == 4
    assert at.table and at.table[0].value.shape[0] == 3, "the mask-effect table (no mask, AD-DROP, random)"
    # a mask from the lowest attributions is not AD-DROP's: the metrics, the table and the sentences say which it is
    at.selectbox(key="ex_mode").set_value("low").run()
    _ok(at)
    assert "p(c), low-region mask" in [m.label for m in at.metric]
    assert "low-region mask" in list(at.table[0].value.index)
    text = " ".join(m.value for m in at.markdown)
    assert "this is not AD-DROP's mask" in text and "under the AD-DROP mask" not in text
    at.selectbox(key="ex_mode").set_value("high").run()
    # another head, IGA through Captum, a resample: still fine
    at.selectbox(key="ex_head").set_value(1)
    at.selectbox(key="ex_method").set_value("iga")
    at.run()
    at.radio(key="ex_backend").set_value("captum")
    at.button(key="ex_resample").click()
    at.run()
    _ok(at)
    assert not _errors(at)
    assert at.session_state["ex_seed"] == 1
    assert _charts(at) >= 3


def _places(node, path=()):
    """(delta path, element type) of every element under `node`: the place Streamlit knows an element by."""
    for i, child in sorted(getattr(node, "children", {}).items()):
        yield path + (i,), child.type
        yield from _places(child, path + (i,))


def test_explorer_charts_keep_their_place_when_the_method_changes():
    """GA shows a note on the top layer's idle rows that AA does not: the elements after it must keep their place
    (a chart that moves is drawn anew in the browser, the grid's 0.5 MB included), and so must they for RD,
    which has no train-mode toggle."""
    at = _app("pages/explorer.py")
    _ok(at)
    assert "rows that cannot act" in " ".join(m.value for m in at.caption)  # the note is there with GA

    def charts():
        return [p for p, kind in _places(at.main) if kind == "plotly_chart"]

    ga = charts()
    assert len(ga) >= 3
    for method in ("aa", "rd", "ga"):
        at.selectbox(key="ex_method").set_value(method)
        at.run()
        _ok(at)
        assert charts() == ga, method
    assert "rows that cannot act" in " ".join(m.value for m in at.caption)


def test_explorer_sentence_pair():
    at = _app("pages/explorer.py", ex_use_pair=True, ex_pair="And here is the second sentence.")
    _ok(at)
    assert not _errors(at)
    tokens = int(next(m.value for m in at.metric if m.label == "Tokens"))
    at.toggle(key="ex_use_pair").set_value(False)
    at.run()
    assert int(next(m.value for m in at.metric if m.label == "Tokens")) < tokens


def test_explorer_pass_overlap_says_what_its_numbers_mean():
    at = _app("pages/explorer.py", ex_passes=True)
    _ok(at)
    assert not _errors(at)
    said = " ".join(m.value for m in at.caption)
    assert "Region overlap (Jaccard: 1 = the same candidate positions, 0 = none in common)" in said
    assert "dropout's randomness" in said


def test_explorer_example_from_the_data_set_and_gold_label():
    at = _app("pages/explorer.py", ex_source="Pick from the data set", ex_example=3)
    _ok(at)
    at.selectbox(key="ex_target").set_value("gold")
    at.run()
    _ok(at)
    assert not _errors(at)
    assert _charts(at) >= 3


def test_explorer_empty_and_long_text():
    at = _app("pages/explorer.py", ex_text="   ")
    _ok(at)
    assert any("empty" in e for e in _errors(at))
    at.text_area(key="ex_text").set_value("great " * 600)
    at.run()
    _ok(at)
    assert any("longer than" in w.value for w in at.warning)
    assert _charts(at) >= 2


@pytest.mark.parametrize("task", ["sts-b", "mrpc"])
def test_explorer_on_glue_regression_and_pairs(glue_dir, task):
    at = _app("pages/explorer.py", data_source="glue", data_task=task, data_dir=str(glue_dir),
              ex_source="Pick from the data set", ex_example=0)
    _ok(at)
    assert not _errors(at), _errors(at)
    assert _charts(at) >= 3
    assert any(task in c.value for c in at.sidebar.caption)
    at.radio(key="ex_source").set_value("Type your own")
    at.run()
    _ok(at)
    assert not _errors(at), _errors(at)


def test_start_here_example_opens_the_explorer():
    at = _app()
    at.button(key="home_start").click()  # "Show me an example"
    at.run()
    _ok(at)
    assert at.title[0].value == "Attribution explorer"
    assert any("Start-here example" in i.value for i in at.info)
    assert _charts(at) >= 3


@pytest.mark.parametrize("name, message", [("no/such/thing/here", "unknown model"),
                                           ("acme/not-a-model", "cannot load"),
                                           ("./no-such-folder", "does not exist")])
def test_bad_model_shows_an_error(name, message):
    at = _app("pages/explorer.py", model_choice="other (Hugging Face id or folder)", model_custom=name)
    _ok(at)
    assert any(message in e for e in _errors(at)), _errors(at)
    at.switch_page("pages/prior.py")
    at.run()
    _ok(at)
    assert any(message in e for e in _errors(at))


def test_bad_and_good_csv():
    at = _app(data_source="csv")
    _ok(at)
    at.sidebar.file_uploader[0].set_value(("one.csv", b"text,label\na,1\nb,1\nc,1\n", "text/csv"))
    at.run()
    _ok(at)
    assert any("only one class" in e for e in _errors(at)), _errors(at)
    at.sidebar.file_uploader[0].set_value(("junk.csv", b"\x00\xff\xfe garbage", "text/csv"))
    at.run()
    _ok(at)
    assert _errors(at)
    rows = "".join(f"sentence {i} is {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(20))
    at.sidebar.file_uploader[0].set_value(("mine.csv", ("text,label\n" + rows).encode(), "text/csv"))
    at.run()
    _ok(at)
    assert not _errors(at)
    assert any("csv" in c.value and "train" in c.value for c in at.sidebar.caption)


def test_the_explorer_says_when_the_data_did_not_load():
    at = _app("pages/explorer.py", data_source="csv")
    at.sidebar.file_uploader[0].set_value(("one.csv", b"text,label\na,1\nb,1\nc,1\n", "text/csv"))
    at.run()
    _ok(at)
    assert any("data did not load" in w.value and "only one class" in w.value for w in at.main.warning)
    assert _charts(at) >= 1  # the text is still explained


@pytest.mark.parametrize("page, prefix", [("pages/prior.py", "pr"), ("pages/compare.py", "cm")])
def test_run_sizes_kept_from_a_larger_dataset_are_cut_to_this_one(page, prefix):
    # fields kept from a larger dataset (or typed into session state) never ask for more examples than loaded
    at = _app(page, **{f"{prefix}_train": 10 ** 6, f"{prefix}_dev": 0})
    _ok(at)
    from addrop.engine.data import load_data

    _, train, dev = load_data("demo", "demo")
    assert at.session_state[f"{prefix}_train"] == len(train)
    assert at.session_state[f"{prefix}_dev"] == 1


def test_prior_experiment_runs_and_shows_curves(env):
    at = _app("pages/prior.py", pr_train=32, pr_dev=16, pr_epochs=1, pr_layers=[7])  # layer 7: out of range
    _ok(at)
    assert at.session_state["pr_layers"] == [0]  # reset to a layer this model has, and said so
    assert any(c.value.startswith("Layers masked were set back to layer 0: tiny-bert has 2 layers (0 to 1).")
               for c in at.caption), [c.value for c in at.caption]
    at.button(key="pr_start").click()
    at.run()
    _ok(at)
    assert not _errors(at), _errors(at)
    _wait_job(at)
    assert _charts(at) >= 1
    groups = [p for p in env.iterdir() if p.name.startswith("prior-")]
    assert len(groups) == 1
    runs = sorted(p.name for p in groups[0].iterdir() if p.is_dir())
    assert runs == ["drop-high", "drop-low", "drop-random", "none"]
    assert (groups[0] / "curves.html").is_file()
    from addrop.engine.precision import resolve_precision

    ran = json.loads((groups[0] / "drop-low" / "config.json").read_text())["precision"]
    assert ran == resolve_precision("auto", "cpu")  # the page's default, what it came to on this machine
    assert f"Precision of the runs: {ran}." in " ".join(c.value for c in at.caption)
    # a new session (think: after a restart) reopens it, on this page and on the Runs page
    again = _app("pages/prior.py")
    _ok(again)
    assert any(s.value == "Reopen an experiment" for s in again.subheader)
    assert _charts(again) >= 1
    runs_page = _app("pages/runs.py")
    _ok(runs_page)
    assert _charts(runs_page) >= 1 and runs_page.dataframe
    # a vanilla run has no p or q: its cells read as the app's mark for a missing value, not Streamlit's "None"
    assert all(d.proto.placeholder == "\u2013" for d in runs_page.dataframe)


def test_a_reopened_comparison_counts_only_seeds_whose_runs_finished(env):
    # seed 1's vanilla run stopped during its 2nd epoch: its last epoch is not the comparison's last epoch
    from dataclasses import replace

    from addrop.config import TrainConfig
    from addrop.engine.training import Callbacks, train

    base = TrainConfig(model="tiny-bert", task="demo", epochs=2, train_size=16, dev_size=8, batch_size=8,
                       cross_tuning=False)
    for strategy, seed in (("vanilla", 0), ("addrop", 0), ("vanilla", 1)):
        calls = []
        stop = Callbacks(should_stop=lambda: seed == 1 and (calls.append(1) or len(calls) > 2))
        cfg = replace(base, strategy=strategy, seed=seed, name=f"{strategy}-s{seed}")
        train(cfg, runs_dir=str(env / "compare-x"), callbacks=stop)
    at = _app("pages/compare.py")
    _ok(at)
    said = " ".join(c.value for c in at.caption)
    assert "Left out of the verdict and the tables below (a seed counts once both its runs have finished): seed 1: " \
           "vanilla stopped" in said
    table = next(d.value for d in at.dataframe if "seeds" in d.value.columns)
    assert list(table["seeds"]) == [1, 1] and list(table["epochs"]) == [2, 2]


def test_compare_runs_and_reports_cost(env):
    at = _app("pages/compare.py", cm_train=32, cm_dev=16, cm_epochs=2, cm_seeds=1)
    at.button(key="cm_start").click()
    at.run()
    _ok(at)
    _wait_job(at)
    assert _charts(at) >= 1
    assert any(m.label == "AD-DROP epoch / vanilla epoch" for m in at.metric)
    group = next(p for p in env.iterdir() if p.name.startswith("compare-"))
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == ["addrop-s0", "vanilla-s0"]
    again = _app("pages/compare.py")  # a new session reopens it
    _ok(again)
    assert any(s.value == "Reopen a comparison" for s in again.subheader)
    assert again.selectbox(key="cm_reopen").value == group.name and _charts(again) >= 1


def test_busy_server_says_so_and_stop_is_recorded(env):
    from addrop.studio.jobs import default_runner

    release = threading.Event()
    blocker = default_runner().submit("someone else's job", lambda job: release.wait(60), owner="session other")
    try:
        at = _app("pages/prior.py", pr_train=32, pr_dev=16, pr_epochs=1)
        assert any("Another job is running" in i.value for i in at.info)
        at.button(key="pr_start").click()
        at.run()
        _ok(at)
        assert any(e.startswith("busy:") for e in _errors(at)), _errors(at)
    finally:
        release.set()
        blocker.wait(30)
    # now it starts; stopping leaves a record marked stopped
    at = _app("pages/prior.py", pr_train=64, pr_dev=16, pr_epochs=20)  # long enough that the stop comes first
    at.button(key="pr_start").click()
    at.run()
    _ok(at)
    job = default_runner().current()
    assert job is not None
    end = time.time() + 60  # stop once the first run has finished an epoch (then there is a summary to read)
    while not job.snapshot()["progress"].get("epochs") and not job.done and time.time() < end:
        time.sleep(0.05)
    # another tab, whose sidebar has no data (its GLUE folder field emptied): the job, its Stop and the earlier
    # experiments still show, below the data error
    other = _app("pages/prior.py", data_source="glue", data_dir="")
    _ok(other)
    assert any("no data is loaded" in e for e in _errors(other)), _errors(other)
    assert any(s.value == "This experiment" for s in other.subheader)
    assert any(c.value.startswith("Started in another session (session ") for c in other.caption)
    assert any(s.value == "Reopen an experiment" for s in other.subheader)
    other.button(key="stop:prior").click()  # the stop, pressed there
    other.run()
    _wait_job(at)
    assert any("Stopped" in w.value for w in at.warning)
    assert job.done
    other.run()  # the tab that stopped it sees it stopped, not nothing
    assert any(s.value == "Latest experiment" for s in other.subheader)
    assert any("Stopped after" in w.value for w in other.warning)
    said = " ".join(m.value for m in other.markdown)
    assert "This experiment did not run to its end (" in said and "drop-high did not start" in said
    about = next(c.value for c in other.caption if c.value.startswith("prior-"))  # what it trained, in one line
    assert " on demo · 64 train / 16 dev · 20 epochs · " in about and "None" not in about, about
    from addrop.engine.runs import list_runs

    statuses = {r.id: r.status for r in list_runs(env)}
    assert "stopped" in statuses.values()


def test_cached_model_stays_pristine():
    import torch

    from addrop.engine.models import load_model

    at = _app("pages/explorer.py")
    _ok(at)
    from pages._common import cached_model

    cached = cached_model("tiny-bert", "cpu", 2)
    fresh = load_model("tiny-bert", "cpu", num_labels=2, seed=0)
    a, b = cached.model.state_dict(), fresh.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not cached.model.training
    assert all(p.grad is None for p in cached.model.parameters())


def test_explorer_names_the_prediction_with_the_data_s_own_classes(glue_dir):
    """The same model and text on other data: the prediction is named with the new data's classes, as the
    attributed class is (a cached analysis once kept the demo's 'negative' beside MRPC's 'not_equivalent')."""
    def named(at):
        return {m.label: m.value for m in at.metric if m.label in ("Prediction", "Attributed class c")}

    at = _app("pages/explorer.py")
    assert set(named(at).values()) <= {"negative", "positive"} and len(named(at)) == 2
    at.session_state["data_source"], at.session_state["data_task"] = "glue", "mrpc"
    at.session_state["data_dir"] = str(glue_dir)
    at.run()
    at.radio(key="ex_source").set_value("Type your own")
    at.run()
    _ok(at)
    assert set(named(at).values()) <= {"not_equivalent", "equivalent"} and len(named(at)) == 2, named(at)
    assert any("with the second one empty the model reads the first alone" in c.value for c in at.caption)


def test_numbers_out_of_range_are_said_not_ignored():
    # a number field's own min/max would keep showing the typed value while the page used the previous one
    at = _app("pages/explorer.py", ex_seed=-5)
    _ok(at)
    assert any("Seed: between 0 and 1,000,000, not -5." in e.value for e in at.error)
    at = _app("pages/faithfulness.py", fa_n=0, fa_q=0.0)
    _ok(at)
    said = [e.value for e in at.error]
    assert any(s.startswith("Dev sentences (N): between 4 and") and s.endswith("not 0.") for s in said), said
    assert "q: between 0.05 and 1, not 0." in said and at.button(key="fa_go").disabled


def test_a_long_attribution_says_about_how_long_it_will_take(monkeypatch):
    # the estimate scales the last attribution of the same method in this session (pages/_explorer_view.py)
    import streamlit as st

    shown = []

    class Spy:
        def __init__(self, text, **kw):
            shown.append((text, kw))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(st, "spinner", Spy)
    at = _app("pages/explorer.py")
    _ok(at)
    assert shown and shown[-1][1].get("show_time") is True and "About" not in shown[-1][0]
    key = next(k for k in at.session_state["ex_timings"])
    at.session_state["ex_timings"] = {key: (4, 1.0)}  # as if 4 tokens had taken a second
    at.text_area(key="ex_text").set_value("a much longer sentence " * 4).run()
    _ok(at)
    assert "About" in shown[-1][0] and "judging by the last GA attribution here (1.0 s for 4 tokens)" in shown[-1][0]


@pytest.mark.parametrize("page, prefix", [("pages/prior.py", "pr"), ("pages/compare.py", "cm")])
def test_a_run_size_typed_out_of_range_is_reported_not_changed(page, prefix):
    at = _app(page)
    _ok(at)
    for typed, said in ((999_999, "between 1 and 400, not 999,999"), (0, "between 1 and 400, not 0")):
        at.number_input(key=f"{prefix}_train").set_value(typed)
        at.run()
        assert at.number_input(key=f"{prefix}_train").value == typed  # kept as typed, not silently cut
        assert any(f"Training examples: {said}." in e.value for e in at.error), _errors(at)
        assert at.button(key=f"{prefix}_start").disabled


def test_an_experiment_stopped_before_its_first_epoch_says_so_instead_of_waiting_for_curves(env):
    from addrop.studio.jobs import default_runner

    for page, prefix, said in (("pages/prior.py", "pr", "This experiment did not run to its end ("),
                               ("pages/compare.py", "cm", "No epoch of this comparison ended")):
        at = _app(page, **{f"{prefix}_train": 64, f"{prefix}_dev": 16, f"{prefix}_epochs": 20})
        at.button(key=f"{prefix}_start").click()
        at.run()
        _ok(at)
        job = default_runner().current()
        job.stop()  # at once: no epoch can end
        _wait_job(at)
        captions = [c.value for c in at.caption]
        assert any(c.startswith(said) for c in captions), captions
        assert not any("The curves appear" in c for c in captions)
