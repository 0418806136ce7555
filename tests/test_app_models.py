"""The app with trained models: the default follows the data, a model trained from the explorer opens in it, the
Across training and Deletion curves pages draw, the Runs page shows sizes and deletes."""
from __future__ import annotations

import pytest

from addrop.config import TrainConfig
from addrop.engine.training import train
from tests.test_app import _app, _charts, _errors, _ok, _wait_job, env  # noqa: F401 (env: the autouse fixture)


def test_a_model_trained_in_the_explorer_is_switched_to_and_listed(env):
    at = _app("pages/explorer.py")
    _ok(at)
    assert at.sidebar.selectbox(key="model_choice").value == "tiny-bert"
    assert any("Untrained classification head" in w.value for w in at.sidebar.warning)
    prior = _app("pages/prior.py")  # a page that fine-tunes a new head: the head is no problem there
    assert not any("Untrained" in w.value for w in prior.sidebar.warning)
    assert any("fine-tunes with a new head" in c.value for c in prior.sidebar.caption)
    at.button(key="train_model").click().run()
    _ok(at)
    _wait_job(at, timeout=300)
    at.run()
    _ok(at)
    choice = at.sidebar.selectbox(key="model_choice").value
    assert choice.startswith("run:") and str(env) in choice
    assert not any("Untrained" in w.value for w in at.sidebar.warning)
    assert _charts(at) >= 2  # the explorer draws with the trained model
    # the picker may cut a run's long label short: the caption below it has the whole of it
    label = at.sidebar.selectbox(key="model_choice").format_func(choice)
    assert any(c.value.startswith(label[len("run: "):] + ": the weights a run kept") for c in at.sidebar.caption)


def test_the_train_panel_does_not_show_another_data_set_s_model_as_this_one_s(env, glue_dir):
    at = _app("pages/explorer.py")
    at.button(key="train_model").click().run()
    _wait_job(at, timeout=300)
    at.run()
    _ok(at)
    done = [c.value for c in at.main.caption if c.value.startswith("epoch 3: train loss")]
    assert done  # the finished job's last epoch, under the panel
    at.sidebar.selectbox(key="data_source").set_value("glue").run()
    at.sidebar.text_input(key="data_dir").input(str(glue_dir)).run()
    at.sidebar.selectbox(key="data_task").set_value("sst-2").run()
    _ok(at)
    captions = [c.value for c in at.main.caption]
    assert not [c for c in captions if c.startswith("epoch 3: train loss")]
    assert any("was for other data" in c for c in captions), captions
    at.sidebar.selectbox(key="data_source").set_value("demo").run()
    assert [c.value for c in at.main.caption if c.value.startswith("epoch 3: train loss")] == done


def test_the_default_model_follows_the_data(monkeypatch):
    monkeypatch.delenv("ADDROP_DEFAULT_MODEL")
    from pages._common import default_model_for
    from addrop.engine.tasks import TASKS

    assert default_model_for(TASKS["demo"], {}) == "minilm-demo"
    found = {"run:/x/a": {"task": "sst-2", "num_labels": 2}, "run:/x/b": {"task": "mrpc", "num_labels": 2}}
    assert default_model_for(TASKS["mrpc"], found) == "run:/x/b"
    assert default_model_for(TASKS["cola"], found) == "minilm"
    # a prior experiment's runs are never the default: its drop-* runs trained with a contrast's masks, and its
    # none run is sized for the contrast (a few dozen examples); a comparison's runs and the explorer's may be
    prior = {f"run:/p/{s}": {"task": "cola", "num_labels": 2, "strategy": s}
             for s in ("drop-high", "drop-low", "drop-random", "none")}
    assert default_model_for(TASKS["cola"], prior) == "minilm"
    assert default_model_for(TASKS["cola"], prior | {"run:/c/v": {"task": "cola", "num_labels": 2,
                                                                  "strategy": "vanilla"}}) == "run:/c/v"


def test_checkpoints_trained_on_other_data_are_not_offered(env):
    import json
    from dataclasses import replace
    from pathlib import Path

    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=1, train_size=16, dev_size=8, batch_size=8,
                      save_weights=True, name="mine")
    train(cfg, runs_dir=env)
    other = Path(train(replace(cfg, name="elsewhere"), runs_dir=env).path)
    conf = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**conf, "task_name": "sst-2"}))  # as if trained on SST-2
    at = _app("pages/explorer.py")
    _ok(at)
    options = at.sidebar.selectbox(key="model_choice").options
    labels = " ".join(options)
    assert "mine" in labels and "elsewhere" not in labels
    assert any("1 kept checkpoint trained on other data is not listed" in c.value for c in at.sidebar.caption)


@pytest.fixture
def probe_run(env):
    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=2, train_size=32, dev_size=16, batch_size=8, lr=1e-3,
                      probes=3, save_weights=True, name="probed")
    return train(cfg, runs_dir=env)


def test_across_training_draws_and_moves_with_the_slider(probe_run):
    at = _app("pages/training.py")
    _ok(at)
    assert _charts(at) == 4 and not _errors(at)
    said = " ".join(m.value for m in at.markdown)  # the drift in words, against what unrelated rankings give
    assert "mean rank correlation" in said and "for a random region of the same size" in said
    at.slider(key="tr_epoch").set_value(0).run()
    _ok(at)
    assert _charts(at) == 4
    at.selectbox(key="tr_other").set_value(str(probe_run.path)).run()  # the same run twice: one column
    _ok(at)


