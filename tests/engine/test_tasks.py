"""Tests for addrop/engine/tasks.py: the task registry and Split."""
from __future__ import annotations

import pytest

from addrop.errors import UserError
from addrop.engine.tasks import Split, TASKS, get_task


# ---------------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize("alias,name", [("sst2", "sst-2"), ("SST-2", "sst-2"), ("stsb", "sts-b"),
                                        ("STS_B", "sts-b"), ("CoLA", "cola"), ("MNLI", "mnli"),
                                        ("qqp", "qqp"), ("Demo", "demo")])
def test_get_task_aliases(alias, name):
    assert get_task(alias).name == name


def test_unknown_task():
    with pytest.raises(UserError, match="unknown task 'foo'.*sst-2"):
        get_task("foo")


def test_registry_shape():
    assert set(TASKS) == {"demo", "sst-2", "mrpc", "rte", "cola", "sts-b", "qnli", "qqp", "mnli"}
    for spec in TASKS.values():
        assert spec.is_regression == (spec.num_labels == 1)
        assert spec.primary_metric in spec.metrics
        if not spec.is_regression:
            assert len(spec.label_names) == spec.num_labels
    assert TASKS["mnli"].dev_file == "dev_matched.tsv"
    assert TASKS["cola"].primary_metric == "mcc"


# ---------------------------------------------------------------------------------------------- splits
def test_split_select_and_lengths():
    s = Split(["a", "b", "c"], ["x", "y", "z"], [0, 1, 0])
    t = s.select([2, 0])
    assert t.texts == ["c", "a"] and t.pairs == ["z", "x"] and t.labels == [0, 0] and len(t) == 2
    with pytest.raises(ValueError, match="same length"):
        Split(["a"], None, [0, 1])

