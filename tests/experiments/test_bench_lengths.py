"""The length sweep on tiny-bert with tiny settings: every key is there, exponents are finite where two points
exist, the time cap stops a method at longer lengths. No timing assertions (speed is measured, never asserted)."""
from __future__ import annotations

import math

import pytest
import torch

from addrop.engine.models import load_model
from addrop.errors import UserError
from addrop.experiments.bench.lengths import SWEEP_METHODS, length_at, length_sweep, loglog_slope, synthetic_batch
from addrop.experiments.bench.report import format_lengths


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-bert", "cpu")


@pytest.fixture(scope="module")
def record(loaded):
    return length_sweep(loaded, lengths=(16, 8), batch_size=2, iga_steps=2, repeats=1, threads=1)


def test_record_has_every_key(record):
    for key in ("batch_size", "lengths", "ms", "peak_mb", "exponent", "explorer_ga_1s_max_len",
                "explorer_ga_1s_interp", "skipped"):
        assert key in record, key
    assert record["lengths"] == [8, 16] and record["batch_size"] == 2  # measured in increasing order
    for group in ("ms", "peak_mb", "exponent"):
        assert set(record[group]) == set(SWEEP_METHODS)
    assert record["skipped"] == {}
    for m in SWEEP_METHODS:
        assert len(record["ms"][m]) == 2 and all(v > 0 and math.isfinite(v) for v in record["ms"][m])
        assert math.isfinite(record["exponent"][m])  # two measured points: a slope
        assert all(v is None or v >= 0 for v in record["peak_mb"][m])


def test_cap_skips_longer_lengths(loaded):
    rec = length_sweep(loaded, lengths=(8, 16), batch_size=1, iga_steps=2, repeats=1, cap_s=1e-9, threads=1)
    assert set(rec["skipped"]) == set(SWEEP_METHODS)
    for m in SWEEP_METHODS:
        assert rec["ms"][m][0] is not None and rec["ms"][m][1] is None  # T=8 measured once, T=16 not
        assert rec["peak_mb"][m][1] is None
        assert rec["exponent"][m] is None  # one point: no slope
        assert "cap" in rec["skipped"][m] and "T=8" in rec["skipped"][m]
    text = format_lengths(rec)
    assert "n/a" in text and "cap" in text


def test_too_long_lengths_are_skipped(loaded):
    rec = length_sweep(loaded, lengths=(8, 600), batch_size=1, iga_steps=2, repeats=1, threads=1)
    assert rec["lengths"] == [8] and rec["too_long"] == [600]
    assert all(v is None for v in rec["exponent"].values())


def test_synthetic_batch(loaded):
    b = synthetic_batch(loaded, 3, 7, torch.Generator().manual_seed(0))
    assert b["input_ids"].shape == (3, 7) and bool(b["attention_mask"].all())
    assert int(b["input_ids"][:, 1:].min()) >= 5 and int(b["input_ids"].max()) < loaded.model.config.vocab_size
    assert (b["input_ids"][:, 0] == loaded.tokenizer.cls_token_id).all()
    assert set(b["labels"].tolist()) <= {0, 1}
    again = synthetic_batch(loaded, 3, 7, torch.Generator().manual_seed(0))
    assert torch.equal(b["input_ids"], again["input_ids"])  # seeded


def test_fit_and_one_second_length():
    lengths = [32, 64, 128]
    assert loglog_slope(lengths, [10.0, 40.0, 160.0]) == pytest.approx(2.0)
    assert loglog_slope(lengths, [10.0, None, None]) is None
    at, how = length_at(lengths, [250.0, 500.0, 2000.0])
    assert how == "interpolated" and at == pytest.approx(64 * 2 ** 0.5)
    at, how = length_at(lengths, [125.0, 250.0, 500.0])  # slope 1: 1 s at T = 256
    assert how.startswith("extrapolated") and at == pytest.approx(256.0)
    at, _ = length_at(lengths, [1.0, 1.0, 1.0])  # flat: never reaches it
    assert at is None


def test_format(record):
    for md in (False, True):
        text = format_lengths(record, markdown=md, memory=True)
        assert "T=8" in text and "T=16" in text and "exponent" in text and "1 s" in text
    assert sum(line.startswith("|---") for line in format_lengths(record, markdown=True).splitlines()) == 1


@pytest.mark.parametrize("kw", [dict(lengths=()), dict(lengths=(0,)), dict(lengths=(8,), repeats=0),
                                dict(lengths=(8,), cap_s=0), dict(lengths=(8,), batch_size=0),
                                dict(lengths=(8,), threads=0)])
def test_bad_input(loaded, kw):
    with pytest.raises(UserError):
        length_sweep(loaded, **kw)
