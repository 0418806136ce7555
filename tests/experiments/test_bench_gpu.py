"""The self-contained GPU check, run on the CPU with the tiny size and --quick settings: the record's keys, sane
numbers, the printed table, and that it imports neither Captum, plotly nor streamlit. No timing assertions."""
from __future__ import annotations

import json
import os
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from addrop.errors import UserError
from addrop.experiments.bench import gpu
from addrop.experiments.bench.lengths import SWEEP_METHODS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    threads = torch.get_num_threads()
    assert gpu.main(["--quick", "--sizes", "tiny", "--device", "cpu", "--threads", "1", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # the run's thread setting does not leak
    return json.loads(out.read_text())


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_record(record):
    assert record["device"] == "cpu" and record["quick"] is True
    r = record["sizes"]["tiny"]
    assert r["layers"] == 2 and r["heads"] == 4
    assert set(r["step_ms"]) == set(gpu.STEP_KEYS)
    assert set(r["ratios"]) == set(gpu.STEP_KEYS) - {"vanilla"}
    for k, v in r["step_ms"].items():
        assert _finite_positive(v), (k, v)
    for k, q in r["ratios"].items():
        assert _finite_positive(q["median"]) and q["min"] <= q["median"] <= q["max"], (k, q)
        assert q["n"] == gpu.QUICK["repeats"]
    assert set(r["peak_mem_mb"]) == set(gpu.STEP_KEYS)
    assert set(r["drops_ms"]) == set(gpu.STEP_KEYS) - {"vanilla"}
    f = r["flops"]
    assert set(f["gflop"]) == set(f["ratio_floor"]) == set(gpu.STEP_KEYS)
    assert f["gflop"]["rd_all"] == f["gflop"]["vanilla"]  # masks change no product
    assert f["gflop"]["vanilla"] < f["gflop"]["ga_all"] < f["gflop"]["iga_all"] and f["matmul_gflop_per_s"] > 0
    sw = r["sweep"]
    assert sw["lengths"] == list(gpu.QUICK["sweep_lengths"]) and set(sw["ms"]) == set(SWEEP_METHODS)
    for m in SWEEP_METHODS:
        assert math.isfinite(sw["exponent"][m])


def test_table(record):
    text = gpu.format_gpu(record)
    assert "| size | method |" in text and "ga_all" in text and "rd_layer0" in text and "sweep tiny" in text
    assert "FLOP-limited ratio" in text and "FLOPs tiny:" in text


def test_random_models():
    for size in ("tiny",):
        loaded = gpu.random_model(size, "cpu")
        assert loaded.tokenizer is None and loaded.max_length == 512
        assert loaded.ctrl.num_layers == 2
    cfg = gpu.size_config("roberta-large")  # the paper's sizes, checked on the config only (no weights built)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size,
            cfg.vocab_size, cfg.max_position_embeddings, cfg.pad_token_id) == (1024, 24, 16, 4096, 50265, 514, 1)
    cfg = gpu.size_config("bert-base")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size,
            cfg.vocab_size) == (768, 12, 12, 3072, 30522)
    with pytest.raises(UserError):
        gpu.random_model("huge", "cpu")
    with pytest.raises(UserError):
        gpu.gpu_check(sizes=("tiny",), device="cpu", repeats=0)


def test_no_app_imports():
    code = ("import addrop.experiments.bench.gpu, sys; "
            "print([m for m in ('captum', 'plotly', 'streamlit') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
