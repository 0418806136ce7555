"""Mixed precision (TrainConfig.precision, engine/precision.py): what auto comes to, bf16 runs that agree with
fp32 ones, records that say what ran, and the CPU's gradient clipping against torch's."""
from __future__ import annotations

import json

import pytest
import torch

from addrop.config import AttributionConfig, TrainConfig
from addrop.engine import precision
from addrop.engine.training import clip_gradients, train
from addrop.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert precision.native_bf16("cpu") and precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not precision.native_bf16("cpu") and precision.resolve_precision("auto", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # asked for: emulated, slower, still allowed
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("auto", "mps") == "fp32"
    with pytest.raises(UserError, match="bf16 runs on the CPU or a CUDA GPU"):
        precision.resolve_precision("bf16", "mps")
    with pytest.raises(UserError, match="unknown precision"):
        TrainConfig(precision="fp16")


def test_cpu_flags_reads_this_machine():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    if flags:  # Linux: the flags line of /proc/cpuinfo
        assert any(f in flags for f in ("sse2", "fpu", "neon", "asimd", "fp"))


@pytest.mark.parametrize("strategy", ["vanilla", "drop-high"])
def test_bf16_runs_agree_with_fp32_and_say_so(tmp_path, strategy):
    """The same run in fp32 and in bf16 (autocast over the attribution, training and evaluation passes): not the
    same numbers (bf16 is in effect), but the same training to within 5e-3 in loss (1e-5 on this tiny random model)."""
    cfg = dict(model="tiny-bert", task="demo", strategy=strategy, epochs=2, train_size=32, dev_size=16,
               batch_size=8, lr=1e-3, attribution=AttributionConfig(layers=(0,)))
    runs = {p: train(TrainConfig(**cfg, precision=p), runs_dir=str(tmp_path / p)) for p in ("fp32", "bf16")}
    for p, res in runs.items():
        assert res.status == "finished", res.reason
        assert json.loads((tmp_path / p / res.id / "config.json").read_text())["precision"] == p
    keys = ["train_loss", "dev_loss"] + (["clean_train_loss", "dropped_share"] if strategy != "vanilla" else [])
    a, b = runs["fp32"].metrics, runs["bf16"].metrics
    assert [[m[k] for k in keys] for m in a] != [[m[k] for k in keys] for m in b]
    for ma, mb in zip(a, b):
        for k in keys:
            assert mb[k] == pytest.approx(ma[k], abs=5e-3), (k, ma[k], mb[k])


def test_auto_is_recorded_as_what_it_came_to(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
    res = train(TrainConfig(model="tiny-bert", task="demo", epochs=1, train_size=16, dev_size=8, batch_size=8,
                            precision="auto"), runs_dir=str(tmp_path))
    assert json.loads((tmp_path / res.id / "config.json").read_text())["precision"] == "fp32"


@pytest.mark.parametrize("max_norm", [1e-3, 1e6])  # clipped and left alone
def test_clip_gradients_is_clip_grad_norm_bit_for_bit(max_norm):
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    b = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 8)
    for m in (a, b):
        m(x).pow(2).sum().backward()
    na = torch.nn.utils.clip_grad_norm_(a.parameters(), max_norm)
    nb = clip_gradients(b, max_norm)
    assert torch.equal(na, nb)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa.grad, pb.grad)


def test_openmp_wait_policy_is_bounded_unless_the_user_chose(monkeypatch):
    from addrop.engine import openmp

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert openmp.set_wait_policy() and openmp.os.environ["GOMP_SPINCOUNT"] == openmp.SPIN_COUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    assert not openmp.set_wait_policy() and openmp.os.environ["GOMP_SPINCOUNT"] == "5"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert not openmp.set_wait_policy() and "GOMP_SPINCOUNT" not in openmp.os.environ


def test_python_m_addrop_sets_it_before_torch_loads():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os, runpy, sys; os.environ.pop('GOMP_SPINCOUNT', None); os.environ.pop('OMP_WAIT_POLICY', None); "
            "sys.argv = ['addrop', '--help']\n"
            "try: runpy.run_module('addrop', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('SPIN', os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert "SPIN 10000 False" in out, out
