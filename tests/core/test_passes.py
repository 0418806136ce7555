"""The leaf helpers of the core's passes (core/passes.py): switching a model's mode as Module.train does."""
from __future__ import annotations

import torch
from torch import nn

from addrop.core.passes import eval_mode, pass_mode, set_mode


def test_set_mode_sets_what_module_train_sets(load):
    model = load("tiny-bert").model
    for mode in (False, True, False):
        set_mode(model, mode)
        want = [m.training for m in model.modules()]
        model.train(not mode)
        model.train(mode)  # the reference: Module.train itself
        assert [m.training for m in model.modules()] == want == [mode] * len(want)


def test_a_module_with_its_own_train_is_switched_by_it():
    calls = []

    class Own(nn.Linear):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    model = nn.Sequential(nn.Linear(2, 2), Own(2, 2), nn.Dropout(0.5))
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert calls == [False, True] and all(m.training for m in model.modules())
    model.eval()
    with pass_mode(model, "train"):
        assert all(m.training for m in model.modules())
    assert not any(m.training for m in model.modules())
    x = torch.ones(1, 2)
    assert torch.equal(model(x), model(x))  # eval: dropout off
