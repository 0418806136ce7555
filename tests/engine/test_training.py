"""The trainer: every strategy, the cross-tuning schedule, reproducibility, the loaded model left untouched."""
from __future__ import annotations

import json
import math

import pytest
import torch

from addrop.config import AttributionConfig, STRATEGIES, TrainConfig
from addrop.engine.models import load_model
from addrop.engine.runs import list_runs, load_run
from addrop.core.algorithm import drops_for
from addrop.engine.training import Callbacks, masks_in_epoch, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw) -> TrainConfig:
    base = dict(model="tiny-bert", task="demo", epochs=2, train_size=32, dev_size=16, batch_size=8, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_and_records_finite_losses(tmp_path, strategy):
    res = train(_cfg(strategy=strategy, attribution=AttributionConfig(layers=(0,))), runs_dir=str(tmp_path))
    assert res.status == "finished", res.reason
    assert [r["epoch"] for r in res.metrics] == [1, 2]
    for r in res.metrics:
        for k in ("train_loss", "dev_loss", "dev_accuracy", "seconds", "dropped_share"):
            assert math.isfinite(r[k]), (k, r)
        assert ("clean_train_loss" in r) == (strategy in ("none", "drop-high", "drop-low", "drop-random"))
    rec = load_run(res.path)
    assert rec.status == "finished" and rec.config["strategy"] == strategy
    att = json.loads((tmp_path / res.id / "config.json").read_text())["attribution"]
    assert (att["layers"] == [0]) if strategy not in ("vanilla", "none") else att is None


@pytest.mark.parametrize("method", ["ga", "iga", "aa", "rd"])
def test_addrop_with_each_attribution_drops_on_even_epochs_only(tmp_path, method):
    cfg = _cfg(strategy="addrop", epochs=3, attribution=AttributionConfig(method=method, steps=3))
    res = train(cfg, runs_dir=str(tmp_path))
    flags = [r["addrop_epoch"] for r in res.metrics]
    shares = [r["dropped_share"] for r in res.metrics]
    assert flags == [False, True, False]  # Algorithm 1: plain epochs 1, 3; AD-DROP epoch 2
    assert shares[0] == 0 and shares[2] == 0 and shares[1] > 0


def test_cross_tuning_schedule_and_off():
    on, off = _cfg(strategy="addrop"), _cfg(strategy="addrop", cross_tuning=False)
    assert [masks_in_epoch(on, e) for e in range(1, 7)] == [False, True] * 3
    assert all(masks_in_epoch(off, e) for e in range(1, 7))
    assert all(masks_in_epoch(_cfg(strategy="drop-low"), e) for e in range(1, 4))
    assert not any(masks_in_epoch(_cfg(strategy=s), e) for s in ("vanilla", "none") for e in range(1, 4))


def test_prior_strategies_use_gold_ga_and_a_fixed_rate():
    for strategy, mode, method in (("drop-high", "high", "ga"), ("drop-low", "low", "ga"),
                                   ("drop-random", "random", "rd")):
        a = _cfg(strategy=strategy).masking()
        assert (a.method, a.target, a.mode, a.fixed_rate, a.count) == (method, "gold", mode, True, "equal")
        ref = _cfg(strategy=strategy, attribution=AttributionConfig(count="reference")).masking()
        assert ref.count == "reference"
    assert _cfg(strategy="addrop").masking().count == "reference"  # AD-DROP keeps Eq. 6 as the paper has it


@pytest.mark.parametrize("strategy", ["none", "drop-random", "drop-low", "drop-high", "vanilla", "addrop"])
def test_config_json_records_what_the_run_did(tmp_path, monkeypatch, strategy):
    """config.json's attribution is the mask settings drops_for was called with (None when nothing was masked);
    q is None where no q draw happens and cross_tuning says how the epochs were scheduled."""
    from addrop.engine import training

    used = []
    real = training.drops_for
    monkeypatch.setattr(training, "drops_for", lambda m, b, acfg, g, **kw: used.append(acfg) or real(m, b, acfg, g, **kw))
    cfg = _cfg(strategy=strategy, epochs=2, attribution=AttributionConfig(p=0.3, q=0.5, mode="high", layers=(0,)))
    res = train(cfg, runs_dir=str(tmp_path))
    rec = json.loads((tmp_path / res.id / "config.json").read_text())
    if strategy in ("none", "vanilla"):
        assert not used and rec["attribution"] is None and rec["cross_tuning"] is None
    else:
        assert used and all(a == used[0] for a in used)
        want = used[0].to_dict()
        if strategy.startswith("drop-"):
            want["q"] = None
            assert rec["cross_tuning"] is False and len(used) == 2 * 4  # every epoch masked: 2 epochs x 4 batches
            assert rec["attribution"]["mode"] == {"drop-high": "high", "drop-low": "low", "drop-random": "random"}[
                strategy]
        else:
            assert rec["cross_tuning"] is True and len(used) == 4  # epoch 2 only
        assert rec["attribution"] == want
    assert rec["clean_train_loss"] == (strategy not in ("vanilla", "addrop"))
    back = TrainConfig.from_dict(rec).masking()  # a record reads back into the settings that make the same masks
    if not used:
        assert back is None
    else:
        same = lambda a: {k: v for k, v in a.to_dict().items() if not (k == "q" and a.fixed_rate)}  # noqa: E731
        assert same(back) == same(used[0])


def test_fixed_rate_drops_the_share_asked(tmp_path):
    loaded = load_model("tiny-bert", "cpu")
    batch = {"input_ids": torch.randint(1000, 2000, (4, 21)), "attention_mask": torch.ones(4, 21, dtype=torch.long),
             "labels": torch.tensor([0, 1, 0, 1])}
    a = _cfg(strategy="drop-low", attribution=AttributionConfig(p=0.3, layers=(0,))).masking()
    drops, share = drops_for(loaded, batch, a, torch.Generator().manual_seed(0))
    assert list(drops) == [0]
    assert share == pytest.approx((21 - int(21 * 0.7)) / 21)  # the count drop-high takes, exactly (count "equal")
    ref = _cfg(strategy="drop-low", attribution=AttributionConfig(p=0.3, layers=(0,), count="reference")).masking()
    _, share = drops_for(loaded, batch, ref, torch.Generator().manual_seed(0))
    assert share == pytest.approx(int(21 * 0.3) / 21)  # the reference rule: int(pn) lowest of each row


def test_same_seed_same_numbers(tmp_path):
    cfg = _cfg(strategy="addrop", cross_tuning=False)
    a = train(cfg, runs_dir=str(tmp_path / "a"))
    b = train(cfg, runs_dir=str(tmp_path / "b"))
    strip = lambda ms: [{k: v for k, v in m.items() if k != "seconds"} for m in ms]  # noqa: E731
    assert strip(a.metrics) == strip(b.metrics)
    c = train(_cfg(strategy="addrop", cross_tuning=False, seed=1), runs_dir=str(tmp_path / "c"))
    assert strip(c.metrics) != strip(a.metrics)


def test_the_loaded_model_is_never_changed_and_stays_in_its_mode(tmp_path):
    loaded = load_model("tiny-bert", "cpu")
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    req = [p.requires_grad for p in loaded.model.parameters()]
    res = train(_cfg(strategy="addrop", cross_tuning=False, attribution=AttributionConfig(method="iga", steps=2)),
                runs_dir=str(tmp_path), loaded=loaded)
    assert res.status == "finished"
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [p.requires_grad for p in loaded.model.parameters()] == req
    assert not loaded.model.training


def test_addrop_training_updates_every_weight_the_loss_reaches(tmp_path):
    """Training-time attribution freezes weights only for its own pass: the masked loss still trains them."""
    loaded = load_model("tiny-bert", "cpu")
    res = train(_cfg(strategy="addrop", cross_tuning=False, epochs=1, save_weights=True), runs_dir=str(tmp_path),
                loaded=loaded)
    from addrop.engine.runs import load_weights

    trained = load_weights(res.path)
    changed = [k for k, v in loaded.model.state_dict().items()
               if k in trained and not torch.equal(trained[k], v.cpu())]
    assert any("encoder.layer.0.attention" in k for k in changed)
    assert any("classifier" in k for k in changed)


def test_epoch_and_step_callbacks(tmp_path):
    steps, epochs = [], []
    train(_cfg(), runs_dir=str(tmp_path), callbacks=Callbacks(on_step=steps.append, on_epoch=epochs.append))
    assert [s["step"] for s in steps] == list(range(1, 9))  # 32 examples / 8 per batch x 2 epochs
    assert steps[-1]["fraction"] == 1.0
    assert [e["epoch"] for e in epochs] == [1, 2]


def test_early_stopping_stops_on_a_rising_dev_loss(tmp_path):
    res = train(_cfg(epochs=6, lr=5e-2, early_stopping=1), runs_dir=str(tmp_path))
    assert res.status == "finished" and len(res.metrics) < 6


def test_shots_and_regression_on_a_csv(tmp_path):
    rows = ["text,label"] + [f"sentence number {i} is {'good' if i % 2 else 'bad'},{(i % 5) / 2}" for i in range(40)]
    f = tmp_path / "reg.csv"
    f.write_text("\n".join(rows))
    res = train(_cfg(task="csv", csv=str(f), epochs=1), runs_dir=str(tmp_path / "runs"))
    assert res.status == "finished"
    assert "dev_pearson" in res.metrics[-1] and math.isfinite(res.metrics[-1]["dev_loss"])
    k = train(_cfg(shots=4, epochs=1), runs_dir=str(tmp_path / "k"))
    assert load_run(k.path).config["num_train"] == 8


def test_regression_addrop_uses_negative_loss(tmp_path):
    rows = ["text,label"] + [f"sentence {i} here,{(i % 5) / 2}" for i in range(24)]
    f = tmp_path / "reg.csv"
    f.write_text("\n".join(rows))
    res = train(_cfg(task="csv", csv=str(f), epochs=2, strategy="addrop"), runs_dir=str(tmp_path / "runs"))
    assert res.status == "finished" and res.metrics[1]["dropped_share"] > 0
    assert len(list_runs(tmp_path / "runs")) == 1


def test_optimizer_is_fused_adamw_with_decay_groups_on_the_cpu():
    from addrop.engine.training import make_optimizer

    loaded = load_model("tiny-bert", "cpu")
    opt, _ = make_optimizer(loaded.model, TrainConfig(model="tiny-bert", weight_decay=0.01), 10)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"]
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])


