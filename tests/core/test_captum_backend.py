"""The Captum backend computes the same GA and IGA as the native code, through a different route (Captum's
layer attribution at the controller's probes, IG along a gate from 0 to 1)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("captum")

from addrop.config import AttributionConfig  # noqa: E402
from addrop.core.attribution import attribute  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _both(loaded, batch, labels=None, **kw):
    native = attribute(loaded, batch, AttributionConfig(backend="native", **kw), labels=labels)
    captum = attribute(loaded, batch, AttributionConfig(backend="captum", **kw), labels=labels)
    assert native.backend == "native" and captum.backend == "captum"
    assert native.layers == captum.layers
    if native.path != "padded":  # packed or length-split: the same numbers up to rounding
        assert _rel(native.attention, captum.attention) <= 1e-5  # as test_length_split_equals_one_padded_pass
    else:
        assert torch.equal(native.attention, captum.attention)
    assert torch.equal(native.target, captum.target) or (native.target.isnan().all() and captum.target.isnan().all())
    assert (native.logits - captum.logits).abs().max().item() <= 1e-6
    assert native.scores.shape == captum.scores.shape
    return native, captum


@pytest.fixture
def model_named(request, load, minilm):
    return minilm if request.param == "minilm" else load(request.param)


@pytest.mark.parametrize("model_named", ["tiny-bert", "tiny-distilbert", "minilm"], indirect=True)
def test_native_equals_captum(model_named, make_batch, sample_texts):
    loaded = model_named
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    native, captum = _both(loaded, batch, method="ga")
    assert _rel(captum.scores, native.scores) <= 1e-5
    steps = 5 if loaded.name == "minilm" else 20
    layers = (0, 3, 5) if loaded.name == "minilm" else None
    native, captum = _both(loaded, batch, method="iga", steps=steps, layers=layers)
    assert _rel(captum.scores, native.scores) <= 1e-5
    assert native.scores.abs().max() > 0


def test_native_equals_captum_for_iga_20_steps_fixed_label_and_layer_subset(load, make_batch, sample_texts):
    loaded = load("tiny-roberta", num_labels=3)
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    native, captum = _both(loaded, batch, method="iga", steps=20, target="label", label=2, layers="1")
    assert native.layers == [1] and (native.target == 2).all()
    assert _rel(captum.scores, native.scores) <= 1e-5
    native, captum = _both(loaded, batch, method="ga", target="label", label=0, layers=(-1, 0))
    assert native.layers == [0, 1]
    assert _rel(captum.scores, native.scores) <= 1e-5


def test_native_equals_captum_for_regression(load, make_batch, sample_texts):
    """num_labels=1: Captum gets F per example from the forward function instead of a target class."""
    loaded = load("tiny-electra", num_labels=1)
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    for labels in (torch.tensor([0.5, -1.0, 2.0]), None):
        for method in ("ga", "iga"):
            native, captum = _both(loaded, batch, labels=labels, method=method, steps=6)
            assert _rel(captum.scores, native.scores) <= 1e-5, (method, labels)
