"""Sentences computed from runs (addrop/experiments/verdicts.py), on synthetic epoch records: the sentences must
follow the numbers (change them and the sentence changes), never the paper's claim."""
from __future__ import annotations

import pandas as pd
import pytest

from addrop.experiments import plans, verdicts


def _prior(train: dict, dev: dict, acc: dict | None = None, clean: dict | None = None) -> pd.DataFrame:
    """train/dev/clean: strategy -> per-epoch values; acc: strategy -> last dev accuracy."""
    rows = []
    for s, losses in train.items():
        for e, tl in enumerate(losses, start=1):
            row = {"run": s, "strategy": s, "seed": 0, "epoch": e, "train_loss": tl, "dev_loss": dev[s][e - 1],
                   "dev_accuracy": (acc or {}).get(s, 0.7)}
            if clean:
                row["clean_train_loss"] = clean[s][e - 1]
            rows.append(row)
    return pd.DataFrame(rows)


TRAIN = {"none": [0.69, 0.60], "drop-random": [0.69, 0.62], "drop-low": [0.68, 0.50], "drop-high": [0.70, 0.66]}
DEV_FALLING = {"none": [0.68, 0.627], "drop-random": [0.68, 0.63], "drop-low": [0.67, 0.565], "drop-high": [0.69, 0.64]}


def test_prior_summary_names_what_the_numbers_say():
    text = " ".join(verdicts.prior_summary(_prior(TRAIN, DEV_FALLING, {"drop-low": 0.8, "drop-high": 0.6})))
    assert "drop-low has fitted the training data fastest" in text and "drop-high slowest" in text
    assert "drop-high generalises worst by dev loss (0.6400" in text and "by dev accuracy too" in text
    assert "No run has started to overfit" in text
    # drop-low had the lowest dev loss here: two of the three observations hold, and the page says which
    assert ("agrees with 2 of the paper's 3 observations (drop-low fits fastest; drop-high fits slowest); not "
            "with: drop-low generalises worst by dev loss (drop-high does)") in text


def test_a_tied_dev_metric_names_no_strategy():
    text = " ".join(verdicts.prior_summary(_prior(TRAIN, DEV_FALLING)))  # dev accuracy 0.7 for all
    assert "drop-high generalises worst by dev loss" in text and "by dev accuracy too" not in text
    assert "the dev accuracy is 0.7000 for all" in text


def test_prior_summary_changes_with_the_numbers():
    dev = {"none": [0.60, 0.62], "drop-random": [0.61, 0.60], "drop-low": [0.55, 0.70], "drop-high": [0.62, 0.61]}
    train = dict(TRAIN, **{"none": [0.6, 0.45]})  # none now fits fastest
    text = " ".join(verdicts.prior_summary(_prior(train, dev, {"drop-random": 0.5})))
    assert "none has fitted the training data fastest" in text
    assert "drop-low generalises worst by dev loss (0.7000" in text
    assert "while the lowest dev accuracy is drop-random's" in text
    assert "Started to overfit" in text and "drop-low (lowest 0.5500 at epoch 1, 0.7000 at the last)" in text
    assert "none (lowest 0.6000" in text and "drop-random" not in text.split("Started to overfit")[1]
    agree = " ".join(verdicts.prior_summary(_prior(
        {"none": [0.6], "drop-random": [0.6], "drop-low": [0.3], "drop-high": [0.9]},
        {"none": [0.6], "drop-random": [0.6], "drop-low": [0.9], "drop-high": [0.6]})))
    assert "agrees with the paper's finding" in agree and "single epoch" in agree
    assert "Figure 2" in verdicts.PAPER_PRIOR_FINDING  # the paper is quoted separately, as its finding


