"""Counts, class balance (or score range) and text lengths of a task's splits, for display."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..tasks import Split, TaskSpec


def _split_stats(spec: TaskSpec, s: Split) -> dict:
    words = [len(t.split()) + (len(p.split()) if s.pairs is not None else 0)
             for t, p in zip(s.texts, s.pairs if s.pairs is not None else s.texts)]
    d: dict = {"examples": len(s), "mean_words": float(np.mean(words)) if words else 0.0,
               "max_words": int(max(words)) if words else 0}
    if spec.is_regression:
        y = np.asarray(s.labels, dtype=np.float64)
        d.update({"label_mean": float(y.mean()) if len(y) else 0.0, "label_std": float(y.std()) if len(y) else 0.0,
                  "label_min": float(y.min()) if len(y) else 0.0, "label_max": float(y.max()) if len(y) else 0.0})
    else:
        c = Counter(int(v) for v in s.labels)
        names = spec.label_names or tuple(str(i) for i in range(spec.num_labels))
        d["classes"] = {names[i]: c.get(i, 0) for i in range(len(names))}
        d["majority_fraction"] = max(c.values()) / len(s) if len(s) else 0.0
    return d


def describe(spec: TaskSpec, train: Split, dev: Split) -> dict:
    """Counts, class balance (or score range) and text lengths, for display."""
    return {"task": spec.name, "description": spec.description, "pairs": spec.has_pairs,
            "regression": spec.is_regression, "num_labels": spec.num_labels, "label_names": list(spec.label_names),
            "metrics": list(spec.metrics), "primary_metric": spec.primary_metric,
            "train": _split_stats(spec, train), "dev": _split_stats(spec, dev)}
