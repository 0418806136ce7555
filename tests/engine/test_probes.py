"""Probes: a run records its probe examples before training and after every epoch, within the stated bound."""
from __future__ import annotations

from pathlib import Path

import pytest

from addrop.config import TrainConfig
from addrop.engine.probes import PROBE_DIR, choose_probes, probe_bytes, read_probes
from addrop.engine.training import train
from addrop.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw):
    base = dict(model="tiny-bert", task="demo", epochs=3, train_size=32, dev_size=16, batch_size=8, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_probes_are_recorded_every_epoch_and_change_nothing_else(tmp_path):
    with_probes = train(_cfg(probes=4, name="p", strategy="addrop"), runs_dir=tmp_path)
    without = train(_cfg(name="q", strategy="addrop"), runs_dir=tmp_path)
    s = read_probes(with_probes.path)
    assert s.epochs == [0, 1, 2, 3]
    E, L, P, H = 4, 2, 4, 4
    T = s["key_mask"].shape[-1]
    assert s["probs"].shape == (E, P, 2) and s["cls_ga"].shape == (E, L, P, H, T)
    assert s["full_att"].shape == (E, P, H, T, T)
    assert s.meta["indices"] == choose_probes(16, 4) and len(s.meta["tokens"]) == P
    assert abs(s["probs"].sum(-1) - 1).max() < 1e-2  # float16 probabilities
    assert (s["cls_ga"][0] != s["cls_ga"][-1]).any()  # training moved the attribution
    assert [m["train_loss"] for m in with_probes.metrics] == [m["train_loss"] for m in without.metrics]
    assert read_probes(without.path) is None
    size = sum(f.stat().st_size for f in (Path(with_probes.path) / PROBE_DIR).glob("*.npz"))
    assert size <= probe_bytes(L, H, P, T, E)


def test_the_stated_bound_holds_for_minilm():
    assert probe_bytes(layers=6, heads=12, probes=4, tokens=64, snapshots=11) <= 10_000_000


def test_probe_choice_is_checked_before_the_run_starts(tmp_path):
    with pytest.raises(UserError, match="out of range"):
        train(_cfg(probe_ids="0,99"), runs_dir=tmp_path)
    with pytest.raises(UserError, match="repeat"):
        choose_probes(10, 0, "1,1")
    assert not any(tmp_path.iterdir())
    assert choose_probes(8, 4) == [0, 2, 4, 6]


def test_the_reader_never_opens_links_or_fifos(tmp_path):
    import os

    run = train(_cfg(probes=2, epochs=1, name="f"), runs_dir=tmp_path)
    folder = Path(run.path) / PROBE_DIR
    (folder / "epoch-001.npz").unlink()
    os.mkfifo(folder / "epoch-001.npz")  # a reader that opened it would hang here
    outside = tmp_path / "outside.npz"
    outside.write_bytes((folder / "epoch-000.npz").read_bytes())
    (folder / "epoch-002.npz").symlink_to(outside)
    s = read_probes(run.path)
    assert s.epochs == [0]
