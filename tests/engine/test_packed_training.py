"""Packed training and evaluation (core/packing.py RowPacking through engine/training.py): the same losses,
logits and gradients as the padded passes, with and without AD-DROP masks, on every packable family; the layout
a run used is in its config; length-grouped batches hold every example once."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from addrop.config import TrainConfig
from addrop.core.algorithm import drops_for
from addrop.core.packing import RowPacking
from addrop.engine.batching import batches, encode, length_grouped
from addrop.engine.tasks import Split
from addrop.engine.training import forward, predict, train, use_packing
from addrop.engine.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["a gripping, funny film", "the plot drags on and on while nothing at all happens to anyone", "fine",
         "ok then", "no", "it was a long and winding story", "bad", "a film"]


def test_rows_hold_every_real_token_once_and_never_more_rows_than_examples():
    km = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5, [1] * 6 + [0]]).bool()
    lay = RowPacking(km)
    assert lay.width == 7 and lay.rows <= km.shape[0]
    assert lay.rows == 4  # first fit by decreasing length: 7 | 6 | 4 + 3 | 2 (22 tokens need 4 rows of 7)
    ids = torch.arange(35).view(5, 7) + 1
    packed = lay.inputs({"input_ids": ids, "attention_mask": km.long()}, offset=0)["input_ids"]
    real = packed[packed > 0]
    assert sorted(real.tolist()) == sorted(ids[km].tolist())  # each real token once, nothing else
    ends = lay.start + lay.n
    assert (ends <= lay.width).all()
    for r in range(lay.rows):  # examples sharing a row do not overlap
        spans = sorted((int(s), int(e)) for s, e, rr in zip(lay.start, ends, lay.row) if rr == r)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def _batch(loaded, texts=TEXTS):
    enc = loaded.tokenizer(list(texts), padding=True, return_tensors="pt")
    batch = dict(enc)
    batch["labels"] = torch.arange(len(texts)) % 2
    return batch


def _grads(model, out):
    model.zero_grad(set_to_none=True)
    out.loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta", "tiny-electra", "tiny-distilbert"])
@pytest.mark.parametrize("masked", [False, True])
def test_packed_pass_has_the_losses_and_gradients_of_the_padded_one(load, name, masked):
    loaded = load(name)
    model = loaded.model
    assert model.addrop.can_pack
    model.eval()  # no dropout: the two layouts draw their dropout noise over different shapes
    batch = _batch(loaded)
    drops = None
    if masked:  # real AD-DROP masks (GA, every layer, the paper's rule), drawn once and used by both passes
        cfg = TrainConfig(model=name, strategy="addrop")
        acfg = replace(cfg.masking(), layers="all", p=0.5, q=0.5)
        drops, share = drops_for(model, batch, acfg, torch.Generator().manual_seed(0))
        assert share > 0
    padded = forward(model, batch, drops, packed=False)
    g_pad = _grads(model, padded)
    packed = forward(model, batch, drops, packed=True)
    g_pack = _grads(model, packed)
    assert packed.logits.shape == padded.logits.shape
    torch.testing.assert_close(packed.logits, padded.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed.loss, padded.loss, rtol=1e-5, atol=1e-6)
    assert g_pad.keys() == g_pack.keys()
    for n in g_pad:
        torch.testing.assert_close(g_pack[n], g_pad[n], rtol=1e-4, atol=1e-5, msg=n)
    if masked:  # the masks acted: without them the logits differ
        assert not torch.allclose(forward(model, batch, None, packed=True).logits, packed.logits, atol=1e-6)


def test_packed_evaluation_predicts_what_padded_evaluation_predicts(load):
    loaded = load("tiny-bert")
    spec = get_task("demo")
    split = Split(TEXTS, None, [i % 2 for i in range(len(TEXTS))])
    enc = encode(loaded.tokenizer, split, 64)
    loss_a, pred_a = predict(loaded, enc, split.labels, spec, 3, packed=False)
    loss_b, pred_b = predict(loaded, enc, split.labels, spec, 3, packed=True)
    assert pred_a == pred_b and loss_b == pytest.approx(loss_a, rel=1e-5)


def test_auto_packs_on_the_cpu_and_the_run_config_says_which_layout_ran(load, tmp_path):
    loaded = load("tiny-bert")
    assert use_packing("auto", loaded) and use_packing("packed", loaded) and not use_packing("padded", loaded)
    for layout, want in (("auto", "packed"), ("padded", "padded")):
        cfg = TrainConfig(model="tiny-bert", task="demo", epochs=1, train_size=16, dev_size=8, layout=layout,
                          name=f"r-{layout}")
        res = train(cfg, str(tmp_path), loaded=loaded)
        assert res.status == "finished"
        assert json.loads((tmp_path / res.id / "config.json").read_text())["layout"] == want


def test_packed_and_padded_runs_without_dropout_give_the_same_curve(load, tmp_path):
    """A whole AD-DROP run (GA masks every other epoch), packed and padded, dropout off: the same losses. Every
    candidate is dropped (fixed rate): a packed run draws its coins over the packed rows, so with coins the two
    layouts would drop other (equally likely) positions."""
    from addrop.config import AttributionConfig

    loaded = load("tiny-bert")
    for m in loaded.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    curves = {}
    for layout in ("packed", "padded"):
        cfg = TrainConfig(model="tiny-bert", task="demo", strategy="addrop", epochs=2, train_size=24, dev_size=8,
                          layout=layout, lr=1e-3, name=f"c-{layout}",
                          attribution=AttributionConfig(p=0.3, fixed_rate=True))
        res = train(cfg, str(tmp_path), loaded=loaded)
        curves[layout] = [(r["train_loss"], r["dev_loss"]) for r in res.metrics]
        assert res.metrics[1]["dropped_share"] > 0
    for a, b in zip(curves["packed"], curves["padded"]):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_length_grouped_order_holds_every_example_once_and_groups_similar_lengths():
    lengths = [((i * 37) % 50) + 1 for i in range(200)]
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(200, generator=gen).tolist()
    out = length_grouped(order, lengths, 8, torch.Generator().manual_seed(1), per_group=5)
    assert sorted(out) == list(range(200))
    pad = lambda o: sum(max(lengths[i] for i in o[s:s + 8]) * len(o[s:s + 8]) for s in range(0, 200, 8))  # noqa: E731
    assert pad(out) < pad(order)  # less padding than the plain shuffled order
    enc = [{"input_ids": [1] * k} for k in lengths]
    got = [b["input_ids"].shape[0] for b in batches(enc, [0] * 200, 8, shuffle=True,
                                                       generator=torch.Generator().manual_seed(2), by_length=True)]
    assert sum(got) == 200 and all(g == 8 for g in got)


@pytest.mark.parametrize("method", ["ga", "aa", "iga"])
def test_masks_drawn_on_the_packed_rows_are_the_padded_ones_and_act_alike(load, method):
    """drops_for(packed=True) draws on the rows the attribution packed (packing.RowDrops): with every candidate
    dropped (fixed rate: no coins) the masks are the padded call's, and the packed pass with them has the losses
    of the padded pass with the padded masks."""
    from addrop.core.packing import RowDrops

    loaded = load("tiny-bert")
    model = loaded.model
    model.eval()
    batch = _batch(loaded)
    acfg = replace(TrainConfig(model="tiny-bert", strategy="addrop").masking(), method=method, layers="all", p=0.5,
                   fixed_rate=True, steps=4)
    padded, share_pad = drops_for(model, batch, acfg, torch.Generator().manual_seed(0))
    rows, share_rows = drops_for(model, batch, acfg, torch.Generator().manual_seed(0), packed=True)
    assert isinstance(rows, RowDrops) and not isinstance(padded, RowDrops)
    T = batch["attention_mask"].shape[1]
    back = rows.padded(T)
    assert back.keys() == padded.keys()
    for layer in padded:
        assert torch.equal(back[layer], padded[layer]), layer
    assert share_rows == pytest.approx(share_pad, abs=1e-12) and share_rows > 0
    want = forward(model, batch, padded, packed=False)
    for got in (forward(model, batch, rows, packed=True), forward(model, batch, rows, packed=False)):
        torch.testing.assert_close(got.logits, want.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-6)


def test_random_masks_drawn_on_the_packed_rows_stay_in_each_example(load):
    """RD needs no attribution: packed=True draws its coins on the rows of the packing the step uses."""
    from addrop.core.packing import RowDrops

    loaded = load("tiny-bert")
    batch = _batch(loaded, TEXTS * 3)
    acfg = replace(TrainConfig(model="tiny-bert", strategy="addrop").masking(), method="rd", layers="all", p=0.5,
                   q=0.5)
    rows, share = drops_for(loaded.model, batch, acfg, torch.Generator().manual_seed(0), packed=True)
    assert isinstance(rows, RowDrops) and abs(share - 0.25) < 0.05
    pairs = rows.layout.pairs()
    blocks = (pairs.keys & pairs.rows)[0]  # [R, 1, W, W]
    for m in rows.masks.values():  # [R, H, W, W]
        assert m.shape[0] == rows.layout.rows and not (m & ~blocks).any()
        left = (blocks & ~m).sum(-1)  # real keys left per row
        assert (left[pairs.rows[0, :, :, :, 0].expand_as(left)] >= 1).all()
    padded = rows.padded(batch["attention_mask"].shape[1])
    km = batch["attention_mask"].bool()
    real = km[:, None, :, None] & km[:, None, None, :]
    assert sum(int((d & real).sum()) for d in padded.values()) == sum(int(m.sum()) for m in rows.masks.values())
