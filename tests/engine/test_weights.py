"""Checkpoints in, everywhere a model is taken: `run:PATH[@E]`, the shipped trained default, mismatches refused."""
from __future__ import annotations

import json

import pytest
import torch

from addrop.config import AttributionConfig, TrainConfig
from addrop.core.attribution import attribute
from addrop.engine.batching import encode
from addrop.engine.data.demo import load_demo
from addrop.engine.models import load_model
from addrop.engine.runs import RunWriter
from addrop.engine.training import evaluate, train
from addrop.engine.weights import parse_run_ref, trained_info
from addrop.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(loaded):
    return dict(loaded.tokenizer(["a gripping, beautifully shot film", "dull"], padding=True, return_tensors="pt"))


def _saved(tmp_path, name="tiny-bert", labels=2):
    """A tiny model whose weights differ from a fresh load (so a loader that ignored them would be caught)."""
    loaded = load_model(name, "cpu", num_labels=labels, seed=0)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    with RunWriter(tmp_path, "ck", {"model": name, "num_labels": labels, "task_name": "demo"}) as w:
        w.save_weights(loaded.model.state_dict())
    return loaded, tmp_path / "ck"


def test_checkpoint_round_trip_gives_the_same_logits_and_attribution(tmp_path):
    mem, folder = _saved(tmp_path)
    disk = load_model(f"run:{folder}", "cpu")
    fresh = load_model("tiny-bert", "cpu")
    batch = _batch(mem)
    cfg = AttributionConfig(method="ga")
    a, b, c = (attribute(m, batch, cfg) for m in (mem, disk, fresh))
    assert torch.equal(a.logits, b.logits) and torch.equal(a.scores, b.scores)
    assert not torch.allclose(a.logits, c.logits)  # the weights really came from the file
    assert disk.name == f"run:{folder}" and disk.ctrl is not None


def test_a_trained_run_reloads_to_its_recorded_dev_loss(tmp_path):
    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=2, train_size=32, dev_size=16, batch_size=8, lr=1e-3,
                      save_weights=True, save_every_epoch=True, name="r")
    run = train(cfg, runs_dir=tmp_path)
    spec, _, dev = load_demo()
    from addrop.engine.data import subset

    dev = subset(dev, 16, 0)
    for ref, epoch in ((f"run:{run.path}", 2), (f"run:{run.path}@1", 1)):
        loaded = load_model(ref, "cpu")
        loss, _ = evaluate(loaded, encode(loaded.tokenizer, dev, 128), dev.labels, spec, 16)
        assert loss == pytest.approx(run.metrics[epoch - 1]["dev_loss"], rel=1e-5)


def test_mismatched_checkpoints_are_one_line_errors(tmp_path):
    _, folder = _saved(tmp_path)
    with pytest.raises(UserError, match="needs 3"):
        load_model(f"run:{folder}", "cpu", num_labels=3)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"] = "tiny-roberta"  # another base: the tensors do not fit
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="does not fit its base model") as e:
        load_model(f"run:{folder}", "cpu")
    assert "\n" not in str(e.value)
    cfg.pop("num_labels")
    cfg["model"] = "tiny-bert"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="number of labels"):
        load_model(f"run:{folder}", "cpu", num_labels=3)
    with pytest.raises(UserError, match="no weights model.epoch4"):
        load_model(f"run:{folder}@4", "cpu")
    with pytest.raises(UserError, match="no run folder"):
        load_model(f"run:{tmp_path / 'nothing'}", "cpu")
    with pytest.raises(UserError, match="epoch number"):
        parse_run_ref("run:x@last")


def test_the_trained_default_loads_offline_and_reaches_its_stated_dev_accuracy():
    loaded = load_model("minilm-demo", "cpu")
    info = trained_info("minilm-demo")
    spec, _, dev = load_demo()
    _, metrics = evaluate(loaded, encode(loaded.tokenizer, dev, 128), dev.labels, spec, 70)
    assert metrics["accuracy"] >= 0.95
    assert metrics["accuracy"] == pytest.approx(info["dev_accuracy"], abs=1e-3)
    with pytest.raises(UserError, match="demo task"):
        load_model("minilm-demo", "cpu", num_labels=3)


def test_checks_before_work_read_a_checkpoint_s_base_config(tmp_path):
    from addrop.engine.models import model_config

    _, folder = _saved(tmp_path)
    assert model_config(f"run:{folder}").num_hidden_layers == 2
    assert model_config("minilm-demo").num_hidden_layers == 6
    from addrop.cli import main

    assert main(["train", "--model", f"run:{folder}", "--strategy", "addrop", "--layers", "5", "--out",
                 str(tmp_path / "runs")]) == 2  # layer 5 of a 2-layer checkpoint: refused before any run
    assert not (tmp_path / "runs").exists()


def test_pretrained_base_follows_fine_tuned_models_down_to_the_model_no_run_trained(tmp_path):
    from addrop.engine.weights import TRAINED, pretrained_base

    _, first = _saved(tmp_path)  # a checkpoint fine-tuned from tiny-bert
    with RunWriter(tmp_path, "again", {"model": f"run:{first}", "num_labels": 2}) as w:  # ... and from that one
        w.save_weights(load_model(f"run:{first}", "cpu").model.state_dict())
    assert pretrained_base(f"run:{tmp_path / 'again'}") == pretrained_base(f"run:{first}") == "tiny-bert"
    assert pretrained_base(f"run:{first}@1") is None  # no such epoch kept: unreadable, so nothing to replace it by
    for name, (base, _, _) in TRAINED.items():
        assert pretrained_base(name) == base and pretrained_base(base) is None
    assert pretrained_base("tiny-bert") is None and pretrained_base("bert-base-uncased") is None


def test_a_kept_checkpoint_has_one_reference_whichever_way_it_is_found(tmp_path, monkeypatch):
    """The job that trains a model hands the sidebar a reference that must be in its list of kept checkpoints
    (a relative runs folder once gave 'run:runs/x' there and 'run:/abs/runs/x' from the job: the sidebar then fell
    back to its free-text field)."""
    from addrop.engine.weights import list_checkpoints, run_ref
    from addrop.studio.background import train_job
    from tests.experiments.test_plans import _FakeJob

    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(model="tiny-bert", device="cpu", task="demo", epochs=1, train_size=16, dev_size=8,
                      batch_size=8, name="kept", save_weights=True, save_every_epoch=True)
    res = train_job(_FakeJob(), cfg, "runs")
    refs = [c["ref"] for c in list_checkpoints("runs")]
    assert res["ref"] in refs and run_ref(tmp_path / "runs" / "kept", 1) in refs
    assert res["stopped"] is False
    assert load_model(res["ref"], "cpu").num_layers == load_model("tiny-bert", "cpu").num_layers


def test_an_at_sign_in_a_parent_folder_is_part_of_the_path(tmp_path):
    from addrop.engine.weights import run_ref

    _, folder = _saved(tmp_path / "jane@corp")
    assert parse_run_ref(run_ref(folder)) == (folder.resolve(), None)
    assert parse_run_ref(run_ref(folder, 2)) == (folder.resolve(), 2)
    assert load_model(run_ref(folder), "cpu").num_layers == 2
    with pytest.raises(UserError, match="must be an epoch number"):
        parse_run_ref(f"run:{tmp_path}/no-such@x")
