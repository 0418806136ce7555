"""Loading models by name or folder: errors a user can act on, seeds, round trips through a folder, inputs."""
from __future__ import annotations

import os

import pytest
import torch

from addrop.core.attention import Controller, IMPL, SUPPORTED_FAMILIES
from addrop.errors import UnsupportedModelError, UserError
from addrop.engine.models import BUILTIN, TINY, load_model, resolve_device
from addrop.core.passes import model_inputs

pytestmark = pytest.mark.usefixtures("one_thread")


def test_offline_for_the_whole_suite():
    assert os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_load_with_the_addrop_attention(name, make_batch, sample_texts):
    loaded = load_model(name, "cpu", num_labels=3, seed=0)
    assert loaded.name == name and loaded.device == torch.device("cpu")
    assert isinstance(loaded.ctrl, Controller) and loaded.model.config._attn_implementation == IMPL
    assert loaded.model.config.model_type in SUPPORTED_FAMILIES
    assert not loaded.model.training  # eval mode until someone trains it
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    with torch.no_grad(), loaded.ctrl.pass_settings(record=range(loaded.num_layers)) as s:
        logits = loaded.model(**model_inputs(loaded.model, batch)).logits
        assert sorted(s.probs) == list(range(loaded.num_layers))
        T = batch["input_ids"].shape[1]
        assert s.probs[0].shape == (3, loaded.num_heads, T, T)
    assert logits.shape == (3, 3)


def test_same_seed_same_model_different_seed_different_head():
    a, b, c = (load_model("tiny-bert", "cpu", seed=s) for s in (7, 7, 8))
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["classifier.weight"], sc["classifier.weight"])


def test_minilm_keeps_its_pretrained_encoder_across_seeds(minilm):
    other = load_model("minilm", "cpu", seed=1)
    s1, s2 = minilm.model.state_dict(), other.model.state_dict()
    encoder = [k for k in s1 if not k.startswith("classifier")]
    assert encoder and all(torch.equal(s1[k], s2[k]) for k in encoder)
    assert not torch.equal(s1["classifier.weight"], s2["classifier.weight"])  # the fresh head follows the seed
    assert minilm.num_layers == 6 and minilm.num_heads == 12 and minilm.max_length <= 512


def test_a_saved_folder_loads_back_to_the_same_model(tmp_path, make_batch, sample_texts):
    src = load_model("tiny-bert", "cpu", seed=3)
    src.model.save_pretrained(tmp_path)
    src.tokenizer.save_pretrained(tmp_path)
    back = load_model(str(tmp_path), "cpu", seed=99)  # a matching head is loaded, not re-initialised
    assert isinstance(back.ctrl, Controller) and back.model.config._attn_implementation == IMPL
    texts, pairs = sample_texts
    batch = make_batch(src, texts, pairs)
    assert torch.equal(batch["input_ids"], make_batch(back, texts, pairs)["input_ids"])
    with torch.no_grad():
        a = src.model(**model_inputs(src.model, batch)).logits
        b = back.model(**model_inputs(back.model, batch)).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("name,match", [
    ("no-such-model-anywhere", "cannot load 'no-such-model-anywhere'.*minilm"),
    ("some-org/no-such-model", "cannot load 'some-org/no-such-model'"),
    ("a/b/c", "unknown model 'a/b/c'"),
    ("", "no model given"),
    ("   ", "no model given"),
    ("/definitely/not/a/folder", "does not exist"),
])
def test_unknown_model_is_a_clear_user_error(name, match):
    with pytest.raises(UserError, match=match) as e:
        load_model(name, "cpu")
    assert "\n" not in str(e.value)


def test_folder_without_config_is_a_user_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UserError, match="has no config.json"):
        load_model(str(tmp_path), "cpu")


def test_folder_with_a_broken_config_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read the config"):
        load_model(str(tmp_path), "cpu")


@pytest.mark.parametrize("family", ["mpnet", "deberta-v2"])
def test_unsupported_architecture_names_the_supported_families(tmp_path, family):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, MPNetConfig, MPNetForSequenceClassification

    cfg_cls, model_cls = ((MPNetConfig, MPNetForSequenceClassification) if family == "mpnet"
                          else (DebertaV2Config, DebertaV2ForSequenceClassification))
    cfg = cfg_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    model_cls(cfg).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match=f"model type '{family}'") as e:
        load_model(str(tmp_path), "cpu")
    msg = str(e.value)
    assert "supported families" in msg and all(f in msg for f in SUPPORTED_FAMILIES)
    assert isinstance(e.value, UserError)


def test_model_inputs_keeps_only_what_each_forward_accepts(make_batch):
    for name in BUILTIN[1:]:
        loaded = load_model(name, "cpu")
        batch = make_batch(loaded, "one sentence", "and a pair")
        batch["labels"] = torch.tensor([1])
        batch["unused_field"] = torch.tensor([0])
        inputs = model_inputs(loaded.model, batch)
        assert "labels" not in inputs and "unused_field" not in inputs
        assert {"input_ids", "attention_mask"} <= set(inputs)
        # token types only where the model has more than one segment embedding
        has_types = "token_type_ids" in inputs
        assert has_types == (name in ("tiny-bert", "tiny-electra")), name
        with torch.no_grad():
            loaded.model(**inputs)  # and the model accepts what is left


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")
    else:
        with pytest.raises(UserError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
