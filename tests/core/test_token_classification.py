"""Token classification (the paper's Appendix A, NER): F is the negative loss of every token, the top-layer
[CLS] cut stays off, and ADDropTrainer trains such a model. A tiny random BERT and a tiny token-labelled set
written here."""
from __future__ import annotations

import os
import tempfile

import pytest
import torch

from addrop.config import AttributionConfig
from addrop.core.attention import install
from addrop.core.attribution import attribute
from addrop.core.objective import IGNORE
from addrop.core.passes import model_inputs

pytestmark = pytest.mark.usefixtures("one_thread")

TAGS = ("O", "PER", "LOC")
SENTENCES = [  # (words, tags)
    (["alice", "lives", "in", "paris"], ["PER", "O", "O", "LOC"]),
    (["bob", "went", "to", "the", "old", "market", "in", "london", "yesterday"],
     ["PER", "O", "O", "O", "O", "O", "O", "LOC", "O"]),
    (["rome"], ["LOC"]),
    (["carol", "and", "dave", "met", "in", "berlin"], ["PER", "O", "PER", "O", "O", "LOC"]),
]


@pytest.fixture(scope="module")
def tagger():
    from transformers import BertConfig, BertForTokenClassification

    from addrop.engine.models import load_model

    tok = load_model("tiny-bert", "cpu").tokenizer
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     vocab_size=tok.vocab_size, num_labels=len(TAGS))
    model = BertForTokenClassification(cfg).eval()
    install(model)
    return model, tok


def _encode(tok, items=SENTENCES):
    enc = tok([w for w, _ in items], is_split_into_words=True, padding=True, return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, IGNORE)
    for i, (_, tags) in enumerate(items):
        prev = None
        for j, w in enumerate(enc.word_ids(i)):
            if w is not None and w != prev:  # the first piece of each word carries its tag
                labels[i, j] = TAGS.index(tags[w])
            prev = w
    return {**dict(enc), "labels": labels}


def test_no_top_layer_cut_and_every_row_reaches_f(tagger):
    model, tok = tagger
    assert model.addrop.per_token and not model.addrop.can_cls_only and not model.addrop.can_pack
    batch = _encode(tok)
    res = attribute(model, batch, AttributionConfig(layers=None))
    assert res.path == "padded" and res.target.shape == batch["input_ids"].shape
    top = res.scores[-1]  # [B, H, T, T]: every real query row of the top layer feeds some token's loss
    km = batch["attention_mask"].bool()
    rows = top.abs().sum((1, 3))  # [B, T]
    assert bool((rows[km] > 0).all())


@pytest.mark.parametrize("target", ["pseudo", "gold"])
def test_ga_is_the_gradient_of_the_negative_loss(tagger, target):
    model, tok = tagger
    batch = _encode(tok)
    res = attribute(model, batch, AttributionConfig(layers=None, target=target))
    km = batch["attention_mask"].bool()
    with model.addrop.pass_settings(record=range(2)) as s:
        logits = model(**model_inputs(model, batch)).logits
        y = logits.argmax(-1) if target == "pseudo" else batch["labels"].clone()
        y[~km] = IGNORE
        f = -torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE,
                                               reduction="sum")
        grads = torch.autograd.grad(f, [s.probs[0], s.probs[1]])
    valid = (km[:, None, :, None] & km[:, None, None, :]).float()
    for i in range(2):
        torch.testing.assert_close(res.scores[i], grads[i] * valid, rtol=1e-5, atol=1e-7)


def test_pads_do_not_change_an_examples_scores(tagger):
    model, tok = tagger
    alone = attribute(model, _encode(tok, SENTENCES[:1]), AttributionConfig(layers=None))
    batch = _encode(tok)
    padded = attribute(model, batch, AttributionConfig(layers=None))
    n = int(batch["attention_mask"][0].sum())
    torch.testing.assert_close(padded.scores[:, 0, :, :n, :n], alone.scores[:, 0, :, :n, :n], rtol=1e-4,
                               atol=1e-6)


def test_iga_runs_on_a_token_head(tagger):
    model, tok = tagger
    res = attribute(model, _encode(tok), AttributionConfig(method="iga", steps=3, layers="0"))
    assert torch.isfinite(res.scores).all() and res.scores.abs().sum() > 0


def test_addroptrainer_trains_a_token_classifier(tagger):
    pytest.importorskip("accelerate")
    import copy

    from torch.utils.data import Dataset
    from transformers import DataCollatorForTokenClassification, TrainingArguments

    from addrop.engine.hf_trainer import ADDropConfig, ADDropTrainer

    model, tok = tagger
    model = copy.deepcopy(model)
    enc = _encode(tok)

    class Rows(Dataset):
        def __len__(self):
            return len(SENTENCES)

        def __getitem__(self, i):
            n = int(enc["attention_mask"][i].sum())
            return {k: v[i, :n].tolist() for k, v in enc.items()}

    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="addrop-tok-"), per_device_train_batch_size=2,
                             num_train_epochs=2, learning_rate=1e-3, report_to=[], use_cpu=True, disable_tqdm=True,
                             save_strategy="no", logging_steps=1, seed=0)
    tr = ADDropTrainer(model=model, args=args, train_dataset=Rows(), data_collator=DataCollatorForTokenClassification(tok),
                       addrop=ADDropConfig(p=0.3, q=0.5, layers="all"))
    tr.train()
    assert tr.addrop_epochs == [2]
    logs = [h for h in tr.state.log_history if "loss" in h]
    assert logs and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    assert any(h["addrop_dropped_share"] > 0 for h in logs)
    assert os.path.isdir(args.output_dir)
