"""ADDropTrainer: a transformers.Trainer with AD-DROP. Disabled, it is the plain Trainer; enabled, it gives the
same per-step losses as addrop's own trainer on the same batches and seed, with AD-DROP where cross-tuning
puts it."""
from __future__ import annotations

import json
import os
import tempfile

import pytest
import torch

try:
    import accelerate  # noqa: F401  (transformers.Trainer needs it)
except ImportError:
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        raise  # on CI a missing accelerate fails the run instead of skipping the Trainer tests
    pytest.skip("transformers.Trainer needs accelerate: pip install accelerate", allow_module_level=True)

from torch.utils.data import DataLoader, Dataset  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

import addrop  # noqa: E402
from addrop.engine.batching import batches  # noqa: E402
from addrop.config import AttributionConfig, TrainConfig  # noqa: E402
from addrop.errors import UnsupportedModelError, UserError  # noqa: E402
from addrop.engine.hf_trainer import ADDropConfig, ADDropTrainer  # noqa: E402
from addrop.engine.models import load_model  # noqa: E402
from addrop.engine.training import Callbacks, load_splits, prepare_data, train  # noqa: E402


def _cfg(**kw) -> TrainConfig:
    d = dict(model="tiny-bert", task="demo", epochs=3, train_size=24, dev_size=8, batch_size=8, lr=1e-3,
             warmup_ratio=0.0, device="cpu", seed=3, strategy="addrop", attribution=AttributionConfig(p=0.3, q=0.5),
             layout="padded")  # the Trainer runs padded batches; with dropout on, only the same layout draws the
    # same noise (packed = padded without dropout: tests/engine/test_packed_training.py)
    d.update(kw)
    return TrainConfig(**d)


@pytest.fixture(scope="module")
def data():
    cfg = _cfg()
    loaded = load_model(cfg.model, "cpu", num_labels=2, seed=cfg.seed)
    return prepare_data(cfg, loaded.tokenizer, load_splits(cfg))


class _Indices(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


class _SameOrder:
    """A batch sampler drawing each epoch's order as addrop.batching.batches(shuffle=True) does: one torch.randperm
    per epoch from one generator seeded with the run's seed."""

    def __init__(self, n, batch_size, seed):
        self.n, self.bs, self.gen = n, batch_size, torch.Generator().manual_seed(seed)

    def __len__(self):
        return (self.n + self.bs - 1) // self.bs

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.gen).tolist()
        for s in range(0, self.n, self.bs):
            yield order[s:s + self.bs]


def _recording(base):
    class Recording(base):
        """Keeps every training step's loss (the Trainer's logs round them)."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.step_losses = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
            if model.training:
                self.step_losses.append((loss[0] if return_outputs else loss).item())
            return loss

    return Recording


def _same_batches(base, data, cfg):
    class SameBatches(_recording(base)):
        """Feeds the Trainer exactly the batches of addrop's own loop (order, dynamic padding)."""

        def get_train_dataloader(self):
            enc, labels = data.train_enc, data.train.labels

            def collate(idx):
                sub = type(enc)(enc[i] for i in idx)
                sub.pad_token_id = enc.pad_token_id
                return next(batches(sub, [labels[i] for i in idx], len(idx)))

            # its own generator: the loader's seed draw must not touch the global RNG that dropout uses
            dl = DataLoader(_Indices(len(enc)), batch_sampler=_SameOrder(len(enc), cfg.batch_size, cfg.seed),
                            collate_fn=collate, generator=torch.Generator().manual_seed(0))
            return self.accelerator.prepare(dl)

    return SameBatches


def _args(cfg: TrainConfig, **kw) -> TrainingArguments:
    d = dict(output_dir=tempfile.mkdtemp(prefix="addrop-hf-"), num_train_epochs=cfg.epochs,
             per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
             warmup_steps=0, lr_scheduler_type="linear", max_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
             logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True)
    d.update(kw)
    return TrainingArguments(**d)


class _HFSet(Dataset):
    """Tokenized examples as the Trainer's default collator expects them (for the plain-Trainer comparison)."""

    def __init__(self, data):
        self.enc, self.labels = data.train_enc, data.train.labels

    def __len__(self):
        return len(self.enc)

    def __getitem__(self, i):
        return {**self.enc[i], "labels": int(self.labels[i])}


def _ours(cfg, data):
    loaded = load_model(cfg.model, "cpu", num_labels=2, seed=cfg.seed)
    losses = []
    res = train(cfg, tempfile.mkdtemp(prefix="addrop-ours-"), loaded=loaded, data=data,
                callbacks=Callbacks(on_step=lambda r: losses.append(r["loss"])))
    return losses, res


# ------------------------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("addrop_arg", [None, ADDropConfig(enabled=False)], ids=["none", "disabled"])
def test_disabled_is_exactly_the_plain_trainer(data, addrop_arg):
    from transformers import DataCollatorWithPadding

    cfg = _cfg(epochs=2)
    runs = []
    for cls, extra in ((_recording(Trainer), {}), (_recording(ADDropTrainer), {"addrop": addrop_arg})):
        loaded = load_model(cfg.model, "cpu", num_labels=2, seed=cfg.seed)
        tr = cls(model=loaded.model, args=_args(cfg), train_dataset=_HFSet(data),
                 data_collator=DataCollatorWithPadding(loaded.tokenizer), **extra)
        tr.train()
        runs.append(tr)
    plain, ours = runs
    assert len(plain.step_losses) == 6 and ours.step_losses == plain.step_losses  # bit for bit
    assert not ours.addrop_enabled and ours.addrop_epochs == []
    assert all("addrop_epoch" not in h for h in ours.state.log_history)


