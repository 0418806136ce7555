"""Fine-tune the embedded MiniLM on a GLUE task with AD-DROP, through transformers' own Trainer.

    python examples/hf_trainer_example.py --task mrpc --data-dir /path/to/glue --train-size 400 --epochs 2
    python examples/hf_trainer_example.py --task demo --no-addrop        # the plain Trainer, for comparison

Everything but the `addrop=` argument is ordinary transformers code: swap `ADDropTrainer` for `Trainer` (or
pass `addrop=None`) and you have the plain fine-tuning run with the same seed.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, TrainingArguments
from transformers.utils import logging as hf_logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

from addrop import ADDropConfig, ADDropTrainer  # noqa: E402
from addrop.engine.data import load_data, subset  # noqa: E402
from addrop.engine.metrics import compute_metrics  # noqa: E402
from addrop.engine.models import minilm_path  # noqa: E402


class Examples(torch.utils.data.Dataset):
    """A GLUE split tokenized once; the collator pads each batch."""

    def __init__(self, split, tokenizer, max_length=128):
        enc = tokenizer(split.texts, split.pairs, truncation=True, max_length=max_length)
        self.rows = [{k: enc[k][i] for k in enc} | {"labels": split.labels[i]} for i in range(len(split))]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mrpc", help="a GLUE task (mrpc, sst-2, rte, cola, sts-b, ...) or demo")
    ap.add_argument("--data-dir", default=None, help="GLUE folder (default: $ADDROP_GLUE_DIR)")
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--dev-size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--p", type=float, default=0.3)
    ap.add_argument("--q", type=float, default=0.3)
    ap.add_argument("--no-addrop", action="store_true", help="plain fine-tuning (the same as transformers.Trainer)")
    ap.add_argument("--out", default="runs/hf-trainer-example")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    spec, train, dev = load_data(a.task, data_dir=a.data_dir)
    train, dev = subset(train, a.train_size, a.seed), subset(dev, a.dev_size, a.seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(a.seed)  # the new classification head
    hf_logging.set_verbosity_error()  # (the head is new: no "newly initialized" report)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=spec.num_labels)
    hf_logging.set_verbosity_warning()

    def metrics(pred):
        logits = pred.predictions
        preds = logits.reshape(-1) if spec.is_regression else np.argmax(logits, axis=-1)
        return compute_metrics(spec, preds.tolist(), pred.label_ids.tolist())

    args = TrainingArguments(output_dir=a.out, num_train_epochs=a.epochs, per_device_train_batch_size=16,
                             per_device_eval_batch_size=64, learning_rate=5e-5, warmup_steps=0.1, weight_decay=0.01,
                             eval_strategy="epoch", save_strategy="no", logging_steps=5, report_to=[], seed=a.seed,
                             dataloader_pin_memory=torch.cuda.is_available())
    trainer = ADDropTrainer(
        model=model, args=args, train_dataset=Examples(train, tokenizer), eval_dataset=Examples(dev, tokenizer),
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics,
        # AD-DROP: GA attribution with the pseudo label, candidate region p, drop probability q, the task's
        # paper layers, cross-tuning (epochs 1, 3, ... plain; 2, 4, ... AD-DROP). None: the plain Trainer.
        addrop=None if a.no_addrop else ADDropConfig(method="ga", p=a.p, q=a.q, task=a.task, cross_tuning=True),
    )
    trainer.train()
    result = trainer.evaluate()
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    return result


if __name__ == "__main__":
    main()
