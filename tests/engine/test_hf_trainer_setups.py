"""ADDropTrainer in real training setups: gradient checkpointing (reentrant or not), left padding, the warnings
for runs that would never reach an AD-DROP epoch, and bf16 autocast on the CPU. Each checked against the plain
way: the same step without checkpointing, the padded path, fp32."""
from __future__ import annotations

import os
import tempfile
import warnings

import pytest
import torch

try:
    import accelerate  # noqa: F401  (transformers.Trainer needs it)
except ImportError:
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        raise
    pytest.skip("transformers.Trainer needs accelerate", allow_module_level=True)

from torch.utils.data import Dataset, IterableDataset  # noqa: E402
from transformers import TrainingArguments  # noqa: E402

from addrop.config import AttributionConfig  # noqa: E402
from addrop.core.attribution import attribute  # noqa: E402
from addrop.core.masking import candidate_region, make_drops  # noqa: E402
from addrop.core.passes import model_inputs  # noqa: E402
from addrop.engine.hf_trainer import ADDropConfig, ADDropTrainer  # noqa: E402
from addrop.errors import UserError  # noqa: E402
from addrop.studio.explore import jaccard  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TEXTS = ["a gripping, funny film", "the plot drags on and on while nothing at all happens to anyone", "fine",
         "dull", "an honest and moving portrait of a family at war with itself"]


def _args(**kw) -> TrainingArguments:
    d = dict(output_dir=tempfile.mkdtemp(prefix="addrop-hf-"), per_device_train_batch_size=4, report_to=[],
             use_cpu=True, disable_tqdm=True, save_strategy="no", eval_strategy="no", seed=0, logging_steps=1)
    d.update(kw)
    return TrainingArguments(**d)


def _batch(loaded, side="right"):
    tok = loaded.tokenizer
    before = tok.padding_side
    tok.padding_side = side
    try:
        enc = tok(TEXTS, padding=True, return_tensors="pt")
    finally:
        tok.padding_side = before
    return {**dict(enc), "labels": torch.tensor([0, 1, 0, 1, 1])}


def _step(tr, model, batch) -> None:
    """One Trainer.training_step outside train() (which would set the accumulation count itself)."""
    tr.current_gradient_accumulation_steps = 1
    tr.training_step(model, batch)