def test_deletion_curves_draw(env):
    at = _app("pages/faithfulness.py")
    _ok(at)
    at.number_input(key="fa_n").set_value(8).run()
    at.button(key="fa_go").click().run()
    _ok(at)
    assert _charts(at) == 1 and not _errors(at)
    assert any("p = 0.1" in m.value for m in at.markdown)
    assert not at.get("progress")  # the finished work's bar is gone, not left at "batch k/k"
    top = at.session_state["fa_result"][1].settings["layers"][-1]
    assert any(m.value.startswith(f"**8 dev sentences, layers 0-{top} (all), ") for m in at.markdown)


def test_deletion_curves_say_where_ga_and_low_stand_in_the_measure_chosen(env):
    at = _app("pages/faithfulness.py", model_choice="minilm-demo", fa_n=8)  # a trained head: the curves move
    at.button(key="fa_go").click().run()
    _ok(at)
    said = [m.value for m in at.markdown]
    assert "What the table shows for the change of the predicted class's probability:" in " ".join(said)
    bullets = [m for m in said if m.startswith("- p = ")]
    assert len(bullets) == 6 and all("GA (what AD-DROP uses)" in b and "low (dropping GA's lowest positions)" in b
                                     for b in bullets), bullets  # GA placed and low summarised at every p > 0
    at.radio(key="fa_measure").set_value("flip_rate").run()  # the sentences follow the measure chosen
    _ok(at)
    said = [m.value for m in at.markdown]
    assert "What the table shows for the share of predictions that flip:" in " ".join(said)
    flips = [m for m in said if m.startswith("- p = ")]
    assert len(flips) == 6 and not any("probability" in b for b in flips), flips
    assert all("GA (what AD-DROP uses)" in b and "flip" in b for b in flips), flips
    assert "flip_rate_hi" in at.dataframe[0].value.columns  # the interval the sentences cite is in the table


def test_deletion_curves_check_the_layers_before_any_progress(env):
    at = _app("pages/faithfulness.py", fa_n=4, fa_methods=["ga"])
    at.text_input(key="fa_layers").input("abc").run()
    at.button(key="fa_go").click().run()
    _ok(at)
    assert _errors(at) == ["layers must be 'all' or comma-separated integers such as 0,3; got 'abc'"]
    assert not at.get("progress") and _charts(at) == 0  # no "starting" bar left above the error
    at.text_input(key="fa_layers").input("99").run()  # out of range: found with the model, still before the bar
    at.button(key="fa_go").click().run()
    assert [e for e in _errors(at) if "layer 99 is out of range" in e] and not at.get("progress")
    at.text_input(key="fa_layers").input("-1").run()  # negative: from the top, and said so in the result
    at.button(key="fa_go").click().run()
    _ok(at)
    top = at.session_state["fa_result"][1].settings["layers"]
    assert len(top) == 1 and not _errors(at)
    assert any(m.value.startswith(f"**4 dev sentences, layer {top[0]} (-1: the last), ") for m in at.markdown)


def test_runs_page_shows_sizes_and_deletes(probe_run, env):
    user = _app("pages/explorer.py", model_choice=f"run:{probe_run.path}")  # another tab, using the run
    _ok(user)
    assert not any(w.icon == ":material/delete:" for w in user.sidebar.warning)
    at = _app("pages/runs.py")
    _ok(at)
    assert any(c.value.startswith("1 run, ") and "MB on disk" in c.value for c in at.caption)
    at.checkbox(key="rn_del_sure").check().run()
    at.button(key="rn_del").click().run()
    _ok(at)
    assert not (env / "probed").exists()
    assert any(s.value.startswith("Deleted this run:") and "probed" in s.value for s in at.success)
    assert at.session_state["rn_del_sure"] is False  # the tick does not carry over to the next run shown
    user.run()  # the other tab: the loaded weights still work, and it is said that their run is gone
    _ok(user)
    assert any(w.icon == ":material/delete:" and "was deleted" in w.value for w in user.sidebar.warning)


def test_the_train_panel_keeps_every_epoch_on_request(env):
    at = _app("pages/explorer.py")
    at.checkbox(key="train_every_epoch").check().run()
    at.button(key="train_model").click().run()
    _wait_job(at, timeout=300)
    at.run()
    _ok(at)
    run = next(p for p in env.iterdir() if p.name.startswith("model-demo-"))
    assert sorted(f.name for f in run.glob("model.epoch*.safetensors")) == [f"model.epoch{e}.safetensors"
                                                                          for e in (1, 2, 3)]


def test_a_stopped_model_run_switches_only_where_it_kept_weights(env):
    # the explorer's Train panel switches the sidebar to the run only if it wrote weights (pages/_train.py)
    from addrop.engine.training import Callbacks
    from pages._train import kept_weights, stop_note

    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=3, train_size=16, dev_size=8, batch_size=8,
                      save_weights=True)
    for stop_after, kept in ((0, False), (3, True)):  # 2 steps an epoch: the 4th check is in epoch 2
        calls = []
        stop = Callbacks(should_stop=lambda: calls.append(1) or len(calls) > stop_after)
        res = train(cfg, runs_dir=env, callbacks=stop)
        result = {"status": res.status, "path": res.path, "metrics": res.metrics}
        assert res.status == "stopped" and kept_weights(result) == kept
        note = stop_note(result, "tiny-bert")
        assert ("epoch 1, its last finished epoch" in note) if kept else ("sidebar stays on **tiny-bert**" in note)
        if not kept:  # a run in the sidebar is named, not given as its path
            assert "stays on **model-demo-1@2**" in stop_note(result, "run:/somewhere/runs/model-demo-1@2")