@pytest.mark.parametrize("strategy,cross", [("vanilla", True), ("addrop", True), ("addrop", False)],
                         ids=["vanilla", "addrop-cross-tuning", "addrop-every-epoch"])
def test_losses_match_our_trainer(data, strategy, cross):
    cfg = _cfg(strategy=strategy, cross_tuning=cross)
    ours, res = _ours(cfg, data)
    assert res.status == "finished" and len(ours) == 9  # 24 examples / 8 x 3 epochs
    model = load_model(cfg.model, "cpu", num_labels=2, seed=cfg.seed).model
    hf = _same_batches(ADDropTrainer, data, cfg)(model=model, args=_args(cfg),
                                                 addrop=cfg if strategy == "addrop" else None)
    hf.train()
    assert hf.step_losses == pytest.approx(ours, abs=1e-5)
    want = ([2] if cross else [1, 2, 3]) if strategy == "addrop" else []
    assert hf.addrop_epochs == want
    assert [m["addrop_epoch"] for m in res.metrics] == [e in want for e in (1, 2, 3)]
    if strategy == "addrop":
        logs = [h for h in hf.state.log_history if "loss" in h]
        assert [bool(h["addrop_epoch"]) for h in logs] == [e in want for e in (1, 1, 1, 2, 2, 2, 3, 3, 3)]
        assert all((h["addrop_dropped_share"] > 0) == bool(h["addrop_epoch"]) for h in logs)
        # the masked epoch changes the losses: AD-DROP really ran
        plain, _ = _ours(_cfg(strategy="vanilla"), data)
        assert ours[3:6] != pytest.approx(plain[3:6], abs=1e-6)


def test_logging_eval_and_checkpoints_are_the_trainers(data, tmp_path):
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    cfg = _cfg(epochs=2)
    loaded = load_model(cfg.model, "cpu", num_labels=2, seed=cfg.seed)
    ds = _HFSet(data)
    tr = ADDropTrainer(model=loaded.model, args=_args(cfg, output_dir=str(tmp_path), save_strategy="epoch",
                                                      eval_strategy="epoch"),
                       train_dataset=ds, eval_dataset=ds, data_collator=DataCollatorWithPadding(loaded.tokenizer),
                       addrop={"p": 0.5, "q": 0.5, "layers": "0"})
    before = tr.evaluate()["eval_loss"]
    plain = Trainer(model=loaded.model, args=_args(cfg), eval_dataset=ds,
                    data_collator=DataCollatorWithPadding(loaded.tokenizer))
    assert plain.evaluate()["eval_loss"] == before  # evaluation never masks
    tr.train()
    assert tr.addrop_epochs == [2]
    assert [h["epoch"] for h in tr.state.log_history if "eval_loss" in h] == [1.0, 2.0]
    ckpts = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint-"))
    assert ckpts == ["checkpoint-3", "checkpoint-6"]
    cfg_json = json.loads((tmp_path / "checkpoint-6" / "config.json").read_text())
    assert "addrop" not in json.dumps(cfg_json)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "checkpoint-6")
    assert torch.equal(again.classifier.weight, loaded.model.classifier.weight.detach())


def test_config_forms_and_errors():
    assert addrop.ADDropTrainer is ADDropTrainer and addrop.ADDropConfig is ADDropConfig
    c = ADDropConfig.coerce(AttributionConfig(method="iga", p=0.2, q=0.7, layers="0,1"))
    assert (c.method, c.p, c.q, c.layers, c.cross_tuning, c.enabled) == ("iga", 0.2, 0.7, (0, 1), True, True)
    t = ADDropConfig.coerce(_cfg(cross_tuning=False, seed=9))
    assert (t.cross_tuning, t.seed, t.p) == (False, 9, 0.3)
    assert ADDropConfig.coerce(_cfg(strategy="vanilla")).enabled is False
    assert ADDropConfig(cross_tuning=True).is_addrop_epoch(2) and not ADDropConfig().is_addrop_epoch(3)
    for bad, match in (({"p": 1.5}, "p must be"), ({"q": 0}, "q must be"), ({"method": "xx"}, "unknown attribution"),
                       ({"pp": 0.1}, "unknown AD-DROP setting")):
        with pytest.raises(UserError, match=match):
            ADDropConfig.coerce(bad)
    with pytest.raises(UserError, match="must be an ADDropConfig"):
        ADDropConfig.coerce(3)


def test_unsupported_model_and_bad_layers_are_user_errors():
    class NotATransformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "mlp", "num_hidden_layers": 1})()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, input_ids=None, labels=None):
            return {"loss": self.lin(input_ids.float()).sum()}

    args = _args(_cfg())
    with pytest.raises(UnsupportedModelError, match="AttentionInterface"):
        ADDropTrainer(model=NotATransformer(), args=args, addrop=ADDropConfig())
    ADDropTrainer(model=NotATransformer(), args=args, addrop=None)  # a plain Trainer takes any module
    model = load_model("tiny-bert", "cpu").model
    with pytest.raises(UserError, match="out of range"):
        ADDropTrainer(model=model, args=args, addrop={"layers": "5"})


@pytest.mark.slow
def test_readme_example_runs(tmp_path, capsys):
    """examples/hf_trainer_example.py (the README's ADDropTrainer example) on a few demo examples."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "hf_trainer_example.py"
    mod_spec = importlib.util.spec_from_file_location("hf_trainer_example", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    result = mod.main(["--task", "demo", "--train-size", "16", "--dev-size", "8", "--epochs", "2",
                       "--out", str(tmp_path)])
    assert result["epoch"] == 2.0 and 0.0 <= result["eval_accuracy"] <= 1.0
