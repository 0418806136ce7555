"""AD-DROP masks (paper Eq. 6-7) checked against independent computations: ranks from argsort, exact rational
arithmetic for int(n(1-p)), binomial bounds for the random draws, and a real forward pass for "no NaN"."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from addrop.core.masking import candidate_region, dropped_share, keep_one, make_drops, sample_drops

pytestmark = pytest.mark.usefixtures("one_thread")

P_GRID = (0.01, 0.1, 0.2, 0.25, 0.3, 0.37, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.99)


def _lengths_mask(lengths, T=None) -> torch.Tensor:
    T = T or max(lengths)
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # [B, T] True = real token


def _scores(shape, seed=0) -> torch.Tensor:
    """Random tie-free scores: each row a random permutation of 0..T-1, scaled into [0, 1). (Plain float draws can
    collide once cast to float32, the precision the masks are computed in; a permutation cannot.)"""
    perm = torch.rand(shape, generator=torch.Generator().manual_seed(seed)).argsort(-1)
    return perm.to(torch.float64) / shape[-1]


def _int_exact(n: int, x: Fraction) -> int:
    """int(n * x) for the decimal value the user typed (0.3 means 3/10, not the nearest binary float)."""
    return math.floor(n * x)


def _ranks(scores: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Rank of each real key within its row, ascending (0 = lowest); pads get a rank past every real key."""
    filled = scores.masked_fill(~key_mask[None, :, None, None, :], float("inf"))
    return filled.argsort(-1).argsort(-1)


# ---------------------------------------------------------------------------------------------------- region


LENGTHS = list(range(1, 49))  # every row length from 1 to 48 in one batch


@pytest.mark.parametrize("p", P_GRID)
def test_high_region_is_the_top_keys_of_each_row(p):
    km = _lengths_mask(LENGTHS)
    s = _scores((1, len(LENGTHS), 2, km.shape[1], km.shape[1]), seed=int(p * 100))
    region = candidate_region(s, km, p, mode="high")
    ranks = _ranks(s, km)
    n = torch.tensor(LENGTHS).view(1, -1, 1, 1, 1)
    cut = torch.tensor([_int_exact(k, 1 - Fraction(str(p))) for k in LENGTHS]).view(1, -1, 1, 1, 1)
    real = km[None, :, None, :, None] & km[None, :, None, None, :]
    # Eq. 6 on tie-free rows: the keys whose ascending rank is >= int(n(1-p)), i.e. the n - int(n(1-p)) highest
    expected = (ranks >= cut) & real
    assert torch.equal(region, expected)
    per_row = region.sum(-1)  # [1, B, H, T]
    want = (n.view(1, -1, 1, 1) - cut.view(1, -1, 1, 1)).expand_as(per_row)
    rows = km[None, :, None, :].expand_as(per_row)
    assert torch.equal(per_row[rows], want[rows])
    assert per_row[~rows].sum() == 0


@pytest.mark.parametrize("p", P_GRID)
def test_low_region_is_the_int_pn_lowest_keys(p):
    km = _lengths_mask(LENGTHS)
    s = _scores((1, len(LENGTHS), 2, km.shape[1], km.shape[1]), seed=1 + int(p * 100))
    region = candidate_region(s, km, p, mode="low")
    ranks = _ranks(s, km)
    cut = torch.tensor([_int_exact(k, Fraction(str(p))) for k in LENGTHS]).view(1, -1, 1, 1, 1)
    real = km[None, :, None, :, None] & km[None, :, None, None, :]
    assert torch.equal(region, (ranks < cut) & real)


@pytest.mark.parametrize("mode", ["high", "low", "random"])
@pytest.mark.parametrize("ties", ["paper", "strict"])
def test_pads_are_never_candidates_nor_dropped(mode, ties):
    lengths = [12, 7, 3, 1]
    km = _lengths_mask(lengths, T=12)
    s = _scores((2, 4, 3, 12, 12), seed=5)
    # pad positions get scores that would win under every mode if they were looked at
    pad = ~(km[None, :, None, :, None] & km[None, :, None, None, :])
    for extreme in (1e9, -1e9):
        s2 = s.masked_fill(pad, extreme)
        gen = torch.Generator().manual_seed(0)
        region, dropped = make_drops(s2, km, 0.9, 0.9, mode, ties, fixed_rate=False, generator=gen)
        assert not region[pad.expand_as(region)].any()
        assert not dropped[pad.expand_as(dropped)].any()
        _, dropped_all = make_drops(s2, km, 0.9, 0.9, mode, ties, fixed_rate=True)
        assert not dropped_all[pad.expand_as(dropped_all)].any()


