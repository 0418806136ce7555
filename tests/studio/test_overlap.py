"""The overlap of eval- and train-mode attribution passes' candidate regions (studio/explore/overlap.py)."""
from __future__ import annotations

import pytest
import torch

from addrop.config import AttributionConfig
from addrop.studio.explore import jaccard, pass_overlap

pytestmark = pytest.mark.usefixtures("one_thread")


def test_jaccard_against_counts():
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0 and jaccard(a & False, b & False) == 1.0


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def test_without_dropout_the_passes_give_the_same_region(load, make_batch):
    loaded = load("tiny-bert")
    _no_dropout(loaded.model)
    o = pass_overlap(loaded.model, make_batch(loaded), AttributionConfig(layers=None), draws=2)
    assert o.eval_vs_train == 1.0 and o.train_vs_train == 1.0


def test_with_dropout_they_differ_and_state_comes_back(load, make_batch):
    loaded = load("tiny-bert")
    for m in loaded.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
    model = loaded.model.eval()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    o = pass_overlap(model, make_batch(loaded), AttributionConfig(layers=None, ties="strict"), draws=3)
    assert torch.equal(torch.random.get_rng_state(), before) and not model.training
    assert 0.0 < o.eval_vs_train < 1.0 and 0.0 < o.train_vs_train < 1.0


def test_the_overlap_sentence_reads_the_two_numbers():
    from addrop.studio.explore import PassOverlap

    same = PassOverlap(0.81, 0.83, 2).sentence()
    assert "eval vs train 0.81, train vs train 0.83" in same and "1 = the same" in same
    assert "seems to matter no more than dropout's randomness (from 2 train-mode draws)" in same
    apart = PassOverlap(0.52, 0.83, 2).sentence()
    assert "by 0.31" in apart and "suggests the pass's mode changes which positions are candidates" in apart
    assert "not measured" in PassOverlap(0.7, float("nan"), 1).sentence()