def test_runs_that_learn_nothing_are_not_ranked():
    """Tiny random models: every loss ln 2 give or take 1e-4; naming a 'fastest' strategy would be noise."""
    flat = {s: [0.6939, 0.6938 + 0.0001 * i] for i, s in enumerate(TRAIN)}
    text = " ".join(verdicts.prior_summary(_prior(flat, flat, {s: 0.5 for s in TRAIN})))
    assert "no strategy has fitted faster than another" in text and "fastest" not in text
    assert "no strategy generalises worse than another" in text and "worst" not in text
    assert "too close to each other to compare with the paper's finding" in text
    assert "the dev accuracy 0.5000:" in text and "within 0.0000" not in text  # equal values read as one value
    assert "within 0.0003 of each other (0.6938 to 0.6941)" in text


def test_live_runs_are_compared_at_the_epoch_all_have_reached():
    f = _prior(TRAIN, DEV_FALLING)
    f = f[~((f["strategy"] == "drop-high") & (f["epoch"] == 2))]  # drop-high has not finished epoch 2
    assert verdicts.prior_summary(f)[0].startswith("At epoch 1 (the last epoch every run reached),")


def test_clean_note_uses_the_none_run_as_the_reference():
    clean = {"none": [0.66, 0.6002], "drop-random": [0.66, 0.59], "drop-low": [0.66, 0.55], "drop-high": [0.7, 0.62]}
    train = dict(TRAIN, none=[0.69, 0.6264])
    f = _prior(train, DEV_FALLING, clean=clean)
    gaps = verdicts.clean_gaps(f)
    assert gaps["none"] == pytest.approx(0.0262) and gaps["drop-high"] == pytest.approx(0.04)
    note = verdicts.clean_note(f)
    assert "+0.0262" in note and "drop-high +0.0400 (+0.0138 beyond none)" in note
    assert "eval mode" in note and "gold" not in note
    assert "none" not in verdicts.clean_note(_prior(TRAIN, DEV_FALLING))  # no clean loss: no reference claimed


def _compare(diffs_acc, vanilla_dev=((0.60, 0.55), (0.61, 0.56), (0.62, 0.57)), ad_dev_shift=0.0):
    rows = []
    for seed, d in enumerate(diffs_acc):
        vd = vanilla_dev[seed % len(vanilla_dev)]
        for e in (1, 2):
            rows.append({"run": f"vanilla-s{seed}", "strategy": "vanilla", "seed": seed, "epoch": e,
                         "train_loss": 0.5, "dev_loss": vd[e - 1], "dev_accuracy": 0.70})
            rows.append({"run": f"addrop-s{seed}", "strategy": "addrop", "seed": seed, "epoch": e,
                         "train_loss": 0.5, "dev_loss": vd[e - 1] + ad_dev_shift, "dev_accuracy": 0.70 + d})
    return pd.DataFrame(rows)


def test_one_seed_says_it_tells_nothing():
    v = verdicts.compare_verdict(_compare([-0.05], ad_dev_shift=0.086))
    text = " ".join(v["sentences"])
    assert "One seed tells nothing" in text and "(one seed, no spread)" in text
    assert "dev loss at the last epoch: +0.0860" in text
    assert "No run has started to overfit" in text and v["overfit"] is False


