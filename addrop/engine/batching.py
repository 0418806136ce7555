"""Tokenization with a truncation count, and dynamically padded batches of tensors.

- `encode(tokenizer, split, max_length)`: per-example token ids (no padding); examples longer than max_length are
  cut (longest first for pairs) and counted in `Encoded.truncated`.
- `batches(encoded, labels, batch_size, ...)`: dicts of tensors, each batch padded on the right to its own
  longest example, in file order or in a seeded shuffled order; `num_batches` counts them.
- `encode_example(loaded, text, pair)`: one example as a batch of 1 for the explorer, with its tokens.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import UserError
from .tasks import Split, is_blank


class Encoded(list):
    """A list of per-example dicts (`input_ids`, maybe `token_type_ids`) with `truncated` (how many examples
    were cut to max_length), `max_length` and `pad_token_id`."""

    truncated: int = 0
    max_length: int = 0
    note: str | None = None
    pad_token_id: int = 0


def encode(tokenizer, split: Split, max_length: int, chunk: int = 4096) -> Encoded:
    """Tokenize a split; examples longer than max_length are truncated (longest first for pairs) and counted.
    A max_length beyond the model's (the tokenizer's model_max_length, set by load_model) is capped to it, with
    `Encoded.note` saying so."""
    pair = split.pairs is not None
    limit = int(getattr(tokenizer, "model_max_length", max_length) or max_length)
    note = None
    if max_length > limit:
        note = f"max length {max_length} is more than this model takes: capped to {limit} tokens"
        max_length = limit
    need = tokenizer.num_special_tokens_to_add(pair=pair) + (2 if pair else 1)
    if max_length < need:
        raise UserError(f"max length {max_length} is too short: it must be at least {need} for this input")
    out = Encoded()
    out.max_length, out.note = max_length, note
    out.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    keys = None
    for s in range(0, len(split), chunk):
        texts = split.texts[s:s + chunk]
        pairs = split.pairs[s:s + chunk] if pair else None
        enc = tokenizer(texts, pairs, truncation=False, verbose=False)
        if keys is None:
            keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
        long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > max_length]
        if long:
            cut = tokenizer([texts[i] for i in long], [pairs[i] for i in long] if pair else None,
                            truncation=True, max_length=max_length, verbose=False)
            for j, i in enumerate(long):
                for k in keys:
                    enc[k][i] = cut[k][j]
            out.truncated += len(long)
        for i in range(len(texts)):
            out.append({k: enc[k][i] for k in keys})
    return out


def batches(encoded: Sequence[dict], labels: Sequence | None, batch_size: int, shuffle: bool = False,
            generator=None, is_regression: bool = False, pad_token_id: int | None = None,
            by_length: bool = False) -> Iterator[dict]:
    """Yield dicts of tensors, each batch padded (on the right) to its own longest example.

    Keys: input_ids and attention_mask [B, T] long, token_type_ids [B, T] when the tokenizer gave them, labels
    [B] (long, or float for regression) when `labels` is given. `shuffle` draws the order from `generator`
    (a torch.Generator) so the same seed gives the same batches. `by_length` (with shuffle): examples of similar
    length share a batch (`length_grouped`), so batches carry less padding.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    n = len(encoded)
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} examples")
    if pad_token_id is None:
        pad_token_id = getattr(encoded, "pad_token_id", 0)
    order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
    if shuffle and by_length:
        order = length_grouped(order, [len(e["input_ids"]) for e in encoded], batch_size, generator)
    has_tt = n > 0 and "token_type_ids" in encoded[0]
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        rows = [encoded[i]["input_ids"] for i in idx]
        width = max(len(r) for r in rows)
        ids = np.full((len(idx), width), pad_token_id, dtype=np.int64)  # [B, T]
        mask = np.zeros((len(idx), width), dtype=np.int64)  # [B, T]
        tt = np.zeros((len(idx), width), dtype=np.int64) if has_tt else None  # [B, T]
        for b, r in enumerate(rows):
            ids[b, :len(r)] = r
            mask[b, :len(r)] = 1
            if tt is not None:
                tt[b, :len(r)] = encoded[idx[b]]["token_type_ids"]
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if tt is not None:
            batch["token_type_ids"] = torch.from_numpy(tt)
        if labels is not None:
            batch["labels"] = torch.tensor([labels[i] for i in idx],
                                           dtype=torch.float32 if is_regression else torch.long)
        yield batch


def length_grouped(order: list[int], lengths: list[int], batch_size: int, generator=None,
                   per_group: int = 50) -> list[int]:
    """A shuffled order regrouped by length, as transformers' LengthGroupedSampler does: chunks of
    per_group * batch_size examples of `order`, each sorted by length (longest first), cut into batches, and the
    batches shuffled with `generator`. The same examples, once each."""
    size = per_group * batch_size
    chunks = []
    for s in range(0, len(order), size):
        part = sorted(order[s:s + size], key=lambda i: -lengths[i])
        chunks += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    # the short last batch stays last, so every other batch is full (as in the order without grouping)
    last = [chunks.pop()] if chunks and len(chunks[-1]) < batch_size else []
    perm = torch.randperm(len(chunks), generator=generator).tolist()
    return [i for c in [chunks[k] for k in perm] + last for i in c]


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def encode_example(loaded, text: str, pair: str | None = None, max_length: int | None = None):
    """Tokenize one example for the explorer. Returns (batch of 1 on the model's device, tokens, truncated)."""
    if is_blank(text):
        raise UserError("the text is empty (no visible character): type a sentence")
    if pair is not None and is_blank(pair):
        pair = None
    limit = min(max_length or loaded.max_length, loaded.max_length)
    tok = loaded.tokenizer
    enc = tok(text, pair, truncation=False, return_tensors="pt")
    truncated = enc["input_ids"].shape[1] > limit
    if truncated:  # tokenized again only when too long (the tokenizer knows how to cut a pair)
        enc = tok(text, pair, truncation=True, max_length=limit, return_tensors="pt")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    batch = {k: v.to(loaded.device) for k, v in enc.items()}
    return batch, tokens, truncated