def test_a_subset_larger_than_the_data_is_said_not_silently_capped(tmp_path):
    notes = []
    res = train(_cfg(epochs=1, train_size=10**6, dev_size=10**6), runs_dir=str(tmp_path),
                callbacks=Callbacks(on_note=notes.append))
    cfg = load_run(res.path).config
    assert cfg["num_train"] == 400 and cfg["num_dev"] == 140  # the whole demo set
    assert notes == ["training size 1,000,000 is more than the 400 examples there are: all of them are used; "
                     "dev size 1,000,000 is more than the 140 examples there are: all of them are used"]
    assert cfg["note"] == notes[0]
    notes.clear()
    train(_cfg(epochs=1), runs_dir=str(tmp_path), callbacks=Callbacks(on_note=notes.append))
    assert notes == []
    # k-shot sampling picks the training set: a larger size is said too, against what it gave
    res = train(_cfg(epochs=1, shots=5, train_size=50), runs_dir=str(tmp_path),
                callbacks=Callbacks(on_note=notes.append))
    assert load_run(res.path).config["num_train"] == 10
    assert notes == ["training size 50 is more than the 10 examples 5-shot sampling gives: all of them are used"]


@pytest.mark.parametrize("keep_best", [False, True])
def test_a_run_stopped_during_an_epoch_writes_its_last_finished_epochs_weights(tmp_path, keep_best):
    # steps per epoch: 32 / 8 = 4; the stop comes during epoch 3, after epochs 1 and 2 were written one by one
    from safetensors.torch import load_file

    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 9

    res = train(_cfg(epochs=5, save_weights=True, save_every_epoch=True, keep_best=keep_best),
                runs_dir=str(tmp_path), callbacks=Callbacks(should_stop=stop))
    assert res.status == "stopped" and len(res.metrics) == 2
    rec = load_run(res.path)
    best = min(res.metrics, key=lambda m: m["dev_loss"])["epoch"] if keep_best else 2
    assert rec.summary["weights_epoch"] == best and f"epoch {best}'s weights" in res.reason
    kept, epoch = load_file(f"{res.path}/model.safetensors"), load_file(f"{res.path}/model.epoch{best}.safetensors")
    assert kept.keys() == epoch.keys() and all(torch.equal(kept[k], epoch[k]) for k in kept)


def test_a_run_stopped_in_its_first_epoch_writes_no_weights_and_says_so(tmp_path):
    res = train(_cfg(epochs=2, save_weights=True), runs_dir=str(tmp_path),
                callbacks=Callbacks(should_stop=lambda: True))
    assert res.status == "stopped" and not res.metrics
    assert "no weights were written" in res.reason
    assert not list((tmp_path / res.id).glob("*.safetensors"))
    from addrop.engine.weights import run_checkpoint
    from addrop.errors import UserError

    with pytest.raises(UserError, match="stopped before its first epoch ended"):
        run_checkpoint(f"run:{res.path}")