def test_verdict_with_spread_and_sign():
    consistent = verdicts.compare_verdict(_compare([0.04, 0.05, 0.06]))
    acc = consistent["rows"][-1]
    assert acc["column"] == "dev_accuracy" and acc["mean"] == pytest.approx(0.05) and acc["sd"] == pytest.approx(0.01)
    assert acc["consistent"] and acc["better"] == 3
    text = " ".join(consistent["sentences"])
    assert "+0.0500 ± 0.0100 (mean ± sd over 3 seeds; the same sign in every seed)" in text
    assert "AD-DROP is better on all 3 seeds" in text
    mixed = " ".join(verdicts.compare_verdict(_compare([0.04, -0.03, 0.01]))["sentences"])
    assert "not the same in every seed: 2 of 3 favour AD-DROP, 1 vanilla)" in mixed and "no clear difference" in mixed
    tied = " ".join(verdicts.compare_verdict(_compare([0.0, -0.03, 0.0]))["sentences"])
    assert "not the same in every seed: 0 of 3 favour AD-DROP, 1 vanilla, 2 ties" in tied
    same = " ".join(verdicts.compare_verdict(_compare([0.0, 0.0]))["sentences"])
    assert "no difference in any seed" in same and "no clear difference" in same
    assert "no clear difference over 2 seeds: both runs of every seed have the same value." in same
    tiny = " ".join(verdicts.compare_verdict(_compare([1e-4, 1.1e-4, 1.2e-4]))["sentences"])
    assert "the same sign in every seed" in tiny and "no clear difference" in tiny  # consistent, but below 0.002
    # the verdict names the reasons that hold, and only those
    assert "no clear difference over 3 seeds: the mean difference (+0.0001) is under 0.002." in tiny
    assert "within its spread" not in tiny and "sign is not the same" not in tiny
    spread = " ".join(verdicts.compare_verdict(_compare([-0.0, -0.0166]))["sentences"])
    assert "no clear difference over 2 seeds: its sign is not the same in every seed and the mean difference " \
        "(-0.0083) is within its spread (sd 0.0117)." in spread and "under 0.002" not in spread
    hurts = " ".join(verdicts.compare_verdict(_compare([-0.04, -0.05, -0.06]))["sentences"])
    assert "AD-DROP is worse on all 3 seeds" in hurts
    two = " ".join(verdicts.compare_verdict(_compare([-0.04, -0.05]))["sentences"])
    assert "AD-DROP is worse on both seeds, by more than the spread" in two
    assert "hurts" not in two.replace("does not mean it hurts", "")  # the overfit note says why: no contradiction


def test_overfitting_vanilla_is_named():
    v = verdicts.compare_verdict(_compare([0.01, 0.02], vanilla_dev=((0.50, 0.58), (0.60, 0.55))))
    assert v["overfit"] is True
    assert any(s.startswith("Started to overfit") and "vanilla-s0 (lowest 0.5000 at epoch 1" in s
               and "addrop-s0" in s and "the other 2 runs still improve" in s for s in v["sentences"])
    assert verdicts.overfitting(_compare([0.0]))["vanilla-s0"] is False


def test_time_estimate_counts_the_work_of_a_plan(tmp_path):
    from addrop.config import AttributionConfig, TrainConfig

    base = TrainConfig(model="minilm", epochs=3, train_size=200, dev_size=100)
    prior = plans.prior_plan(base, 0.3, [0], str(tmp_path))
    # none and drop-random: train + clean + dev; drop-low, drop-high add a GA pass per training example
    assert plans.example_passes(prior.configs) == 3 * (500 + 500 + 700 + 700)
    lo, hi = (7200 * s for s in plans.MINILM_SECONDS_PER_PASS)  # the fastest and slowest machine measured
    text = f"about {round(lo, -1):.0f}-{round(hi, -1):.0f} s with minilm"
    assert text in plans.time_estimate(prior.configs, "minilm")
    assert text in plans.time_estimate(prior.configs, "minilm-demo")  # the same network
    assert f"{lo * 10 / 60:.0f}-{hi * 10 / 60:.0f} minutes with minilm" in plans.time_estimate(prior.configs * 10,
                                                                                               "minilm")
    cmp = plans.compare_plan(base, AttributionConfig(), True, [0, 1, 2], str(tmp_path))
    assert plans.example_passes(cmp.configs) == 3 * (3 * 300 + 3 * 300 + 200)  # one AD-DROP epoch of three
    assert "seconds with a tiny model" in plans.time_estimate(cmp.configs, "tiny-bert")
    # inputs of the demo's length or shorter: the same estimate; MRPC's pairs of about 53 tokens: in proportion
    assert plans.time_estimate(prior.configs, "minilm", (plans.DEMO_TOKENS, 9.0)) == \
        plans.time_estimate(prior.configs, "minilm")
    long = plans.time_estimate(prior.configs, "minilm", (53.0, 53.0))
    scaled = 7200 * 53.0 / plans.DEMO_TOKENS
    lo, hi = (scaled * s / 60 for s in plans.MINILM_SECONDS_PER_PASS)
    assert f"roughly {lo:.0f}-{hi:.0f} minutes with minilm" in long
    assert long.endswith("for inputs of about 53 tokens, against the demo data's 16")


