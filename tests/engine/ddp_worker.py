"""ADDropTrainer runs on a tiny BERT, launched by tests/engine/test_ddp.py either as one process or under
`torchrun --nproc_per_node 2` (gloo, CPU). Writes <out>/{batch,example}-rank<r>.json: this rank's per-step
losses (what compute_loss returned), the AD-DROP epochs, the dropped shares and the logged losses, once with the masks
drawn per batch (the default) and once per example (ADDropConfig(seed_per_example=True)).

    python tests/engine/ddp_worker.py OUT GLOBAL_BATCH           # one process, batch GLOBAL_BATCH
    torchrun --nproc_per_node 2 tests/engine/ddp_worker.py OUT GLOBAL_BATCH
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.data import Dataset, SequentialSampler  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments  # noqa: E402

from addrop.engine.hf_trainer import ADDropConfig, ADDropTrainer  # noqa: E402

N, T, VOCAB = 16, 12, 64


class Fixed(Dataset):
    """N examples of random ids, padded to T with different lengths (so masks meet pads)."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, VOCAB, (N, T), generator=g)
        lengths = torch.randint(4, T + 1, (N,), generator=g)
        self.mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
        self.labels = torch.randint(0, 2, (N,), generator=g)

    def __len__(self):
        return N

    def __getitem__(self, i):
        return {"input_ids": self.ids[i] * self.mask[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


class Recording(ADDropTrainer):
    """The same order in one process and in two (rank r gets the r-th local batch of each global batch), and
    every step's loss as compute_loss returned it."""

    step_losses: list

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)
        if model.training:
            self.step_losses.append((loss[0] if return_outputs else loss).item())
        return loss


def main(out: str, global_batch: int) -> None:
    for per_example in (False, True):
        run(out, global_batch, per_example)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # a clean teardown: a process that exits with gloo's threads still running may abort ("terminate called
        # without an active exception"), about one run in five on this 2-core machine
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def run(out: str, global_batch: int, per_example: bool) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(0)
    # no dropout: its draws depend on which examples a process holds, so they could not match across layouts
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     vocab_size=VOCAB, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(cfg)
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="addrop-ddp-"), use_cpu=True,
                             per_device_train_batch_size=global_batch // world, num_train_epochs=2,
                             learning_rate=1e-3, warmup_steps=0, lr_scheduler_type="constant", seed=0,
                             logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
                             ddp_backend="gloo" if world > 1 else None, dataloader_drop_last=True,
                             average_tokens_across_devices=False)
    tr = Recording(model=model, args=args, train_dataset=Fixed(), addrop=ADDropConfig(p=0.3, q=0.5, layers="all",
                                                                             seed_per_example=per_example))
    tr.step_losses = []
    tr.train()
    logged = [h for h in tr.state.log_history if "loss" in h]
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"{'example' if per_example else 'batch'}-rank{rank}.json").write_text(json.dumps({
        "world": world, "rank": rank, "step_losses": tr.step_losses, "addrop_epochs": tr.addrop_epochs,
        "logged": [h["loss"] for h in logged], "shares": [h.get("addrop_dropped_share") for h in logged],
        "flags": [h.get("addrop_epoch") for h in logged]}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
