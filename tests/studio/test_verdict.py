"""addrop/studio/explore/verdict.py: the explorer's sentences on what the mask did follow the numbers."""
from __future__ import annotations

import pytest

from addrop.studio import explore
from addrop.studio.explore import Effect, effect_sentences


def _effect(p, loss, pred=("positive",) * 3):
    rows = [dict(condition=k, prediction=pr, p_c=pc, loss=lo, drops=0 if i == 0 else 10)
            for i, (k, pr, pc, lo) in enumerate(zip(explore.CONDITIONS, pred, p, loss))]
    return Effect(rows, "the attributed class (positive)", target_name="positive")


def test_sentences_say_which_mask_moved_more_and_by_how_much():
    s = effect_sentences(_effect((0.90, 0.60, 0.85), (0.105, 0.511, 0.163)))
    assert "both masks lowered p(positive), the AD-DROP mask more than the random mask (-0.300 under AD-DROP, " \
           "-0.050 under random, 6.0 times as much)" in s
    assert "0.900 without a mask, 0.600 under the AD-DROP mask and 0.850" in s
    assert "Deletion curves" in s and "regularizer" not in s
    r = effect_sentences(_effect((0.90, 0.88, 0.70), (0.105, 0.128, 0.357)))
    assert "both masks lowered p(positive), the random mask more than the AD-DROP mask (-0.020 under AD-DROP, " \
           "-0.200 under random, 10 times as much)" in r
    assert "both masks raised it, the random mask more" in r  # the loss too
    far = effect_sentences(_effect((0.90, 0.30, 0.899), (0.105, 1.2, 0.106)))
    # the random mask barely moved it: no ratio (600 times as much would mean nothing)
    assert "the AD-DROP mask lowered p(positive) and the random mask barely moved it (-0.600 under AD-DROP, -0.001 " \
           "under random)" in far and "times" not in far
    same = effect_sentences(_effect((0.90, 0.899, 0.898), (0.105, 0.106, 0.107)))
    assert "both masks moved p(positive) about as much" in same
    assert "both masks keep the prediction." in same and "the random one keeps" not in same


def test_sentences_flip_and_loss_can_disagree():
    s = effect_sentences(_effect((0.55, 0.45, 0.52), (0.2, 0.9, 0.1), pred=("positive", "negative", "positive")))
    assert "the AD-DROP mask flips the prediction to **negative**, the random one keeps the prediction" in s
    # opposite directions: no "n times as much", which would read as one effect of different sizes
    assert "On the loss against the attributed class (positive) (0.200 without a mask), the two masks moved it in " \
           "opposite directions (+0.700 under AD-DROP, -0.100 under random), the AD-DROP mask further" in s
    assert "times as much" not in s.split("On the loss")[1]


def test_a_flip_by_a_hair_is_said_so_and_rd_masks_are_both_random():
    s = effect_sentences(_effect((0.501, 0.497, 0.499), (0.69, 0.70, 0.69), pred=("positive", "negative", "positive")))
    assert "the AD-DROP mask tips the prediction to **negative** by a hair (p(c) moved 0.004" in s
    assert "flips" not in s
    rd = effect_sentences(_effect((0.90, 0.60, 0.85), (0.105, 0.511, 0.163)), method="rd")
    assert rd.startswith("With RD the attribution-driven mask comes from random scores too")
    assert "under the RD mask" in rd and "AD-DROP mask" not in rd
    assert "random scores" not in effect_sentences(_effect((0.90, 0.60, 0.85), (0.105, 0.511, 0.163)), method="ga")


def test_a_mask_that_is_not_adrop_s_is_not_called_so_and_its_direction_is_said():
    """A low region raised the confidence and lowered the loss: said as such, under its own name (a teacher read
    "the AD-DROP mask moved p(negative) more" for a drop-low mask that raised it)."""
    eff = _effect((0.8704, 0.9056, 0.8684), (0.1388, 0.0991, 0.1411), pred=("negative",) * 3)
    low = effect_sentences(eff, method="ga", mode="low")
    assert low.startswith("With the low region this is not AD-DROP's mask")
    assert "AD-DROP mask" not in low and "under the low-region mask" in low
    assert "the low-region mask raised p(positive) and the random mask barely moved it (+0.035 under low-region, " \
           "-0.002 under random)" in low
    assert "the low-region mask lowered it and the random mask barely moved it" in low
    assert "both masks keep the prediction" in low
    rand = effect_sentences(eff, method="ga", mode="random")
    assert rand.startswith("With a random region the attribution plays no part") and "AD-DROP mask" not in rand
    assert explore.mask_name("ga", "high") == "AD-DROP" and explore.mask_name("iga", "low") == "low-region"
    assert explore.mask_name("rd", "high") == explore.mask_name("rd", "low") == "RD"
    both = effect_sentences(_effect((0.8, 0.3, 0.2), (0.2, 1.2, 1.6), pred=("positive", "negative", "negative")))
    assert "both masks flip the prediction to **negative**" in both and "the random one flips" not in both


def test_sentences_for_regression():
    rows = [dict(condition=k, prediction=round(v, 4), score=v, loss=(v - 3.0) ** 2, drops=0)
            for k, v in zip(explore.CONDITIONS, (2.0, 2.5, 1.0))]
    s = effect_sentences(Effect(rows, "the gold score", regression=True))
    assert "from 2.000 to 2.500 (+0.500)" in s and "moves it to 1.000 (-1.000)" in s
    assert "the two masks moved the score in opposite directions (+0.500 under AD-DROP, -1.000 under random), the " \
           "random mask further" in s
    assert "squared error" in s


def test_sentences_on_a_real_effect():
    from addrop.config import AttributionConfig
    from addrop.engine.models import load_model

    tiny = load_model("tiny-bert", "cpu", num_labels=2, seed=0)
    e = explore.explain(tiny, "A warm, funny and honest film.", cfg=AttributionConfig(), label_names=("neg", "pos"))
    eff = explore.analyse(tiny, e, 0.5, 0.9, seed=0).effect
    c = e.class_name(int(e.target))
    assert eff.target_name == c
    assert eff.row("no mask")["p_c"] == pytest.approx(eff.row("no mask")[f"p({c})"])
    assert f"{eff.row('AD-DROP mask')['p_c']:.3f} under the AD-DROP mask" in effect_sentences(eff)