def test_the_demo_tokens_the_estimate_scales_from_are_the_demo_data_s():
    from addrop.engine.data import load_demo
    from addrop.engine.models import load_model

    tok = load_model("minilm", "cpu").tokenizer  # the embedded model's own tokenizer: no download
    _, train, dev = load_demo()
    got = (plans.mean_tokens(tok, train, 128) + plans.mean_tokens(tok, dev, 128)) / 2
    assert got == pytest.approx(plans.DEMO_TOKENS, abs=0.1)
    assert plans.mean_tokens(tok, train.__class__(texts=[], labels=[]), 128) is None


def test_tied_lowest_metrics_are_all_named():
    """Accuracies on a few dev examples tie: the lowest is named as shared, never as the first strategy's."""
    acc = {"none": 0.6562, "drop-random": 0.7, "drop-low": 0.6562, "drop-high": 0.6562}
    text = " ".join(verdicts.prior_summary(_prior(TRAIN, DEV_FALLING, acc)))
    assert "the lowest dev accuracy, 0.6562, is shared by none, drop-low and drop-high" in text
    assert "none's" not in text


def test_a_live_experiment_says_its_summary_covers_the_runs_so_far():
    f = _prior(TRAIN, DEV_FALLING)
    two = f[f["strategy"].isin(["none", "drop-random"])]
    text = verdicts.prior_summary(two, total_runs=4)
    assert text[0] == ("So far 2 of the 4 runs have epoch records (none and drop-random): what follows compares "
                       "only those, and changes as the others train.")
    assert not verdicts.prior_summary(f, total_runs=4)[0].startswith("So far")


def test_a_live_summary_of_no_finite_loss_says_so():
    f = _prior({"none": [float("nan")]}, {"none": [float("nan")]})
    assert verdicts.prior_summary(f, total_runs=4)[-1].startswith("Only no run has reached epoch 1")


def test_a_slight_rise_is_told_apart_from_a_clear_one():
    """A dev loss up by less than CLEAR_RISE after its lowest is 'barely'; the one clear rise leads the sentence."""
    dev = {"none": [0.60, 0.59, 0.597], "drop-random": [0.61, 0.60, 0.59], "drop-low": [0.55, 0.50, 0.90],
           "drop-high": [0.62, 0.61, 0.60]}
    train = {s: [0.6, 0.5, 0.4] for s in dev}
    flag, text = verdicts.overfit_sentence(_prior(train, dev))
    assert flag is True
    assert text == ("Started to overfit (dev loss rising after its minimum): drop-low (lowest 0.5000 at epoch 2, "
                    "0.9000 at the last); barely, by less than 0.02: none (lowest 0.5900 at epoch 2, +0.0070 at the "
                    "last); the other 2 runs still improve.")
    dev["drop-low"] = [0.55, 0.50, 0.51]
    flag, text = verdicts.overfit_sentence(_prior(train, dev))
    assert flag is True and text.startswith("Only barely started to overfit (dev loss up by less than 0.02 after its "
                                            "minimum): none (") and "drop-low (lowest 0.5000" in text