def test_random_region_share_is_p():
    km = _lengths_mask([64, 50, 37, 20], T=64)
    s = _scores((4, 4, 4, 64, 64))
    valid = (km[None, :, None, :, None] & km[None, :, None, None, :]).expand_as(s)
    N = int(valid.sum())
    for p in (0.1, 0.3, 0.7):
        region = candidate_region(s, km, p, mode="random", generator=torch.Generator().manual_seed(3))
        share = region[valid].float().mean().item()
        assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / N), (p, share)
        assert not region[~valid].any()


def test_strict_ties_constant_row_has_no_candidates_paper_makes_it_all_candidates():
    km = _lengths_mask([6, 4], T=6)
    s = _scores((1, 2, 1, 6, 6))
    s[0, 0, 0, 2] = 0.25  # a constant row over all real keys (GA gives such rows where no path reaches F)
    s[0, 1, 0, 1, :4] = -3.0  # constant over the real keys, anything on the pads
    s[0, 1, 0, 1, 4:] = torch.tensor([7.0, -9.0])
    for mode in ("high",):
        strict = candidate_region(s, km, 0.3, mode=mode, ties="strict")
        paper = candidate_region(s, km, 0.3, mode=mode, ties="paper")
        assert not strict[0, 0, 0, 2].any() and not strict[0, 1, 0, 1].any()
        assert paper[0, 0, 0, 2].all()  # ">= threshold" holds for every key of a constant row
        assert torch.equal(paper[0, 1, 0, 1], km[1])  # all real keys, no pad
        # every other row is tie-free: both rules agree there
        other = torch.ones_like(paper, dtype=torch.bool)
        other[0, 0, 0, 2] = False
        other[0, 1, 0, 1] = False
        assert torch.equal(strict[other], paper[other])
    # the low mode never selects a constant row ("strictly below" the threshold)
    low = candidate_region(s, km, 0.3, mode="low", ties="paper")
    assert not low[0, 0, 0, 2].any() and not low[0, 1, 0, 1].any()


# ---------------------------------------------------------------------------------------------------- drops


@pytest.mark.parametrize("q", [0.1, 0.3, 0.5, 0.9])
def test_dropped_share_of_candidates_is_q(q):
    km = _lengths_mask([64, 61, 40, 33, 20, 9], T=64)
    s = _scores((3, 6, 4, 64, 64), seed=11)
    region, dropped = make_drops(s, km, 0.4, q, generator=torch.Generator().manual_seed(7))
    assert not (dropped & ~region).any()  # only candidates are dropped
    N = int(region.sum())
    share = dropped.sum().item() / N
    assert abs(share - q) <= 4 * math.sqrt(q * (1 - q) / N), (q, share, N)


def test_sample_drops_fixed_rate_is_the_region():
    km = _lengths_mask([10, 4], T=10)
    s = _scores((1, 2, 2, 10, 10))
    region = candidate_region(s, km, 0.5)
    assert torch.equal(sample_drops(region, 0.3, fixed_rate=True), region)
    region2, dropped = make_drops(s, km, 0.5, 0.3, fixed_rate=True)
    assert torch.equal(region2, region) and torch.equal(dropped, region)  # tie-free rows never lose every key


def test_same_seed_same_mask_different_seed_different():
    km = _lengths_mask([20, 13], T=20)
    s = _scores((2, 2, 4, 20, 20))
    for mode in ("high", "low", "random"):
        a = make_drops(s, km, 0.5, 0.5, mode, generator=torch.Generator().manual_seed(1))
        b = make_drops(s, km, 0.5, 0.5, mode, generator=torch.Generator().manual_seed(1))
        c = make_drops(s, km, 0.5, 0.5, mode, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[1], c[1])
        if mode == "random":
            assert not torch.equal(a[0], c[0])
        else:
            assert torch.equal(a[0], c[0])  # the region itself does not depend on the seed