def _grads(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("reentrant", [True, False])
def test_gradient_checkpointing_gives_the_masked_gradients(load, reentrant):
    out = {}
    for gc in (False, True):
        loaded = load("tiny-bert", seed=0)
        model = loaded.model
        if gc:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        # padded both times: with dropout on, only the same layout draws the same noise (the packed step without
        # checkpointing: test_masked_steps_run_packed_on_the_cpu_with_the_padded_gradients)
        tr = ADDropTrainer(model=model, args=_args(), addrop=ADDropConfig(p=0.5, q=0.5, layers="all",
                                                                         cross_tuning=False, layout="padded"))
        torch.manual_seed(1)  # dropout of the masked pass (checkpointing replays the same draws)
        _step(tr, model, _batch(loaded))
        out[gc] = _grads(model)
        assert tr.addrop_epochs == [1] and tr.addrop_packed_steps == 0
    assert out[True].keys() == out[False].keys() and out[True]
    for n in out[False]:
        torch.testing.assert_close(out[True][n], out[False][n], rtol=1e-5, atol=1e-7, msg=n)
    # and the masks mattered: a plain step gives other gradients
    loaded = load("tiny-bert", seed=0)
    tr = ADDropTrainer(model=loaded.model, args=_args(), addrop=ADDropConfig(enabled=False))
    torch.manual_seed(1)
    _step(tr, loaded.model, _batch(loaded))
    plain = _grads(loaded.model)
    assert any(not torch.allclose(plain[n], out[False][n]) for n in plain)


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def test_masked_steps_run_packed_on_the_cpu_with_the_padded_gradients(load):
    """layout auto packs a masked step on the CPU: the gradients of the padded step (dropout off, as the two
    layouts draw dropout over different shapes). Checkpointing, inputs it does not know, left padding or
    layout padded keep a step padded."""
    out = {}
    for layout in ("auto", "padded"):
        loaded = load("tiny-bert", seed=0)
        model = _no_dropout(loaded.model)
        tr = ADDropTrainer(model=model, args=_args(), addrop=ADDropConfig(p=0.5, q=0.5, layers="all",
                                                                         cross_tuning=False, layout=layout))
        _step(tr, model, _batch(loaded))
        out[layout] = _grads(model)
        assert tr.addrop_packed_steps == (layout == "auto")
    assert out["auto"].keys() == out["padded"].keys() and out["auto"]
    for n in out["padded"]:
        torch.testing.assert_close(out["auto"][n], out["padded"][n], rtol=1e-4, atol=1e-6, msg=n)
    loaded = load("tiny-bert", seed=0)
    tr = ADDropTrainer(model=loaded.model, args=_args(), addrop=ADDropConfig(layers="all", cross_tuning=False))
    batch = _batch(loaded)
    _step(tr, loaded.model, _batch(loaded, "left"))
    _step(tr, loaded.model, {**batch, "position_ids": torch.arange(batch["input_ids"].shape[1])[None]})
    loaded.model.gradient_checkpointing_enable()
    _step(tr, loaded.model, batch)
    assert tr.addrop_packed_steps == 0
    with pytest.raises(UserError, match="layout"):
        ADDropConfig(layout="rows")


@pytest.mark.parametrize("reentrant", [True, False])
def test_train_mode_attribution_pass_under_gradient_checkpointing(load, make_batch, reentrant):
    loaded = load("tiny-bert")
    batch = make_batch(loaded)
    cfg = AttributionConfig(layers=None, path="padded", attribution_pass="train")
    torch.manual_seed(3)
    want = attribute(loaded.model, batch, cfg)
    loaded.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    torch.manual_seed(3)
    got = attribute(loaded.model, batch, cfg)
    assert loaded.model.is_gradient_checkpointing  # switched back on afterwards
    assert want.scores.abs().sum() > 0
    torch.testing.assert_close(got.scores, want.scores, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
@pytest.mark.parametrize("method", ["ga", "aa", "iga"])
def test_left_padding_runs_the_padded_path_with_the_same_numbers(load, name, method):
    loaded = load(name)
    for side in ("left", "right"):
        batch = _batch(loaded, side)
        cfg = AttributionConfig(method=method, steps=3, layers=None)
        auto = attribute(loaded.model, batch, cfg)
        padded = attribute(loaded.model, batch, AttributionConfig(method=method, steps=3, layers=None,
                                                                  path="padded"))
        if side == "left":
            assert auto.path == "padded"
        torch.testing.assert_close(auto.logits, padded.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(auto.scores, padded.scores, rtol=1e-4, atol=1e-6)
        km = batch["attention_mask"].bool()
        grouped, _ = make_drops(auto.scores, km, 0.3, 0.3)
        whole, _ = make_drops(auto.scores, km, 0.3, 0.3, group=0)
        assert torch.equal(grouped, whole)
        assert not (grouped & ~km[None, :, None, None, :]).any()


def test_left_padded_training_step_uses_the_padded_paths_masks(load):
    """ADDropTrainer on a left-padded batch: the masks are those of the padded path (drawn the same way)."""
    loaded = load("tiny-bert")
    batch = _batch(loaded, "left")
    tr = ADDropTrainer(model=loaded.model, args=_args(), addrop=ADDropConfig(layers="all", cross_tuning=False))
    got, _ = tr.addrop_drops(loaded.model, batch)
    res = attribute(loaded.model, batch, AttributionConfig(layers=None, path="padded"))
    _, want = make_drops(res.scores, batch["attention_mask"].bool(), 0.3, 0.3, group=0,
                         generator=torch.Generator().manual_seed(1))
    for i, l in enumerate(res.layers):
        assert torch.equal(got[l], want[i])


class _Set(Dataset):
    def __init__(self, loaded, n=8):
        enc = loaded.tokenizer(TEXTS * 2, padding="max_length", max_length=16, truncation=True)
        self.rows = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                      "labels": i % 2} for i in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class _Stream(IterableDataset):
    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        return iter(self.rows)


def test_runs_that_never_reach_an_addrop_epoch_warn(load):
    loaded = load("tiny-bert")
    ds = _Set(loaded)
    cfg = ADDropConfig(layers="0")
    one = ADDropTrainer(model=loaded.model, args=_args(num_train_epochs=1), train_dataset=ds, addrop=cfg)
    assert any("at most one epoch" in w for w in one.addrop_warnings())
    stream = ADDropTrainer(model=loaded.model, args=_args(max_steps=4), train_dataset=_Stream(ds.rows),
                           addrop=cfg)
    assert any("IterableDataset" in w for w in stream.addrop_warnings())
    two = ADDropTrainer(model=loaded.model, args=_args(num_train_epochs=2), train_dataset=ds, addrop=cfg)
    assert two.addrop_warnings() == []
    every = ADDropTrainer(model=loaded.model, args=_args(num_train_epochs=1), train_dataset=ds,
                          addrop=ADDropConfig(layers="0", cross_tuning=False))
    assert every.addrop_warnings() == []
    with pytest.warns(UserWarning, match="at most one epoch"):
        one.train()


def test_bf16_autocast_on_cpu_keeps_masks_finite_and_regions_close(load):
    loaded = load("tiny-bert")
    model = loaded.model
    batch = _batch(loaded)
    km = batch["attention_mask"].bool()
    cfg = AttributionConfig(layers=None, path="padded")
    fp32 = attribute(model, batch, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf = attribute(model, batch, cfg)
    assert torch.isfinite(bf.scores).all()
    r32 = candidate_region(fp32.scores, km, 0.3, ties="strict")
    rbf = candidate_region(bf.scores, km, 0.3, ties="strict")
    assert jaccard(r32, rbf) > 0.6, jaccard(r32, rbf)
    # a masked step under autocast, with rows that keep one real key only: finite loss and gradients
    _, dropped = make_drops(fp32.scores, km, 0.95, 0.99)
    drops = {l: dropped[i] for i, l in enumerate(fp32.layers)}
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16), model.addrop.pass_settings(drops=drops):
        out = model(**model_inputs(model, batch), labels=batch["labels"])
    assert torch.isfinite(out.logits.float()).all() and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    # the Trainer's own bf16 on the CPU, every epoch masked
    tr = ADDropTrainer(model=model, args=_args(num_train_epochs=1, bf16=True), train_dataset=_Set(loaded),
                       addrop=ADDropConfig(layers="all", cross_tuning=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.train()
    losses = [h["loss"] for h in tr.state.log_history if "loss" in h]
    assert losses and all(torch.isfinite(torch.tensor(x)) for x in losses)
    assert tr.addrop_epochs == [1]