def test_a_drop_run_that_fits_only_with_its_masks_is_named():
    """Clean training loss far above the masked one (beyond none's gap): the summary says the run relies on its masks,
    and whether that or overfitting makes its dev loss, from the numbers."""
    train = {"none": [0.6, 0.034], "drop-random": [0.6, 0.04], "drop-low": [0.6, 0.02], "drop-high": [0.6, 0.3]}
    dev = {"none": [0.6, 0.20], "drop-random": [0.6, 0.21], "drop-low": [0.6, 1.38], "drop-high": [0.6, 0.32]}
    clean = {"none": [0.6, 0.027], "drop-random": [0.6, 0.03], "drop-low": [0.6, 1.40], "drop-high": [0.6, 0.19]}
    text = " ".join(verdicts.prior_summary(_prior(train, dev, clean=clean)))
    assert ("Without its masks, drop-low fits its own training examples much worse: clean training loss 1.4000 "
            "against 0.0200 with them (none, which drops nothing: clean 0.0270, in training 0.0340). That is about its "
            "dev loss (1.3800): the model has learned to rely on its masks") in text
    assert "Without its masks, drop-high" not in text and "drop-random fits its own" not in text
    clean["drop-low"] = [0.6, 0.22]
    dev["drop-low"] = [0.6, 0.59]
    text = " ".join(verdicts.prior_summary(_prior(train, dev, clean=clean)))
    assert "clean training loss 0.2200" in text and "Its dev loss (0.5900) is well above that" in text
    clean["drop-low"] = [0.6, 0.08]  # within RELIANCE of none's gap: nothing to say
    assert "Without its masks" not in " ".join(verdicts.prior_summary(_prior(train, dev, clean=clean)))


def test_a_live_summary_speaks_of_one_epoch_throughout():
    """While some runs are ahead, the overfitting sentence looks at the epochs the rest of the summary compares."""
    f = _prior({"none": [0.6, 0.5, 0.4], "drop-low": [0.6, 0.5, 0.4]},
               {"none": [0.6, 0.5, 0.9], "drop-low": [0.6, 0.5, 0.4]})
    f = f[~((f["strategy"] == "drop-low") & (f["epoch"] == 3))]  # drop-low still in epoch 3
    text = " ".join(verdicts.prior_summary(f, total_runs=4))
    assert "At epoch 2" in text or "epoch 2" in text
    assert "No run has started to overfit" in text and "0.9000" not in text
    assert verdicts.prior_summary(f[f["strategy"] == "none"], total_runs=4)[0].startswith(
        "So far 1 of the 4 runs has epoch records")


def test_reliance_is_named_only_when_the_clean_loss_is_far_above_the_masked_one():
    """A regression's loss of about 11 (STS-B, one epoch): clean 10.76 against 10.90 masked is no reliance on the
    masks, whatever none's gap; neither is clean 11.0 against 10.8, a sliver of a loss that size."""
    train = {"none": [11.5], "drop-random": [11.2], "drop-low": [10.90], "drop-high": [11.3]}
    dev = {"none": [3.1], "drop-random": [3.0], "drop-low": [3.0665], "drop-high": [3.2]}
    clean = {"none": [11.2], "drop-random": [11.0], "drop-low": [10.7576], "drop-high": [11.1]}
    for low in (10.7576, 11.0):
        clean["drop-low"] = [low]
        assert "Without its masks" not in " ".join(verdicts.prior_summary(_prior(train, dev, clean=clean)))
    clean["drop-low"] = [18.0]  # far above: named, but 18 is no "about its dev loss" of 3.07
    text = " ".join(verdicts.prior_summary(_prior(train, dev, clean=clean)))
    assert "Without its masks, drop-low fits its own training examples much worse: clean training loss 18.0000" in text
    assert "That is about its dev loss" not in text and "well above that" not in text


