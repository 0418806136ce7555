"""GLUE metrics from predictions and labels: accuracy, F1 of class 1 (MRPC, QQP), Matthews correlation (CoLA),
Pearson and Spearman correlations (STS-B).

`compute_metrics(spec, preds, labels)` picks them from the task's `TaskSpec.metrics`. Values are fractions in
[0, 1] (or [-1, 1] for correlations), not percentages; degenerate inputs score 0 without warnings. The
correlations are scipy's; F1 and MCC are the two-line formulas (scikit-learn is not a dependency; the tests check
both against it).
"""
from __future__ import annotations

import math

import numpy as np

from .tasks import TaskSpec


def _correlation(fn, x: np.ndarray, y: np.ndarray) -> float:
    """scipy's pearsonr / spearmanr statistic; 0 for a constant input (where it is undefined)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    r = float(fn(x, y).statistic)
    return float(np.clip(r, -1.0, 1.0)) if math.isfinite(r) else 0.0


def mcc(preds: np.ndarray, labels: np.ndarray) -> float:
    classes = np.union1d(preds, labels)
    p = np.searchsorted(classes, preds)
    t = np.searchsorted(classes, labels)
    k = len(classes)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.float64)
    t_sum, p_sum = cm.sum(1), cm.sum(0)
    n, correct = cm.sum(), np.trace(cm)
    cov_tp = correct * n - np.dot(t_sum, p_sum)
    cov_pp = n * n - np.dot(p_sum, p_sum)
    cov_tt = n * n - np.dot(t_sum, t_sum)
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / math.sqrt(cov_tt * cov_pp))


def f1(preds: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    tp = int(np.sum((preds == positive) & (labels == positive)))
    fp = int(np.sum((preds == positive) & (labels != positive)))
    fn = int(np.sum((preds != positive) & (labels == positive)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def compute_metrics(spec: TaskSpec, preds, labels) -> dict[str, float]:
    """GLUE metrics: accuracy (+ f1 of class 1 for MRPC/QQP, + mcc for CoLA), or pearson/spearman.

    `preds` are class ids, or logits [N, C] (argmax is taken); for regression, floats (or [N, 1]).
    Degenerate inputs (constant predictions) score 0 for mcc and the correlations, without warnings.
    """
    p = np.asarray(preds)
    y = np.asarray(labels)
    if spec.is_regression:
        p = p.astype(np.float64).reshape(len(p), -1)[:, 0] if p.ndim > 1 else p.astype(np.float64)
    elif p.ndim > 1:
        p = p.argmax(-1)
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions for {y.shape[0]} labels")
    if y.shape[0] == 0:
        raise ValueError("no predictions to score")
    out: dict[str, float] = {}
    if spec.is_regression:
        from scipy.stats import pearsonr, spearmanr  # noqa: PLC0415 (keep importing this module light)

        y = y.astype(np.float64)
        out["pearson"] = _correlation(pearsonr, p, y)
        out["spearman"] = _correlation(spearmanr, p, y)
        out["mse"] = float(np.mean((p - y) ** 2))
        return out
    p = p.astype(np.int64)
    y = y.astype(np.int64)
    out["accuracy"] = float(np.mean(p == y))
    if "f1" in spec.metrics:
        out["f1"] = f1(p, y)
    if "mcc" in spec.metrics:
        out["mcc"] = mcc(p, y)
    return out


HALVES = ("a", "b")  # half a: even positions of the dev set, half b: odd ones


def half_metrics(spec: TaskSpec, preds, labels) -> dict[str, float]:
    """The metrics on two fixed halves of the evaluated set (a: even positions, b: odd ones) as half_a_<metric>
    and half_b_<metric>: an epoch can be chosen on one half and scored on the other. {} for fewer than 4
    examples."""
    if len(labels) < 4:
        return {}
    out: dict[str, float] = {}
    for i, name in enumerate(HALVES):
        out.update({f"half_{name}_{k}": v for k, v in
                    compute_metrics(spec, list(preds)[i::2], list(labels)[i::2]).items()})
    return out
