"""Tests for addrop/engine/metrics.py: GLUE metrics, checked against scipy and scikit-learn."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from addrop.engine.metrics import compute_metrics, mcc
from addrop.engine.tasks import TASKS


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_invariants():
    y = [0, 1, 1, 0, 1]
    m = compute_metrics(TASKS["mrpc"], y, y)
    assert m == {"accuracy": 1.0, "f1": 1.0}
    m = compute_metrics(TASKS["cola"], y, y)
    assert m["mcc"] == 1.0 and m["accuracy"] == 1.0
    assert compute_metrics(TASKS["cola"], [1 - v for v in y], y)["mcc"] == pytest.approx(-1.0)
    assert set(compute_metrics(TASKS["sst-2"], y, y)) == {"accuracy"}
    r = compute_metrics(TASKS["sts-b"], [0.1, 2.0, 3.5, 4.9], [0.0, 2.0, 3.0, 5.0])
    assert r["spearman"] == pytest.approx(1.0) and 0.98 < r["pearson"] <= 1.0
    # logits are argmaxed
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    assert compute_metrics(TASKS["sst-2"], logits, [0, 1])["accuracy"] == 1.0


def test_metrics_degenerate_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(TASKS["cola"], [1, 1, 1, 1], [0, 1, 1, 0])
        assert m["mcc"] == 0.0 and m["accuracy"] == 0.5
        m = compute_metrics(TASKS["mrpc"], [0, 0, 0], [0, 0, 0])
        assert m["f1"] == 0.0 and m["accuracy"] == 1.0
        r = compute_metrics(TASKS["sts-b"], [2.5, 2.5, 2.5], [1.0, 2.0, 4.0])
        assert r["pearson"] == 0.0 and r["spearman"] == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        compute_metrics(TASKS["sst-2"], [0, 1], [0])


def test_metrics_against_scipy():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 200)
    p = y + rng.normal(0, 1, 200)
    p[:20] = np.round(p[:20])  # ties
    r = compute_metrics(TASKS["sts-b"], p, y)
    assert r["pearson"] == pytest.approx(pearsonr(p, y)[0], abs=1e-12)
    assert r["spearman"] == pytest.approx(spearmanr(p, y)[0], abs=1e-12)
    # regression preds shaped [N, 1] (a model's logits) work too
    assert compute_metrics(TASKS["sts-b"], p[:, None], y)["pearson"] == pytest.approx(r["pearson"])


def test_metrics_against_sklearn():
    import sklearn.metrics as skm  # a test requirement: the cross-check must run, not skip
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 50)
        p = np.where(rng.random(50) < 0.7, y, 1 - y)
        m = compute_metrics(TASKS["mrpc"], p, y)
        assert m["f1"] == pytest.approx(skm.f1_score(y, p))
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
        assert compute_metrics(TASKS["cola"], p, y)["mcc"] == pytest.approx(skm.matthews_corrcoef(y, p))
    y3 = rng.integers(0, 3, 60)
    p3 = rng.integers(0, 3, 60)
    assert mcc(p3, y3) == pytest.approx(skm.matthews_corrcoef(y3, p3))



def test_half_metrics_score_the_even_and_the_odd_positions():
    from addrop.engine.metrics import half_metrics

    spec = TASKS["mrpc"]
    preds, labels = [1, 0, 1, 1, 0, 0], [1, 1, 1, 0, 0, 1]
    h = half_metrics(spec, preds, labels)
    assert h["half_a_accuracy"] == compute_metrics(spec, preds[0::2], labels[0::2])["accuracy"] == 1.0
    assert h["half_b_accuracy"] == compute_metrics(spec, preds[1::2], labels[1::2])["accuracy"] == 0.0
    assert "half_a_f1" in h and half_metrics(spec, preds[:3], labels[:3]) == {}
