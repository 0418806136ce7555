"""How far the attribution pass's mode moves AD-DROP's candidate region (the README's numbers): the Jaccard
overlap of the regions of an eval-mode pass (no dropout) and of train-mode passes (dropout on, as the reference
code), and of two train-mode passes, on minilm with GA and p = 0.3.

    python examples/pass_overlap.py
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
import addrop  # noqa: E402
from addrop.config import AttributionConfig  # noqa: E402
from addrop.studio.explore import pass_overlap  # noqa: E402

TEXTS = ["a gripping, funny film with a terrific cast", "the plot drags on and on while nothing at all happens",
         "an honest, moving portrait of a family", "dull, predictable and far too long",
         "i laughed, i cried, i want to see it again"]


def main() -> None:
    torch.set_num_threads(1)
    loaded = addrop.load_model("minilm", "cpu")
    for ties in ("paper", "strict"):
        for layers in ("all", "0"):
            ev, tt = [], []
            for i, text in enumerate(TEXTS):
                batch = dict(loaded.tokenizer([text], return_tensors="pt"))
                cfg = AttributionConfig(method="ga", p=0.3, ties=ties, layers=layers)
                o = pass_overlap(loaded.model, batch, cfg, draws=3, seed=10 * i)
                ev.append(o.eval_vs_train)
                tt.append(o.train_vs_train)
            print(f"ties={ties:6s} layers={layers:3s}  eval vs train {min(ev):.2f}-{max(ev):.2f} (mean "
                  f"{sum(ev) / len(ev):.2f})  train vs train {min(tt):.2f}-{max(tt):.2f} (mean {sum(tt) / len(tt):.2f})")


if __name__ == "__main__":
    main()
