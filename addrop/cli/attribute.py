"""python -m addrop attribute: per-head attention and attribution of one example, written as .npz."""
from __future__ import annotations

import io
import json
import sys

from ..config import MAX_LABELS, AttributionConfig, TrainConfig, check_device_name, check_int
from .options import add_options, attribution_from


def add_parser(sub) -> None:
    p = sub.add_parser("attribute", help="per-head attention and attribution of one example, written as .npz",
                       description="Compute per-head attention and attribution (GA, IGA, AA, RD) of one sentence or "
                                   "pair, the AD-DROP candidate region and sampled mask, and write them as .npz.")
    # the trained default, as the explorer's for the demo data: an untrained head's attribution means nothing
    add_options(p, TrainConfig, only=("model",), defaults={"model": "minilm-demo"})
    p.add_argument("--text", required=True, help="the sentence to attribute")
    p.add_argument("--pair", default=None, help="an optional second sentence (sentence-pair tasks)")
    add_options(p, AttributionConfig)
    p.add_argument("--seed", type=int, default=0, help="seed of the mask draw (and of the head init)")
    p.add_argument("--num-labels", type=int, default=2, help="classes of the (fresh) classification head")
    add_options(p, TrainConfig, only=("device",))
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.set_defaults(func=run)


def run(a) -> int:
    from ..engine.runs import atomic_write_bytes, check_output_file
    from ..engine.tasks import is_blank
    from ..errors import UserError

    # every argument is checked before torch is imported (an argument error answers at once)
    cfg = attribution_from(a, target="label" if a.label is not None else a.target, seed=a.seed)
    check_int("--num-labels", a.num_labels, 1, MAX_LABELS)
    check_device_name(a.device)
    check_output_file(a.out, ".npz")
    if is_blank(a.text):
        raise UserError("the text is empty (no visible character): type a sentence")

    import numpy as np
    import torch

    from ..core.attribution import attribute
    from ..core.masking import dropped_share, make_drops
    from ..engine.batching import encode_example
    from ..engine.models import head_note, load_model

    loaded = load_model(a.model, a.device, num_labels=a.num_labels, seed=a.seed)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    batch, tokens, truncated = encode_example(loaded, a.text, a.pair)
    if truncated:
        print(f"note: the input was truncated to {len(tokens)} tokens (the model's maximum)", file=sys.stderr)
    res = attribute(loaded, batch, cfg)
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    region, dropped = make_drops(res.scores, res.key_mask, cfg.p, cfg.q, cfg.mode, cfg.ties, cfg.fixed_rate, gen)
    buf = io.BytesIO()
    np.savez_compressed(
        buf, tokens=np.array(tokens), layers=np.array(res.layers, dtype=np.int64),
        attention=res.attention[:, 0].float().cpu().numpy(), attribution=res.scores[:, 0].float().cpu().numpy(),
        region=region[:, 0].cpu().numpy(), dropped=dropped[:, 0].cpu().numpy(),
        logits=res.logits[0].float().cpu().numpy(), settings=np.array(json.dumps(cfg.to_dict())))
    atomic_write_bytes(a.out, buf.getvalue())
    share = dropped_share(dropped, res.key_mask)
    print(f"{cfg.method}/{cfg.backend} on {len(tokens)} tokens, layers {res.layers} ({res.path} path): predicted "
          f"class {int(res.logits[0].argmax())}, {share:.1%} of real positions dropped, {res.seconds * 1000:.0f} ms "
          f"-> {a.out}")
    note = head_note(a.model)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0
