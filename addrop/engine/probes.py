"""Attribution across training: a run follows a few dev examples ("probes") and records, before training and
after every epoch, what the explorer needs to redraw them.

On disk, in the run folder::

    probes/meta.json          the probes: dev indices, texts, gold labels, tokens; the fully kept layer
    probes/epoch-000.npz      before training; epoch-001.npz after epoch 1, ...

Each epoch file holds (float16, compressed; P probes padded to T <= MAX_PROBE_TOKENS tokens):

    probs     [P, C]        predicted probabilities (regression: the prediction, C = 1)
    cls_att   [L, P, H, T]  the [CLS] query row of every head's attention, all layers
    cls_ga    [L, P, H, T]  the same row of GA (pseudo label), all layers
    full_att  [P, H, T, T]  whole maps of one layer: the first layer the run masks (layer 0 for plain runs)
    full_ga   [P, H, T, T]
    key_mask  [P, T]

Bound: `probe_bytes(...)` is the uncompressed size; a minilm run (6 x 12 heads) with 4 probes of 64 tokens and
10 epochs (11 snapshots) stays under 10 MB before compression (tests/engine/test_probes.py checks it).
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import AttributionConfig
from ..core.attribution import attribute
from ..errors import UserError
from .batching import batches, encode
from .runs import atomic_write_bytes, atomic_write_json, is_plain_file
from .runs.names import safe_child

PROBE_DIR = "probes"
MAX_PROBE_TOKENS = 64
DEFAULT_PROBES = 4
MAX_PROBES = 16
STORED = ("probs", "cls_att", "cls_ga", "full_att", "full_ga", "key_mask")


def choose_probes(n_dev: int, count: int, ids: str | None = None) -> list[int]:
    """Dev indices to follow: `ids` ("3,17,40") when given, else `count` indices spread evenly over the dev set."""
    if ids:
        try:
            out = [int(x) for x in str(ids).replace(" ", "").split(",") if x]
        except ValueError:
            raise UserError(f"probe ids must be dev indices separated by commas, got {ids!r}") from None
        bad = [i for i in out if not 0 <= i < n_dev]
        if bad:
            raise UserError(f"probe id {bad[0]} is out of range: the dev set has {n_dev} examples (0-{n_dev - 1})")
        if len(set(out)) != len(out):
            raise UserError(f"probe ids {ids!r} repeat an example")
        if len(out) > MAX_PROBES:
            raise UserError(f"at most {MAX_PROBES} probes, got {len(out)}")
        return out
    count = max(0, min(int(count), n_dev, MAX_PROBES))
    return [int(round(i * n_dev / count)) for i in range(count)] if count else []


def probe_bytes(layers: int, heads: int, probes: int, tokens: int, snapshots: int, classes: int = 2) -> int:
    """Uncompressed bytes of a run's probe files (float16), the bound the module's docstring states."""
    per = 2 * (2 * layers * heads * tokens + 2 * heads * tokens * tokens) + 2 * classes + tokens
    return snapshots * probes * per


class ProbeRecorder:
    """Records the probes of one run (see the module's docstring). `record(model, epoch)` after every epoch."""

    def __init__(self, folder: str | os.PathLike, tokenizer, dev, indices: list[int], full_layer: int, device):
        self.folder = Path(folder) / PROBE_DIR
        self.folder.mkdir(exist_ok=True)
        self.indices = list(indices)
        self.full_layer = int(full_layer)
        self.device = device
        sub = dev.select(self.indices)
        enc = encode(tokenizer, sub, MAX_PROBE_TOKENS)
        batch = next(batches(enc, None, len(enc)))  # one batch, padded on the right; no labels: F is the prediction's
        self.batch = {k: v.to(device) for k, v in batch.items()}
        tokens = [tokenizer.convert_ids_to_tokens(e["input_ids"]) for e in enc]
        meta = {"indices": self.indices, "texts": list(sub.texts), "pairs": list(sub.pairs) if sub.pairs else None,
                "labels": [float(x) if isinstance(x, float) else int(x) for x in sub.labels],
                "tokens": tokens, "full_layer": self.full_layer, "max_tokens": MAX_PROBE_TOKENS}
        atomic_write_json(self.folder / "meta.json", meta)

    def record(self, model, epoch: int) -> None:
        res = attribute(model, self.batch, AttributionConfig(method="ga", target="pseudo", layers="all"))
        logits = res.logits.float()
        probs = logits if logits.shape[-1] == 1 else logits.softmax(-1)
        f = res.layers.index(self.full_layer)
        arrays = {"probs": probs, "cls_att": res.attention[:, :, :, 0], "cls_ga": res.scores[:, :, :, 0],
                  "full_att": res.attention[f], "full_ga": res.scores[f], "key_mask": res.key_mask}
        out = {k: (v.detach().cpu().to(torch.float16).numpy() if v.is_floating_point() else v.cpu().numpy())
               for k, v in arrays.items()}
        buf = io.BytesIO()
        np.savez_compressed(buf, **out)
        atomic_write_bytes(self.folder / f"epoch-{epoch:03d}.npz", buf.getvalue())


@dataclass
class ProbeSeries:
    """A run's probes over epochs: every array gains a leading epoch axis [E, ...] (see the module's docstring)."""

    epochs: list[int]
    meta: dict
    arrays: dict

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def read_probes(run_path: str | os.PathLike) -> ProbeSeries | None:
    """The probes a run recorded, or None when it recorded none. Broken epoch files are skipped."""
    root = Path(run_path)
    meta_file = root / PROBE_DIR / "meta.json"
    if not is_plain_file(meta_file):  # links and special files are never read (a FIFO would hang the reader)
        return None
    try:
        meta = json.loads(safe_child(root, f"{PROBE_DIR}/meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UserError):
        return None
    epochs, stacks = [], {k: [] for k in STORED}
    for f in sorted((root / PROBE_DIR).glob("epoch-*.npz")):
        if not is_plain_file(f):
            continue
        try:
            with np.load(safe_child(root, f"{PROBE_DIR}/{f.name}"), allow_pickle=False) as z:
                got = {k: z[k] for k in STORED}
            e = int(f.stem.split("-")[1])
        except (OSError, ValueError, KeyError, UserError):
            continue
        if epochs and any(got[k].shape != stacks[k][0].shape for k in STORED):
            continue
        epochs.append(e)
        for k in STORED:
            stacks[k].append(got[k])
    if not epochs:
        return None
    return ProbeSeries(epochs, meta, {k: np.stack(v) for k, v in stacks.items()})
