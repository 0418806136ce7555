"""Packing helpers: groups bounded by a token budget, pack/unpack round trip, the block-diagonal mask."""
from __future__ import annotations

import torch

from addrop.core.packing import groups, pack, unpack


def test_groups_respect_the_budget_and_cover_every_example_in_order():
    lengths = torch.tensor([5, 7, 3, 20, 1, 1, 9])
    gs = groups(lengths, 12)
    assert torch.equal(torch.cat(gs), torch.arange(len(lengths)))
    for g in gs:
        assert lengths[g].sum() <= 12 or len(g) == 1  # an example longer than the budget goes alone
    assert [g.tolist() for g in gs] == [[0, 1], [2], [3], [4, 5, 6]]


def test_pack_and_unpack_round_trip():
    km = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]).bool()
    ids = torch.arange(12).view(3, 4)
    packed, starts, n = pack({"input_ids": ids, "attention_mask": km.long()}, km, offset=2)
    assert packed["input_ids"].tolist() == [[0, 1, 2, 4, 5, 8, 9, 10, 11]]
    assert packed["position_ids"].tolist() == [[2, 3, 4, 2, 3, 2, 3, 4, 5]]
    assert starts.tolist() == [0, 3, 5] and n.tolist() == [3, 2, 4]
    mask = packed["attention_mask"][0, 0]
    same = torch.block_diag(*(torch.ones(k, k) for k in n.tolist())).bool()
    assert torch.equal(mask == 0, same) and (mask[~same] == torch.finfo(mask.dtype).min).all()
    maps = torch.arange(2 * 1 * 1 * 9 * 9, dtype=torch.float32).view(2, 1, 1, 9, 9)
    out = unpack(maps, starts, n, 4)  # [L, B, H, T, T]
    assert out.shape == (2, 3, 1, 4, 4)
    assert torch.equal(out[:, 1, :, :2, :2], maps[:, 0, :, 3:5, 3:5])
    assert out[:, 1, :, 2:].abs().sum() == 0 and out[:, 0, :, :, 3:].abs().sum() == 0