def test_keep_one_gives_back_the_lowest_key_of_a_row_that_lost_all():
    km = _lengths_mask([5, 3], T=5)
    s = _scores((1, 2, 1, 5, 5))
    dropped = torch.zeros(1, 2, 1, 5, 5, dtype=torch.bool)
    dropped[0, 0, 0, 1] = True  # every key of row 1 of example 0
    dropped[0, 1, 0, 2, :3] = True  # every real key of row 2 of example 1 (pads are not droppable keys)
    dropped[0, 0, 0, 3, :2] = True  # a partial row: untouched
    kept = keep_one(dropped, s, km, mode="high")
    assert torch.equal(kept[0, 0, 0, 3], dropped[0, 0, 0, 3])
    lo0 = int(s[0, 0, 0, 1].argmin())
    assert not kept[0, 0, 0, 1, lo0] and kept[0, 0, 0, 1].sum() == 4
    lo1 = int(s[0, 1, 0, 2, :3].argmin())
    assert not kept[0, 1, 0, 2, lo1] and kept[0, 1, 0, 2].sum() == 2
    hi0 = int(s[0, 0, 0, 1].argmax())  # low mode gives back the highest-scored key instead
    assert not keep_one(dropped, s, km, mode="low")[0, 0, 0, 1, hi0]


def test_dropped_share_ignores_pad_rows_and_keys():
    km = _lengths_mask([6, 3], T=6)
    s = _scores((2, 2, 2, 6, 6))
    _, dropped = make_drops(s, km, 0.5, 0.5, generator=torch.Generator().manual_seed(0))
    real = (km[None, :, None, :, None] & km[None, :, None, None, :]).expand_as(dropped)
    expected = dropped[real].double().mean().item()  # the share over real (row, key) positions only
    assert dropped_share(dropped, km) == pytest.approx(expected, abs=1e-12)
    polluted = dropped | ~real  # marks on pad rows and pad keys must not count
    assert dropped_share(polluted, km) == pytest.approx(expected, abs=1e-12)
    assert dropped_share(torch.zeros_like(dropped), km) == 0.0
    assert dropped_share(real.clone(), km) == 1.0


# ---------------------------------------------------------------------------------- with a real model pass

PQ_GRID = [(p, q) for p in (0.01, 0.3, 0.7, 0.99) for q in (0.01, 0.5, 0.99)]


@pytest.fixture(scope="module")
def tiny_ga(sample_texts):
    """tiny-bert GA scores of a padded batch: GA has constant (all-zero) rows, the hard case for Eq. 6."""
    from addrop.core.attribution import attribute
    from addrop.config import AttributionConfig
    from addrop.engine.models import load_model

    loaded = load_model("tiny-bert", "cpu")
    texts, pairs = sample_texts
    enc = loaded.tokenizer(list(texts), list(pairs), padding=True, return_tensors="pt")
    batch = dict(enc)
    res = attribute(loaded, batch, AttributionConfig(method="ga"))
    return loaded, batch, res


@pytest.mark.parametrize("fixed_rate", [True, False])
@pytest.mark.parametrize("ties", ["paper", "strict"])
def test_no_row_loses_every_key_and_logits_stay_finite(tiny_ga, fixed_rate, ties):
    from addrop.core.passes import model_inputs

    loaded, batch, res = tiny_ga
    km = res.key_mask
    assert (res.scores[-1, :, :, 1:] == 0).all()  # the last layer's non-[CLS] rows cannot reach F: constant rows
    inputs = model_inputs(loaded.model, batch)
    rows = km[None, :, None, :].expand(res.scores.shape[:-1])
    for mode in ("high", "low", "random"):
        for p, q in PQ_GRID:
            gen = torch.Generator().manual_seed(0)
            _, dropped = make_drops(res.scores, km, p, q, mode, ties, fixed_rate, gen)
            kept_keys = (~dropped & km[None, :, None, None, :]).sum(-1)  # real keys left per row
            assert (kept_keys[rows] >= 1).all(), (mode, p, q)
            with torch.no_grad(), loaded.model.addrop.pass_settings(drops={l: dropped[i] for i, l in enumerate(res.layers)}):
                out = loaded.model(**inputs).logits
            assert torch.isfinite(out).all(), (mode, p, q)


@pytest.mark.parametrize("mode", ["high", "low"])
@pytest.mark.parametrize("ties", ["paper", "strict"])
def test_length_grouped_rank_search_equals_one_pass(mode, ties):
    """The masks of a padded CPU batch are made in length-sorted groups cut to their longest example: the same
    region as one pass over the padded batch, ties (rounded scores, constant rows) included."""
    from addrop.core.grouping import worth_grouping
    from addrop.core.masking import MASK_GROUP

    lengths = [9, 3, 17, 1, 12, 12, 5, 30, 2, 8, 20]
    km = _lengths_mask(lengths, T=32)
    s = (torch.rand((2, len(lengths), 3, 32, 32), generator=torch.Generator().manual_seed(1)) * 4).round() / 4
    s[0, 0, 0] = 0.5  # a constant row
    assert worth_grouping(km, MASK_GROUP)
    grouped, _ = make_drops(s, km, 0.3, 0.3, mode, ties)
    whole, _ = make_drops(s, km, 0.3, 0.3, mode, ties, group=0)  # one call over the padded batch
    assert torch.equal(grouped, whole)
    assert torch.equal(grouped, candidate_region(s, km, 0.3, mode, ties))


