"""Writes assets/trained/minilm-demo.safetensors: all-MiniLM-L6-v2 fine-tuned on the built-in demo set.

    python assets/trained/make_minilm_demo.py          # about a minute on a 2-core CPU

A plain fine-tune (vanilla, 3 epochs, batch 16, lr 5e-5, seed 0, the 400 demo training sentences), shipped as a
change to the embedded encoder so that it stays small (see addrop/engine/weights.py): rank-16 factors of each
encoder matrix's change, the full change of the vectors, the pooler and classifier as trained; the embeddings
are the encoder's own. The dev accuracy written into the file's metadata is that of the shipped form, measured
on the 140 demo dev sentences after loading it back.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RANK = 16
SETTINGS = dict(model="minilm", task="demo", source="demo", strategy="vanilla", epochs=3, batch_size=16, lr=5e-5,
                seed=0, device="cpu", save_weights=True, name="minilm-demo")


def main() -> None:
    from safetensors.torch import save_file

    from addrop import TrainConfig, load_model, train
    from addrop.engine.data.demo import load_demo
    from addrop.engine.runs import load_weights
    from addrop.engine.training import evaluate
    from addrop.engine.batching import encode
    from addrop.engine.weights import TRAINED, make_delta, merge_delta

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = train(TrainConfig(**SETTINGS), runs_dir=tmp)
        if run.status != "finished":
            raise SystemExit(f"training ended {run.status}: {run.reason}")
        tuned = load_weights(run.path)
    base = load_model("minilm", "cpu", num_labels=2, seed=0)
    delta = make_delta(base.model.state_dict(), tuned, RANK)
    merge_delta(base.model, delta)
    spec, _, dev = load_demo()
    _, metrics = evaluate(base, encode(base.tokenizer, dev, 128), dev.labels, spec, 64)
    info = {"base": "minilm", "task": "demo", "rank": RANK, "training": SETTINGS,
            "dev_accuracy": round(float(metrics["accuracy"]), 4),
            "dev_accuracy_full_finetune": round(float(run.metrics[-1]["dev_accuracy"]), 4),
            "num_dev": len(dev.labels)}
    dest = TRAINED["minilm-demo"][2]
    save_file(delta, str(dest), metadata={"format": "pt", "addrop": json.dumps(info)})
    print(json.dumps(info), f"{dest.stat().st_size / 1e6:.2f} MB", f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
