"""Attribution across training: views read back what the run recorded; drift and kept share are 1 for a snapshot
compared with itself and fall when GA moves."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from addrop.config import AttributionConfig, TrainConfig
from addrop.core.attribution import attribute
from addrop.core.masking import candidate_region
from addrop.engine.models import load_model
from addrop.engine.probes import ProbeSeries, read_probes
from addrop.engine.training import train
from addrop.studio.explore.across import drift, epoch_view, predictions, region_kept
from addrop.studio.plots import head_heatmap, probe_predictions

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=2, train_size=32, dev_size=16, batch_size=8, lr=3e-3,
                      probes=3, save_every_epoch=True, name="a")
    res = train(cfg, runs_dir=tmp_path_factory.mktemp("runs"))
    return res, read_probes(res.path)


def test_the_epoch_view_is_what_the_checkpoint_gives(run):
    res, s = run
    loaded = load_model(f"run:{res.path}@2", "cpu")
    v = epoch_view(s, s.epochs.index(2), probe=1, head=2, p=0.3)
    n = len(v["tokens"])
    enc = loaded.tokenizer(s.meta["texts"][1], return_tensors="pt")
    got = attribute(loaded, dict(enc), AttributionConfig(method="ga", layers=[s.meta["full_layer"]]))
    np.testing.assert_allclose(v["attention"], got.attention[0, 0, 2, :n, :n].numpy(), atol=2e-3)
    np.testing.assert_allclose(v["attribution"], got.scores[0, 0, 2, :n, :n].numpy(), atol=2e-3, rtol=2e-2)
    assert v["region"].shape == (n, n) and v["region"].any()


def test_drift_and_kept_share_are_one_against_itself_and_fall_when_ga_moves(run):
    _, s = run
    same = ProbeSeries([0, 1], s.meta, {k: np.stack([v[0], v[0]]) for k, v in s.arrays.items()})
    assert np.allclose(np.nan_to_num(drift(same), nan=1.0), 1.0)
    assert np.allclose(np.nan_to_num(region_kept(same, 0.3), nan=1.0), 1.0)
    d, k = drift(s), region_kept(s, 0.3)
    assert d.shape == (2, 2, 4) and k.shape == (2, 2, 4)
    assert np.nanmin(d) < 1 and np.nanmin(k) < 1 and np.nanmax(k) <= 1
    frame = predictions(s, ("negative", "positive"))
    assert len(frame) == 3 * 3 and frame.value.between(0, 1).all()
    assert probe_predictions(frame).data and head_heatmap(d[0], "drift").data


def test_cls_region_matches_the_full_region_rule(run):
    _, s = run
    ga = torch.from_numpy(s["full_ga"][1].astype(np.float32))  # [P, H, T, T]
    km = torch.from_numpy(s["key_mask"][0].astype(bool))
    full = candidate_region(ga[None], km, 0.3)[0, :, :, 0]  # [P, H, T]
    from addrop.studio.explore.across import cls_regions

    layer = s.meta["full_layer"]
    assert torch.equal(torch.from_numpy(cls_regions(s, 0.3)[1, layer]), full)


def test_the_chance_level_of_the_kept_share_is_what_random_regions_keep(run):
    """region_kept_chance against a simulation: the later region's positions shuffled among each row's real keys."""
    from addrop.studio.explore.across import cls_regions, drift_sentence, region_kept_chance

    _, s = run
    chance = region_kept_chance(s, 0.3)
    r = cls_regions(s, 0.3)  # [E, L, P, H, T]
    km = s["key_mask"][0].astype(bool)
    rng = np.random.default_rng(0)
    E, L, P, H, _ = r.shape
    sim = np.zeros((E - 1, L, P, H))
    for _ in range(300):
        for p in range(P):
            real = np.flatnonzero(km[p])
            shuffled = r[1:, :, p][..., real][..., rng.permutation(len(real))]  # [E-1, L, H, n]
            before = r[:-1, :, p][..., real]
            sim[:, :, p] += (before & shuffled).sum(-1) / np.maximum(before.sum(-1), 1) / 300
    np.testing.assert_allclose(chance, sim.mean(2), atol=0.05)
    text = drift_sentence(s, 0, 0.3)
    rho = float(np.nanmean(drift(s)[0]))
    assert f"mean rank correlation {rho:.2f}" in text and f"against {float(np.nanmean(chance[0])):.0%}" in text
    assert "3 probe sentences" in text
