"""Command line: python -m addrop {attribute,train,prior,bench,sweep} ... (`--help` on each)."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import UserError


def _attribute_parser(sub):
    p = sub.add_parser("attribute", help="per-head attention and attribution of one example, written as .npz",
                       description="Compute per-head attention and attribution (GA, IGA, AA, RD) of one sentence or "
                                   "pair, the AD-DROP candidate region and sampled mask, and write them as .npz.")
    p.add_argument("--model", default="minilm", help="minilm (embedded, default), tiny-bert, tiny-roberta, "
                   "tiny-electra, tiny-distilbert, a Hugging Face id or a local folder")
    p.add_argument("--text", required=True, help="the sentence to attribute")
    p.add_argument("--pair", default=None, help="an optional second sentence (sentence-pair tasks)")
    p.add_argument("--method", default="ga", choices=["ga", "iga", "aa", "rd"],
                   help="ga: gradient (Eq. 2), iga: integrated gradient (Eq. 3), aa: attention weights, rd: random")
    p.add_argument("--backend", default="native", choices=["native", "captum"],
                   help="native: addrop's own batched code; captum: the same quantity through Captum (ga, iga)")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layer indices, e.g. 0,3")
    p.add_argument("--steps", type=int, default=20, help="IGA steps m (default 20)")
    p.add_argument("--target", default="pseudo", choices=["pseudo", "gold", "label"],
                   help="pseudo: the predicted class (default); label: the class given by --label")
    p.add_argument("--label", type=int, default=None, help="class index to attribute (sets --target label)")
    p.add_argument("--p", type=float, default=0.3, help="candidate region size p in (0, 1) (Eq. 6)")
    p.add_argument("--q", type=float, default=0.3, help="drop probability q in (0, 1) inside the region (Eq. 7)")
    p.add_argument("--mode", default="high", choices=["high", "low", "random"],
                   help="high: AD-DROP's top-p region; low: the bottom p; random: keys drawn with probability p")
    p.add_argument("--ties", default="paper", choices=["paper", "strict"],
                   help="paper: keys at or above the threshold (Eq. 6); strict: constant rows are not candidates")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask draw (and of the head init)")
    p.add_argument("--num-labels", type=int, default=2, help="classes of the (fresh) classification head")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda:N")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.set_defaults(func=_cmd_attribute)


def _cmd_attribute(a) -> int:
    import numpy as np
    import torch

    from .attribution import attribute, encode
    from .config import AttributionConfig
    from .masking import dropped_share, make_drops
    from .models import load_model
    from .runs import atomic_write_bytes

    target = "label" if a.label is not None else a.target
    cfg = AttributionConfig(method=a.method, backend=a.backend, layers=a.layers, steps=a.steps, target=target,
                            label=a.label, p=a.p, q=a.q, mode=a.mode, ties=a.ties, seed=a.seed)
    if not a.out.endswith(".npz"):
        raise UserError(f"--out must name a .npz file, got {a.out!r}")
    loaded = load_model(a.model, a.device, num_labels=a.num_labels, seed=a.seed)
    batch, tokens, truncated = encode(loaded, a.text, a.pair)
    if truncated:
        print(f"note: the input was truncated to {len(tokens)} tokens (the model's maximum)", file=sys.stderr)
    res = attribute(loaded, batch, cfg)
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    region, dropped = make_drops(res.scores, res.key_mask, cfg.p, cfg.q, cfg.mode, cfg.ties, cfg.fixed_rate, gen)
    import io

    buf = io.BytesIO()
    np.savez_compressed(
        buf, tokens=np.array(tokens), layers=np.array(res.layers, dtype=np.int64),
        attention=res.attention[:, 0].float().cpu().numpy(), attribution=res.scores[:, 0].float().cpu().numpy(),
        region=region[:, 0].cpu().numpy(), dropped=dropped[:, 0].cpu().numpy(), logits=res.logits[0].float().cpu().numpy(),
        settings=np.array(json.dumps(cfg.to_dict())))
    atomic_write_bytes(a.out, buf.getvalue())
    share = dropped_share(dropped, res.key_mask)
    print(f"{a.method}/{a.backend} on {len(tokens)} tokens, layers {res.layers}: predicted class "
          f"{int(res.logits[0].argmax())}, {share:.1%} of real positions dropped, {res.seconds * 1000:.0f} ms -> {a.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m addrop", description="AD-DROP: attribution, training, benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    _attribute_parser(sub)
    for extra in _EXTRA:
        extra(sub)
    return parser


_EXTRA: list = []  # other modules' sub-command builders (train, prior, bench, sweep)


def main(argv=None) -> int:
    _load_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _load_extras():
    import importlib

    for mod in ("cli_train", "cli_bench", "cli_sweep"):
        try:
            m = importlib.import_module(f".{mod}", __package__)
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{mod}":
                raise
            continue
        if m.add_parser not in _EXTRA:
            _EXTRA.append(m.add_parser)
