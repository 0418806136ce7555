"""addrop/studio/explore/: the explorer's library side, cross-checked against the library it builds on."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from addrop.studio import explore
from addrop.config import AttributionConfig
from addrop.errors import UserError
from addrop.core.masking import dropped_share, make_drops
from addrop.engine.models import load_model

TEXT = "The soup was cold and the waiter never came back, but the bread was excellent."
NAMES = ("negative", "positive")


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-bert", "cpu", num_labels=2, seed=0)


@pytest.fixture(scope="module")
def expl(tiny):
    return explore.explain(tiny, TEXT, cfg=AttributionConfig(method="ga"), label_names=NAMES)


def test_explain_shapes_and_tokens(tiny, expl):
    L, H = tiny.num_layers, tiny.num_heads
    T = len(expl.tokens)
    assert expl.attention.shape == (L, H, T, T) == expl.scores.shape
    assert expl.tokens[0] == "[CLS]" and expl.tokens[-1] == "[SEP]"
    assert not expl.truncated
    assert expl.layers == list(range(L))
    np.testing.assert_allclose(expl.attention.sum(-1), 1.0, atol=1e-5)  # softmax rows
    assert expl.class_name(int(expl.target)) in NAMES
    assert int(expl.target) == int(np.argmax(expl.logits))  # pseudo label = argmax (Eq. 4)


def test_explain_bad_input(tiny):
    with pytest.raises(UserError, match="empty"):
        explore.explain(tiny, "   ")
    with pytest.raises(UserError, match="gold"):
        explore.explain(tiny, TEXT, cfg=AttributionConfig(target="gold"))


def test_explain_truncates_long_text(tiny):
    e = explore.explain(tiny, "word " * 50, max_length=16)
    assert e.truncated and len(e.tokens) == 16


def test_explain_fixed_label_and_rd_seed(tiny):
    e = explore.explain(tiny, TEXT, cfg=AttributionConfig(target="label", label=1))
    assert int(e.target) == 1
    a = explore.explain(tiny, TEXT, cfg=AttributionConfig(method="rd", seed=3))
    b = explore.explain(tiny, TEXT, cfg=AttributionConfig(method="rd", seed=3))
    c = explore.explain(tiny, TEXT, cfg=AttributionConfig(method="rd", seed=4))
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)


def test_rd_in_the_explorer_drops_p_times_q(tiny):
    """RD is a per-key coin (p) then the q draw: the explorer's dropped share of the real positions is p * q, and
    the region does not repeat RD's own scores (the scores and the mask once drew from one seed, so every draw
    equalled its score and nothing dropped while p + q <= 1)."""
    text = " ".join(["the film was long and slow but the ending was a real surprise"] * 4)
    p, q = 0.3, 0.3
    shares, in_low = [], []
    for seed in range(4):
        e = explore.explain(tiny, text, cfg=AttributionConfig(method="rd", seed=seed))
        view = explore.analyse(tiny, e, p, q, seed=seed)
        m = view.mask
        shares.append(dropped_share(m.dropped[:, None], e.key_mask))
        sc = e.attribution.scores[:, 0]
        in_low.append(float((sc[m.region] < p).float().mean()))  # independent draws: about p, not 1
        assert view.effect.row("AD-DROP mask")["drops"] > 0
    n = e.attention.size * len(shares)  # real positions over the seeds (no pads: one example)
    se = (p * q * (1 - p * q) / n) ** 0.5
    assert abs(np.mean(shares) - p * q) < 5 * se + 0.002, (shares, se)  # keep_one gives back a few
    assert abs(np.mean(in_low) - p) < 0.05, in_low


def test_draw_mask_matches_make_drops_and_is_seeded(expl):
    m1 = explore.draw_mask(expl, 0.3, 0.5, seed=7)
    m2 = explore.draw_mask(expl, 0.3, 0.5, seed=7)
    m3 = explore.draw_mask(expl, 0.3, 0.5, seed=8)
    assert torch.equal(m1.dropped, m2.dropped) and not torch.equal(m1.dropped, m3.dropped)
    region, dropped = make_drops(expl.attribution.scores, expl.key_mask, 0.3, 0.5,
                                 generator=torch.Generator().manual_seed(7))
    assert torch.equal(m1.region, region[:, 0]) and torch.equal(m1.dropped, dropped[:, 0])
    assert bool((m1.dropped <= m1.region).all())  # drops only inside the candidate region


def test_draw_mask_layers_and_validation(expl):
    m = explore.draw_mask(expl, 0.5, 0.5, seed=0, layers=[1])
    assert m.masked_layers == [1]
    assert not m.dropped[0].any() and not m.region[0].any() and m.region[1].any()
    assert set(m.per_layer()) == {1} and m.per_layer()[1].shape == (1,) + tuple(m.dropped.shape[1:])
    with pytest.raises(UserError, match="p must be"):
        explore.draw_mask(expl, 1.5, 0.3)
    with pytest.raises(UserError, match="q must be"):
        explore.draw_mask(expl, 0.3, 0.0)
    with pytest.raises(UserError, match="out of range"):
        explore.draw_mask(expl, 0.3, 0.3, layers=[5])


def test_random_like_same_count_per_row_on_real_keys():
    gen = torch.Generator().manual_seed(0)
    key_mask = torch.tensor([True] * 6 + [False] * 2)
    dropped = torch.rand(3, 4, 8, 8, generator=gen) < 0.4
    dropped &= key_mask  # real keys only, as the library's masks
    r = explore.random_like(dropped, key_mask, torch.Generator().manual_seed(1))
    assert r.shape == dropped.shape and r.dtype == torch.bool
    assert torch.equal(r.sum(-1), dropped.sum(-1))  # same number per row
    assert not r[..., ~key_mask].any()  # never a pad
    assert not torch.equal(r, dropped)


def test_mask_effect_cross_checks(tiny, expl):
    mask = explore.draw_mask(expl, 0.5, 0.9, seed=0)
    rand = explore.random_like(mask.dropped, expl.key_mask[0], torch.Generator().manual_seed(5))
    assert torch.equal(rand.sum(-1), (mask.dropped & expl.key_mask[0]).sum(-1))
    eff = explore.mask_effect(tiny, expl, mask, rand)
    rows = {r["condition"]: r for r in eff.rows}
    assert list(rows) == list(explore.CONDITIONS)
    # before the mask = a plain forward = the attribution's own first pass
    plain = explore.plain_logits(tiny, expl.batch)[0]
    np.testing.assert_allclose(rows["no mask"]["logits"], plain.numpy(), atol=1e-6)
    np.testing.assert_allclose(rows["no mask"]["logits"], expl.logits, atol=1e-5)
    assert rows["no mask"]["drops"] == 0
    assert rows["AD-DROP mask"]["drops"] == rows["random mask"]["drops"] == int(mask.dropped.sum()) > 0
    # the masks do act
    assert not np.allclose(rows["AD-DROP mask"]["logits"], rows["no mask"]["logits"])
    # the loss is the cross-entropy against the attributed class (no gold label here)
    c = int(expl.target)
    ref = torch.nn.functional.cross_entropy(torch.tensor([rows["no mask"]["logits"]]), torch.tensor([c]))
    assert rows["no mask"]["loss"] == pytest.approx(float(ref), abs=1e-6)
    assert "attributed class" in eff.reference
    # the same mask through the controller by hand gives the same logits
    with torch.no_grad(), tiny.model.addrop.pass_settings(drops=mask.per_layer()):
        by_hand = tiny.model(**{k: v for k, v in expl.batch.items() if k != "token_type_ids"}).logits[0]
    np.testing.assert_allclose(rows["AD-DROP mask"]["logits"], by_hand.numpy(), atol=1e-5)
    assert eff.frame().shape[0] == 3


def test_mask_effect_gold_label_loss(tiny):
    e = explore.explain(tiny, TEXT, cfg=AttributionConfig(), gold=1, label_names=NAMES)
    eff = explore.mask_effect(tiny, e, explore.draw_mask(e, 0.3, 0.3))
    assert "gold label (positive)" in eff.reference


def test_head_summary(tiny, expl):
    mask = explore.draw_mask(expl, 0.3, 0.5, seed=2)
    s = explore.head_summary(expl, mask)
    assert len(s) == tiny.num_layers * tiny.num_heads
    assert {"layer", "head", "spearman", "dropped_share", "region_share"} <= set(s.columns)
    # every head has the same number of real positions, so the mean per-head share is the library's share
    assert s["dropped_share"].mean() == pytest.approx(dropped_share(mask.dropped[:, None], expl.key_mask), abs=1e-9)
    assert (s["dropped_share"] <= s["region_share"] + 1e-12).all()
    # AA: the attribution is the attention, so the rank correlation is 1 in every head
    aa = explore.explain(tiny, TEXT, cfg=AttributionConfig(method="aa"))
    sa = explore.head_summary(aa)
    assert np.allclose(sa["spearman"].dropna(), 1.0) and sa["spearman"].notna().all()


def test_compare_backends(tiny, expl):
    cmp = explore.compare_backends(tiny, expl)
    assert cmp.diff.shape == expl.scores.shape
    assert cmp.max_rel_diff < 1e-4
    assert cmp.native_seconds > 0 and cmp.captum_seconds > 0
    aa = explore.explain(tiny, TEXT, cfg=AttributionConfig(method="aa"))
    with pytest.raises(UserError, match="ga and iga"):
        explore.compare_backends(tiny, aa)


def test_find_flip_is_consistent(tiny):
    texts = [TEXT, "I loved it.", "Terrible service and worse food.", "It was fine, I guess.",
             "A gripping story with a weak ending."]
    case = explore.find_flip(tiny, texts, p=0.5, q=0.9, seed=0, label_names=NAMES)
    assert case is not None and case.text in texts and case.searched >= 1
    e = explore.explain(tiny, case.text, cfg=AttributionConfig(method="ga"), label_names=NAMES)
    eff = explore.mask_effect(tiny, e, explore.draw_mask(e, 0.5, 0.9, seed=0))
    assert eff.row("AD-DROP mask")["prediction"] == case.after_addrop
    assert eff.row("random mask")["prediction"] == case.after_random
    name = f"p({case.before})"
    assert eff.row("AD-DROP mask")[name] == pytest.approx(case.prob_addrop)
    assert eff.row("random mask")[name] == pytest.approx(case.prob_random)
    assert case.found == (case.prob_random - case.prob_addrop >= explore.start.MEANINGFUL)
    # it is the example where AD-DROP lowers P(predicted) most beyond the random mask
    for t in texts:
        e = explore.explain(tiny, t, cfg=AttributionConfig(method="ga"), label_names=NAMES)
        eff = explore.mask_effect(tiny, e, explore.draw_mask(e, 0.5, 0.9, seed=0))
        k = f"p({eff.row('no mask')['prediction']})"
        assert eff.row("random mask")[k] - eff.row("AD-DROP mask")[k] <= case.prob_random - case.prob_addrop + 1e-6
    assert explore.find_flip(tiny, []) is None


def test_regression_model():
    reg = load_model("tiny-bert", "cpu", num_labels=1, seed=0)
    e = explore.explain(reg, TEXT, gold=3.5)
    assert e.regression
    eff = explore.mask_effect(reg, e, explore.draw_mask(e, 0.3, 0.3))
    r = eff.row("no mask")
    assert r["loss"] == pytest.approx((r["score"] - 3.5) ** 2, rel=1e-5)
    assert explore.find_flip(reg, [TEXT]) is None


def test_exports(tiny, expl):
    mask = explore.draw_mask(expl, 0.3, 0.3)
    rand = explore.random_like(mask.dropped, expl.key_mask[0], torch.Generator().manual_seed(0))
    z = np.load(io.BytesIO(explore.to_npz_bytes(expl, mask, rand)))
    assert {"tokens", "attention", "attribution", "region", "dropped", "random_dropped", "key_mask",
            "logits"} <= set(z.files)
    np.testing.assert_array_equal(z["attribution"], expl.scores)
    assert list(z["tokens"]) == expl.tokens
    import pandas as pd

    frame = pd.read_csv(io.StringIO(explore.to_csv_text(expl, mask)))
    n = int(expl.key_mask.sum())
    assert len(frame) == tiny.num_layers * tiny.num_heads * n * n
    one = pd.read_csv(io.StringIO(explore.to_csv_text(expl, mask, layer=1, head=2)))
    assert len(one) == n * n and set(one["layer"]) == {1} and set(one["head"]) == {2}
    row = one.iloc[5]
    assert row["attribution"] == pytest.approx(expl.scores[1, 2, row["query"], row["key"]], rel=1e-5)
    js = json.loads(explore.settings_json(text=TEXT, attribution=AttributionConfig(p=0.2), nan=float("nan"),
                                          layers=(0, 1)))
    assert js["attribution"]["p"] == 0.2 and js["nan"] is None and js["layers"] == [0, 1]


def test_top_layer_ga_drops_that_cannot_act_are_counted_apart(tiny, expl):
    """With GA every top-layer row but [CLS] has zero attribution: under the paper's tie rule they are whole-row
    candidates, so the raw share is far above p * q; the share over rows that can act is not, and the drops in
    constant rows change nothing (the same logits with and without them)."""
    top = expl.layers[-1]
    idle = explore.idle_rows(expl)  # [L, H, T]
    assert idle[top, :, 1:].all() and not idle[top, :, 0].any()  # [CLS] acts, the rest cannot
    assert not idle[:top].all()
    p, q = 0.3, 0.5
    view = explore.analyse(tiny, expl, p, q, seed=0, layers=[top])
    row = view.summary[view.summary["layer"] == top].iloc[0]
    assert row["region_share"] > 0.8 and abs(row["acting_region_share"] - p) < 0.1  # the [CLS] row: about p
    assert row["acting_rows"] == 1
    counts = view.counts
    assert counts.dropped == counts.acting + counts.idle == view.effect.row("AD-DROP mask")["drops"]
    assert counts.idle > counts.acting and counts.share > p * q + 0.2 and counts.acting_share < p
    T = len(expl.tokens)
    assert counts.acting_positions == tiny.num_heads * T
    # only the acting drops move the output: drop them alone and the logits are those of the full mask
    only = {top: view.mask.dropped[top][None] & torch.from_numpy(~idle[top])[None, :, :, None]}
    from addrop.core.passes import eval_mode, model_inputs

    m = tiny.model
    with torch.no_grad():
        with eval_mode(m), m.addrop.pass_settings(drops=only):
            a = m(**model_inputs(m, expl.batch)).logits
        with eval_mode(m), m.addrop.pass_settings(drops=view.mask.per_layer()):
            b = m(**model_inputs(m, expl.batch)).logits
    torch.testing.assert_close(a, b)
