"""Algorithm 1 for one batch (core/algorithm.py): RD as a per-key coin and the attribution pass's mode."""
from __future__ import annotations

import pytest
import torch

from addrop.config import AttributionConfig
from addrop.core.algorithm import drops_for, region_mode
from addrop.core.attribution import attribute
from addrop.core.objective import objective, real_only, target_classes
from addrop.core.passes import model_inputs

pytestmark = pytest.mark.usefixtures("one_thread")


def _big_batch(loaded, B=6, T=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, loaded.tokenizer.vocab_size, (B, T), generator=g)
    lengths = torch.tensor([T, T - 3, 30, 25, 17, 40][:B])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.zeros(B, dtype=torch.long)}


def test_rd_is_a_per_key_coin_not_a_fixed_count_per_row(load):
    loaded = load("tiny-bert")
    batch = _big_batch(loaded)
    acfg = AttributionConfig(method="rd", p=0.3, q=0.5)
    assert region_mode(acfg) == "random" and region_mode(AttributionConfig(method="ga")) == "high"
    drops, share = drops_for(loaded.model, batch, acfg, torch.Generator().manual_seed(1))
    km = batch["attention_mask"].bool()
    d = drops[0]  # [B, H, T, T]
    valid = (km[:, None, :, None] & km[:, None, None, :])
    assert not (d & ~valid).any()  # pads never dropped
    per_row = d.sum(-1)[km[:, None, :].expand(-1, d.shape[1], -1)]  # dropped keys per real row
    # a fixed count (the old "random scores through the high threshold") gives a binomial(n, q) draw around
    # int(0.3 n) candidates; a per-key coin draws the candidates too, so row counts spread more and the share of
    # real positions is p * q on average
    n = km.sum(-1).double()
    expected = 0.3 * 0.5
    assert abs(share - expected) < 0.02, share
    # a fixed count of candidates (n - int(0.7 n), what the high region takes) caps every row's dropped keys;
    # per-key coins exceed that cap in some rows (over every layer's rows, a sure thing for any seed)
    every = torch.stack(list(drops.values()))  # [L, B, H, T, T]
    rows = km[None, :, None, :].expand(every.shape[:-1])
    cap = (n - (n * 0.7).floor()).view(1, -1, 1, 1).expand(every.shape[:-1])
    assert bool((every.sum(-1)[rows] > cap[rows]).any())
    assert per_row.min() >= 0 and n.min() > 0
    # no row loses every real key (keep_one)
    real_keys_left = ((~d) & km[:, None, None, :]).sum(-1)
    assert bool((real_keys_left[km[:, None, :].expand_as(real_keys_left)] >= 1).all())


def test_rd_never_drops_a_whole_row_even_with_p_and_q_near_one(load):
    loaded = load("tiny-bert")
    batch = _big_batch(loaded, B=3, T=6)
    drops, _ = drops_for(loaded.model, batch, AttributionConfig(method="rd", p=0.99, q=0.99),
                         torch.Generator().manual_seed(0))
    km = batch["attention_mask"].bool()
    left = ((~drops[0]) & km[:, None, None, :]).sum(-1)
    assert bool((left[km[:, None, :].expand_as(left)] >= 1).all())


def test_train_pass_equals_a_hand_made_train_mode_gradient_after_dropout(load, make_batch):
    loaded = load("tiny-bert")
    model = loaded.model.eval()
    batch = make_batch(loaded)
    cfg = AttributionConfig(method="ga", path="padded", attribution_pass="train")
    torch.manual_seed(5)
    res = attribute(model, batch, cfg)
    assert not model.training  # the caller's mode comes back
    # by hand: train mode, the same dropout draws, gradient at the probabilities after dropout (no top-layer cut:
    # the cut only skips rows with zero gradient, but it changes which dropout numbers are drawn, so cut here too)
    torch.manual_seed(5)
    model.train()
    layers = list(range(model.addrop.num_layers))
    with model.addrop.pass_settings(record=layers, cls_only=True) as s:
        logits = model(**model_inputs(model, batch)).logits
        kept = [s.probs[l] for l in layers]
        target = target_classes(logits, cfg, None)
        grads = torch.autograd.grad(objective(logits, target), kept, allow_unused=True)
    model.eval()
    want = real_only(torch.stack([g if g is not None else torch.zeros_like(a) for g, a in zip(grads, kept)]),
                     batch["attention_mask"].bool())
    torch.testing.assert_close(res.scores, want, rtol=1e-5, atol=1e-7)
    # and it is not the eval pass: dropout changed the numbers
    ev = attribute(model, batch, AttributionConfig(method="ga", path="padded"))
    assert not torch.allclose(ev.scores, res.scores)
    # what was recorded is after attention dropout: exact zeros where the eval pass has none
    km = batch["attention_mask"].bool()
    valid = km[None, :, None, :, None] & km[None, :, None, None, :]
    assert bool(((res.attention == 0) & valid).any()) and not bool(((ev.attention == 0) & valid).any())


def test_train_pass_without_dropout_is_the_eval_pass(load, make_batch):
    loaded = load("tiny-bert")
    model = loaded.model
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.config.attention_probs_dropout_prob = 0.0
    for m in model.modules():
        if hasattr(m, "dropout") and isinstance(getattr(m, "dropout"), float):
            m.dropout = 0.0
    batch = make_batch(loaded)
    ev = attribute(model, batch, AttributionConfig(method="ga"))
    tr = attribute(model, batch, AttributionConfig(method="ga", attribution_pass="train"))
    torch.testing.assert_close(tr.scores, ev.scores, rtol=1e-5, atol=1e-7)


def test_captum_backend_rejects_the_train_pass():
    from addrop.errors import UserError

    with pytest.raises(UserError, match="eval mode"):
        AttributionConfig(backend="captum", attribution_pass="train")


@pytest.mark.parametrize("method", ["ga", "rd"])
def test_per_example_seeds_make_masks_independent_of_the_batch(load, make_batch, method):
    loaded = load("tiny-bert")
    acfg = AttributionConfig(method=method, p=0.3, q=0.5, layers=None)
    texts = ("a gripping, funny film", "the plot drags on and on while nothing at all happens to anyone", "fine")
    full = make_batch(loaded, texts)
    km = full["attention_mask"].bool()
    together, _ = drops_for(loaded.model, full, acfg, None, example_seeds=[7, 8, 9])
    for i, seed in enumerate((7, 8, 9)):
        alone_batch = make_batch(loaded, texts[i])
        alone, _ = drops_for(loaded.model, alone_batch, acfg, None, example_seeds=[seed])
        n = int(km[i].sum())
        for l in together:
            assert torch.equal(together[l][i, :, :n, :n], alone[l][0, :, :n, :n])
            assert not together[l][i, :, n:].any() and not together[l][i, :, :, n:].any()
    # and a different seed gives a different draw
    other, _ = drops_for(loaded.model, full, acfg, None, example_seeds=[1, 2, 3])
    assert any(not torch.equal(other[l], together[l]) for l in other)