def test_random_scores_fill_each_example_and_repeat_with_the_seed():
    from addrop.core.masking import random_scores

    km = _lengths_mask([3, 9, 1, 6, 7, 2], T=10)
    shape = (2, 6, 3, 10, 10)
    a = random_scores(shape, km, torch.Generator().manual_seed(0))
    b = random_scores(shape, km, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == shape
    real = km[None, :, None, :, None] & km[None, :, None, None, :]
    vals = a[real.expand(shape)]
    assert (vals > 0).all() and (vals < 1).all() and 0.4 < vals.mean().item() < 0.6
    _, dropped = make_drops(a, km, 0.3, 0.3, generator=torch.Generator().manual_seed(1))
    assert not dropped[~real.expand(shape)].any()


def test_a_random_region_needs_only_the_shape_and_gives_back_a_uniform_key():
    km = _lengths_mask([3, 2, 4, 1, 3, 2], T=4)  # more than MASK_GROUP examples: drawn in length groups
    shape = (40, 6, 25, 4, 4)  # 1,000 rows of each example
    region, dropped = make_drops(shape, km, 1.0, 1.0, "random", generator=torch.Generator().manual_seed(0))
    real = (km[None, :, None, :, None] & km[None, :, None, None, :]).expand(shape)
    assert region[real].all() and not region[~real].any()  # p = 1: every real key a candidate, no pad
    kept = real & ~dropped  # q = 1 dropped them all, so each real row got exactly one key back
    rows = km[None, :, None, :].expand(shape[:-1])
    assert (kept.sum(-1)[rows] == 1).all() and not kept.sum(-1)[~rows].any()
    share = kept[:, 0].sum((0, 1, 2)).float() / kept[:, 0].sum()  # which of example 0's 3 keys came back
    assert torch.allclose(share[:3], torch.full((3,), 1 / 3), atol=0.03)
    with pytest.raises(ValueError, match="needs scores"):
        make_drops(shape, km, 0.3, 0.3, "high")


# --------------------------------------------------------------------------- packed rows (masking.RealPairs)


def _on_rows(t: torch.Tensor, lay) -> torch.Tensor:
    """[L, B, H, T, T] -> [L, R, H, W, W]: each example's block onto its packed row, zero elsewhere (the inverse of
    RowPacking.unpack, written out here)."""
    out = t.new_zeros(t.shape[0], lay.rows, t.shape[2], lay.width, lay.width)
    for b in range(len(lay.n)):
        r, s, n = int(lay.row[b]), int(lay.start[b]), int(lay.n[b])
        out[:, r, :, s:s + n, s:s + n] = t[:, b, :, :n, :n]
    return out


PACK_LENGTHS = [12, 7, 3, 1, 9, 5, 12, 2, 4]  # 9 examples, several sharing a row of 12


@pytest.mark.parametrize("mode", ["high", "low"])
@pytest.mark.parametrize("ties", ["paper", "strict"])
@pytest.mark.parametrize("count", ["reference", "equal"])
def test_masks_drawn_on_packed_rows_are_the_padded_masks_block_by_block(mode, ties, count):
    """The same rule on the packed rows (segment_pairs) as on the padded batch: with every candidate dropped (the
    coins are the only draws, and they run over another shape), region and mask are equal once unpacked, the
    keep-one rule and the dropped share included; nothing lands off an example's block. (Ties: the reference rule
    keeps or drops a tie as a whole; the equal-count rule leaves them to torch.topk, so its scores are tie-free
    but for a constant row, which strict ties make a non-candidate.)"""
    from addrop.core.packing import RowPacking

    km = _lengths_mask(PACK_LENGTHS)
    shape = (2, len(PACK_LENGTHS), 3, 12, 12)
    if count == "reference":
        s = (torch.rand(shape, generator=torch.Generator().manual_seed(4)) * 8).round() / 8
    else:
        s = _scores(shape, seed=4)
    if count == "reference" or ties == "strict":
        s[0, 0, 1, 3] = 0.25  # a constant row
    lay = RowPacking(km)
    assert lay.rows < len(PACK_LENGTHS)  # rows really hold several examples
    pairs = lay.pairs()
    r_pad, d_pad = make_drops(s, km, 0.3, 0.3, mode, ties, fixed_rate=True, count=count)
    r_row, d_row = make_drops(_on_rows(s, lay), pairs, 0.3, 0.3, mode, ties, fixed_rate=True, count=count)
    assert r_row.shape == (2, lay.rows, 3, lay.width, lay.width)
    assert torch.equal(lay.unpack(r_row, 12), r_pad) and torch.equal(lay.unpack(d_row, 12), d_pad)
    assert int(r_row.sum()) == int(r_pad.sum()) and int(d_row.sum()) == int(d_pad.sum())  # none off the blocks
    assert dropped_share(d_row, pairs) == pytest.approx(dropped_share(d_pad, km), abs=1e-12)


@pytest.mark.parametrize("q", [0.3, 0.9])
def test_coins_on_packed_rows_fall_in_the_blocks_at_rate_q_and_keep_a_key_per_row(q):
    from addrop.core.packing import RowPacking

    km = _lengths_mask(PACK_LENGTHS * 3)
    lay = RowPacking(km)
    pairs = lay.pairs()
    shape = (4, lay.rows, 8, lay.width, lay.width)
    blocks = (pairs.keys & pairs.rows).expand(shape)
    for mode in ("high", "random"):
        scores = shape if mode == "random" else _scores(shape, seed=2)
        gen = torch.Generator().manual_seed(7)
        region, dropped = make_drops(scores, pairs, 0.5, q, mode, generator=gen)
        assert not region[~blocks].any() and not dropped[~region].any()
        kept = (blocks & ~dropped).sum(-1)  # real keys left in each row
        assert (kept[pairs.rows.expand(shape)[..., 0]] >= 1).all()
        n = int(region.sum())
        share = int(dropped.sum()) / n
        assert abs(share - q) <= 4 * math.sqrt(q * (1 - q) / n) + 0.02, (mode, share)  # keep-one gives a few back
        again = make_drops(scores, pairs, 0.5, q, mode, generator=torch.Generator().manual_seed(7))
        assert torch.equal(again[1], dropped)


def test_coins_from_a_cpu_generator_fall_on_the_candidates_in_order_whatever_the_device():
    """A CPU generator draws one coin per candidate, in row-major order, and nothing else: the mask depends on the
    seed and the candidates only (the explorer's promise: the same settings, the same mask on any device)."""
    import math as _math

    from addrop.core.masking import _coins_in

    where = torch.rand((3, 4, 5, 6), generator=torch.Generator().manual_seed(0)) < 0.3
    got = _coins_in(where, 0.4, torch.Generator().manual_seed(9))
    idx = where.reshape(-1).nonzero().squeeze(1)
    bits = torch.empty(len(idx), dtype=torch.int32).random_(generator=torch.Generator().manual_seed(9))
    want = torch.zeros(where.numel(), dtype=torch.bool)
    want[idx[bits < _math.ceil(0.4 * 2 ** 31)]] = True
    assert torch.equal(got, want.view(where.shape)) and not got[~where].any()
    if torch.cuda.is_available():  # the same coins for a mask on the GPU
        on_gpu = _coins_in(where.cuda(), 0.4, torch.Generator().manual_seed(9))
        assert torch.equal(on_gpu.cpu(), got)


@pytest.mark.parametrize("kw,match", [({"p": 30}, "p must be a share above 0 up to 1 .0.3 for 30%., got 30"),
                                      ({"p": 1.5}, "p must be"), ({"p": -0.5}, "p must be"), ({"p": 0.0}, "p must be"),
                                      ({"q": 1.2}, "q must be a share from 0"), ({"mode": "top"}, "unknown mode 'top'"),
                                      ({"ties": "loose"}, "unknown ties"), ({"count": "all"}, "unknown count")])
def test_make_drops_refuses_settings_no_mask_can_be_made_with(kw, match):
    from addrop.errors import UserError

    args = {"p": 0.3, "q": 0.3, **kw}
    km = torch.ones(2, 5, dtype=torch.bool)
    with pytest.raises(UserError, match=match):
        make_drops(torch.rand(1, 2, 2, 5, 5), km, args.pop("p"), args.pop("q"), **args)