def test_the_paper_comparison_says_when_drop_lows_dev_loss_is_reliance_on_its_masks():
    train = {"none": [0.6, 0.034], "drop-random": [0.6, 0.04], "drop-low": [0.6, 0.02], "drop-high": [0.6, 0.3]}
    dev = {"none": [0.6, 0.20], "drop-random": [0.6, 0.21], "drop-low": [0.6, 1.38], "drop-high": [0.6, 0.32]}
    clean = {"none": [0.6, 0.027], "drop-random": [0.6, 0.03], "drop-low": [0.6, 1.40], "drop-high": [0.6, 0.19]}
    text = verdicts.prior_summary(_prior(train, dev, clean=clean))
    assert text[-1].startswith("This run agrees with the paper's finding") and text[-1].endswith(
        "Its dev loss, though, is mostly drop-low's reliance on its masks (above), not memorised training examples: "
        "it generalises worst here for that reason, not by overfitting in the usual sense.")
    clean["drop-low"] = [0.6, 0.03]  # fits without its masks too: nothing to add
    assert "reliance" not in verdicts.prior_summary(_prior(train, dev, clean=clean))[-1]


def test_an_experiment_that_did_not_run_to_its_end_says_which_runs_are_missing():
    f = _prior({"none": [0.69, 0.6, 0.5], "drop-random": [0.6846]}, {"none": [0.7, 0.6, 0.5], "drop-random": [0.7]})
    runs = {"none": "finished", "drop-random": "stopped", "drop-low": "waiting", "drop-high": "waiting"}
    text = verdicts.prior_summary(f, runs=runs)
    assert text[0] == ("This experiment did not run to its end (drop-random stopped after epoch 1; drop-low did not "
                       "start; drop-high did not start): what follows compares only the runs with epoch records, at "
                       "the last epoch they all reached.")
    assert text[1].startswith("At epoch 1 (the last epoch every run reached), ")
    assert verdicts.prior_summary(f, runs=dict.fromkeys(runs, "finished"))[0].startswith("At epoch 1 (the last")
    assert verdicts.prior_summary(f.iloc[:0], runs={"none": "stopped"}) == [
        "This experiment did not run to its end (none stopped before its first epoch ended): what follows compares "
        "only the runs with epoch records, at the last epoch they all reached."]


def test_strategies_within_the_tie_tolerance_of_the_fastest_or_slowest_are_named_together():
    train = {"none": [0.6845], "drop-random": [0.6846], "drop-low": [0.60], "drop-high": [0.65]}
    dev = {"none": [0.7], "drop-random": [0.7], "drop-low": [0.8], "drop-high": [0.7]}
    text = verdicts.prior_summary(_prior(train, dev))
    assert ("drop-low has fitted the training data fastest (lowest training loss, 0.6000, measured with its masks) "
            "and drop-random and none slowest (0.6845 to 0.6846, within 0.002).") in text[0]
    assert "drop-high fits slowest (drop-random and none do)" in text[-1]


def test_a_spread_that_prints_as_two_values_is_never_within_zero():
    f = _prior({s: [0.69314 + 0.00001 * i] for i, s in enumerate(TRAIN)}, {s: [0.7] for s in TRAIN})
    assert "within 0.0001 of each other (0.6931 to 0.6932)" in " ".join(verdicts.prior_summary(f))


def test_one_run_left_reads_as_the_other_run():
    dev = {"none": [0.6, 0.5, 0.9], "drop-low": [0.6, 0.5, 0.4]}
    text = verdicts.overfit_sentence(_prior({s: [0.6, 0.5, 0.4] for s in dev}, dev))[1]
    assert text.endswith("; the other run still improves.")


def test_time_estimate_of_runs_side_by_side():
    from addrop.config import TrainConfig

    prior = plans.prior_plan(TrainConfig(model="minilm", epochs=3, train_size=200, dev_size=100), 0.3, [0], "")
    one, two = (plans.time_estimate(prior.configs, "minilm", workers=w) for w in (1, 2))
    lo, hi = (plans.example_passes(prior.configs) * s for s in plans.MINILM_SECONDS_PER_PASS)
    assert f"{round(lo * plans.SIDE_BY_SIDE, -1):.0f}-{round(hi * plans.SIDE_BY_SIDE, -1):.0f} s" in two
    assert "2 runs at a time" in two and "at a time" not in one and one.split(",")[0] == two.split(",")[0]
