"""Deletion curves: p = 0 changes nothing, seeded and reproducible, stacked passes equal one pass per mask, the
CLI writes the numbers the library call gives, the summary places GA and low by their intervals in the measure asked
for, and the layers are checked before any work and said as used."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from addrop.cli import main
from addrop.engine.data.demo import load_demo
from addrop.engine.models import load_model
from addrop.experiments.faithfulness import DeletionSettings, deletion_curves, deletion_summary, layers_used
from addrop.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
KW = dict(n=12, ps=(0, 0.3, 0.7), rd_seeds=2, batch_size=5, bootstrap=200)


@pytest.fixture(scope="module")
def setup():
    spec, _, dev = load_demo()
    return load_model("tiny-bert", "cpu", seed=3), spec, dev


def test_p_zero_changes_nothing_and_larger_p_drops_more(setup):
    loaded, spec, dev = setup
    t = deletion_curves(loaded, spec, dev, DeletionSettings(methods=("ga", "aa", "rd", "low", "iga"), **KW)).table
    zero = t[t.p == 0]
    assert (zero.prob_change == 0).all() and (zero.logit_change == 0).all() and (zero.flip_rate == 0).all()
    assert set(t.method) == {"ga", "aa", "rd", "low", "iga"} and (t.n == 12).all()
    for _, rows in t.groupby("method"):
        assert rows.sort_values("p").dropped_share.is_monotonic_increasing
    assert (t[t.p > 0].logit_change != 0).any()
    assert (t.prob_change_lo <= t.prob_change + 1e-12).all() and (t.prob_change <= t.prob_change_hi + 1e-12).all()


def test_seeded_and_stacking_passes_changes_no_number(setup):
    loaded, spec, dev = setup
    a = deletion_curves(loaded, spec, dev, DeletionSettings(**KW)).table
    b = deletion_curves(loaded, spec, dev, DeletionSettings(**KW)).table
    c = deletion_curves(loaded, spec, dev, DeletionSettings(chunk_rows=1, **KW)).table  # one mask per pass
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c, atol=1e-6, rtol=0)
    other = deletion_curves(loaded, spec, dev, DeletionSettings(**{**KW, "seed": 1})).table
    assert not other.prob_change.equals(a.prob_change)  # another seed: other examples and draws


def test_the_cli_writes_what_the_library_gives(setup, tmp_path, capsys):
    loaded, spec, dev = setup
    lib = deletion_curves(loaded, spec, dev, DeletionSettings(n=10, methods=("ga", "rd", "low"), ps=(0, 0.5))).table
    assert main(["faithfulness", "--model", "tiny-bert", "--seed", "0", "--n", "10", "--methods", "ga,rd,low",
                 "--p", "0,0.5", "--device", "cpu", "--out", str(tmp_path / "new" / "dir")]) == 0
    got = pd.read_csv(tmp_path / "new" / "dir" / "deletion.csv")
    assert (tmp_path / "new" / "dir" / "deletion.html").stat().st_size > 0
    # the CLI's head is initialised with --seed 0; rebuild that model for the comparison
    lib0 = deletion_curves(load_model("tiny-bert", "cpu", seed=0), spec, dev,
                           DeletionSettings(n=10, methods=("ga", "rd", "low"), ps=(0, 0.5))).table
    pd.testing.assert_frame_equal(lib0.reset_index(drop=True), got, check_dtype=False, atol=1e-9, rtol=1e-6)
    assert len(lib) == len(got)
    assert "note: tiny-bert has an untrained classification head" in capsys.readouterr().err


def test_head_notes_name_heads_not_trained_on_the_data():
    from addrop.engine.models import head_note

    assert "untrained classification head" in head_note("minilm") and head_note("minilm-demo", "demo") is None
    assert "trained on the demo set, not mrpc" in head_note("minilm-demo", "mrpc")
    assert head_note("minilm-demo") is None and head_note("run:/somewhere", "mrpc") is None


def test_bad_settings_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(UserError, match="unknown method"):
        DeletionSettings(methods=("gx",))
    with pytest.raises(UserError, match="p must be"):
        DeletionSettings(ps=(0.1, 1.0))
    assert main(["faithfulness", "--model", "tiny-bert", "--p", "0,x", "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o").exists()


def _table(p=0.1, measure="prob_change", **rows):
    """A deletion table of one p: method=(mean, lo, hi) of `measure`."""
    return pd.DataFrame([{"method": m, "p": p, measure: v, f"{measure}_lo": lo, f"{measure}_hi": hi}
                         for m, (v, lo, hi) in rows.items()])


def _clause(line: str, subject: str) -> str:
    """The sentence of `line` that starts with `subject`."""
    return line[line.index(subject):].split(". ")[0]


def test_the_summary_says_no_change_when_nothing_moves():
    t = _table(0.3, ga=(0.0001, 0.0, 0.0002), rd=(0.0001, 0.0, 0.0002))
    assert deletion_summary(t) == ["p = 0.3: no method moves the predicted class's probability by 0.005 or more "
                                   "(GA included)."]
    t.loc[0, ["prob_change", "prob_change_lo", "prob_change_hi"]] = (-0.2, -0.3, -0.1)
    line = deletion_summary(t)[0]
    assert line.startswith("p = 0.3: GA lowers the predicted class's probability most: -0.200 (95% interval")
    assert "GA (what AD-DROP uses) lowers it more than RD (the intervals are apart)" in line
    aa = _table(0.3, aa=(-0.15, -0.25, -0.05))
    line = deletion_summary(pd.concat([t, aa], ignore_index=True))[0]  # attention weights: the claim's other baseline
    assert "; AA: -0.150 (-0.250 to -0.050); RD: " in line
    assert "GA (what AD-DROP uses) lowers it more than RD (the intervals are apart); its interval overlaps that " \
           "of AA, so no difference is shown." in line


def test_the_summary_always_says_where_ga_and_low_stand():
    # the teacher's table: IGA lowers most, and GA (what AD-DROP uses) must still be placed, and low summarised
    t = _table(ga=(-0.47, -0.5676, -0.3638), iga=(-0.614, -0.66, -0.57), aa=(-0.238, -0.29, -0.19),
               rd=(-0.02, -0.03, -0.01), low=(0.004, -0.02, 0.026))
    line, = deletion_summary(t)
    assert line.startswith("p = 0.1: IGA lowers the predicted class's probability most: -0.614")
    assert "; GA: -0.470 (-0.568 to -0.364);" in line and "; low: +0.004 (-0.020 to +0.026)." in line
    assert _clause(line, "GA (what") == ("GA (what AD-DROP uses) lowers it less than IGA but more than AA and RD "
                                         "(the intervals are apart)")
    assert _clause(line, "low (") == ("low (dropping GA's lowest positions) lowers it less than GA's top positions "
                                      "(the intervals are apart); its interval overlaps that of RD, so no difference "
                                      "is shown.")
    # GA's interval widened into IGA's: no "less than IGA" any more, the overlap is said instead
    t.loc[t.method == "ga", "prob_change_lo"] = -0.6
    ga = _clause(deletion_summary(t)[0], "GA (what")
    assert "IGA" not in ga.split(";")[0] and "its interval overlaps that of IGA" in ga
    # low raising the probability is said as such, not as "lowers it less"
    t.loc[t.method == "low", ["prob_change", "prob_change_lo", "prob_change_hi"]] = (0.106, 0.075, 0.135)
    assert _clause(deletion_summary(t)[0], "low (") == (
        "low (dropping GA's lowest positions) raises it (its whole interval is above 0) and leaves it higher than RD "
        "and GA's top positions (the intervals are apart).")
    # without GA, the summary says that the claim about GA is not tested
    assert deletion_summary(t[t.method != "ga"])[-1].startswith("GA is not among the methods")
    # no intervals (bootstrap 0): nothing is called more or less
    t[["prob_change_lo", "prob_change_hi"]] = float("nan")
    line, = deletion_summary(t)
    assert " more than" not in line and " less than" not in line and "not compared with IGA, AA and RD" in line


def test_every_comparison_in_the_summary_agrees_with_the_intervals():
    rng = np.random.default_rng(0)
    for _ in range(200):
        means = rng.uniform(-0.6, 0.1, 5)
        widths = rng.uniform(0.01, 0.15, 5)
        t = _table(**{m: (v, v - w, v + w) for m, v, w in zip(("ga", "iga", "aa", "rd", "low"), means, widths)})
        ga = _clause(deletion_summary(t)[0], "GA (what")
        rows = t.set_index("method")
        for other in ("iga", "aa", "rd"):
            name = other.upper()
            apart = rows.prob_change_hi["ga"] < rows.prob_change_lo[other] or \
                rows.prob_change_lo["ga"] > rows.prob_change_hi[other]
            parts = [c for c in ga.split(";") if re.search(rf"\b{name}\b", c)]
            assert len(parts) == 1, (ga, name)  # every method is placed once
            assert ("overlaps" in parts[0]) == (not apart), (ga, name)
            if apart:  # "less" (or "higher", when GA raises it) sits before "but", "more" or "lower" after it
                first = parts[0].split(" but ")[0]
                said = "less" if re.search(rf"(less|higher) than [^;]*\b{name}\b", first) else "more"
                assert (said == "more") == (rows.prob_change["ga"] < rows.prob_change[other]), (ga, name)


def test_the_summary_speaks_of_the_measure_asked_for():
    t = pd.concat([_table(ga=(-0.47, -0.55, -0.36), rd=(-0.02, -0.03, -0.01), low=(0.0, -0.02, 0.02)),
                   _table(measure="flip_rate", ga=(0.5, 0.4, 0.6), rd=(0.0, 0.0, 0.0), low=(0.0, 0.0, 0.0))
                   .drop(columns=["method", "p"])], axis=1)
    flips, = deletion_summary(t, "flip_rate")
    assert flips.startswith("p = 0.1: GA flips the largest share of predictions: 0.500 (95% interval 0.400 to "
                            "0.600)") and "probability" not in flips
    assert "GA (what AD-DROP uses) flips more predictions than RD (the intervals are apart)" in flips
    assert "low (dropping GA's lowest positions) flips fewer predictions than GA's top positions" in flips
    assert "probability" in deletion_summary(t)[0]
    t[["flip_rate", "flip_rate_lo", "flip_rate_hi"]] = 0.0
    assert deletion_summary(t, "flip_rate") == ["p = 0.1: no method flips any prediction (GA included)."]


def test_layers_are_said_as_used_and_minus_one_is_the_last(setup, tmp_path, capsys):
    loaded, spec, dev = setup
    top = loaded.num_layers - 1
    assert layers_used("all", loaded.num_layers) == f"layers 0-{top} (all)" == layers_used(None, loaded.num_layers)
    assert layers_used("-1", loaded.num_layers) == f"layer {top} (-1: the last)"
    assert layers_used(str(top), loaded.num_layers) == f"layer {top}"
    with pytest.raises(UserError, match="out of range"):
        layers_used(str(loaded.num_layers), loaded.num_layers)
    kw = dict(n=6, methods=("ga", "rd"), ps=(0, 0.5), bootstrap=50)
    last = deletion_curves(loaded, spec, dev, DeletionSettings(layers="-1", **kw))
    named = deletion_curves(loaded, spec, dev, DeletionSettings(layers=str(top), **kw))
    pd.testing.assert_frame_equal(last.table, named.table)  # -1 is the last layer, one rule with the CLI's
    assert last.settings["layers"] == [top] and last.settings["layers_used"] == f"layer {top} (-1: the last)"
    assert main(["faithfulness", "--model", "tiny-bert", "--n", "6", "--methods", "ga", "--p", "0,0.5", "--layers",
                 "-1", "--device", "cpu", "--out", str(tmp_path / "o")]) == 0
    assert f"6 examples, layer {top} (-1: the last), " in capsys.readouterr().out


def test_bad_layers_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(UserError, match="layers must be 'all' or comma-separated integers such as 0,3; got 'abc'"):
        DeletionSettings(layers="abc")
    assert main(["faithfulness", "--model", "tiny-bert", "--layers", "abc", "--out", str(tmp_path / "o")]) == 2
    assert "got 'abc'" in capsys.readouterr().err and not (tmp_path / "o").exists()
