"""Length groups of a padded batch: on a CPU, padding costs as much as real tokens, so the attribution passes and
the masks of a padded batch may work on length-sorted groups, each cut to its own longest example. The numbers
are the same as one padded pass (up to rounding); tests check it. On a GPU one big pass is faster.
"""
from __future__ import annotations

import torch


def right_padded(key_mask: torch.Tensor) -> bool:
    """Every row is its real tokens then its pads (a tokenizer with padding_side="right"). Groups, cuts and
    packed passes need it; a left-padded (or otherwise) batch runs as one padded pass instead."""
    km = key_mask.bool()
    n = km.sum(-1, keepdim=True)
    return bool((km == (torch.arange(km.shape[-1], device=km.device)[None, :] < n)).all())


def worth_grouping(key_mask: torch.Tensor, size: int) -> bool:
    """A padded, right-padded CPU batch of more than `size` examples is worth handling in length-sorted groups."""
    return (key_mask.device.type == "cpu" and key_mask.shape[0] > size and not bool(key_mask.all())
            and right_padded(key_mask))


def length_groups(key_mask: torch.Tensor, size: int, force: bool = False) -> list[tuple[torch.Tensor | slice, int]]:
    """[(example indices, width)]: a batch worth grouping (or any batch, with `force`) as length-sorted groups of
    `size` examples, each with the length of its longest; any other batch as one group of full width.
    `size` 0 never groups, nor does a batch that is not right-padded (the cut to a width keeps the first tokens)."""
    if size < 1 or not (force or worth_grouping(key_mask, size)) or not right_padded(key_mask):
        return [(slice(None), key_mask.shape[-1])]
    n = key_mask.sum(-1)
    return [(idx, int(n[idx].max())) for idx in n.argsort(descending=True, stable=True).split(size)]
