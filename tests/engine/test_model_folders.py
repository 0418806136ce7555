"""Model folders a careless user (or an attacker) hands over: truncated or corrupt safetensors, pickled weights
only, zero layers, weights of another shape, no tokenizer, fewer positions than the default max length. Each is a
one-line UserError from engine/models.py (check_model_folder, check_architecture, check_loaded_weights), or loads
with the user told exactly what is new."""
from __future__ import annotations

import json

import pytest
import torch

from addrop.config import TrainConfig
from addrop.engine.models import load_model
from addrop.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def _folder(tmp_path, name="m", num_labels=2, **cfg):
    """A tiny BERT saved as a model folder (safetensors weights, tokenizer files)."""
    from transformers import BertConfig, BertForSequenceClassification

    tok = load_model("tiny-bert", "cpu").tokenizer
    settings = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, num_labels=num_labels)
    settings.update(cfg)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**settings))
    path = tmp_path / name
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, model


def _error(path, match, **kw):
    with pytest.raises(UserError, match=match) as e:
        load_model(str(path), "cpu", **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header-too-long"])
def test_corrupt_or_truncated_safetensors(tmp_path, damage):
    path, _ = _folder(tmp_path)
    w = path / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x13" * 300, "empty": b"",
                   "header-too-long": (10**12).to_bytes(8, "little") + data[8:]}[damage])
    _error(path, "model.safetensors is corrupt or truncated")


@pytest.mark.parametrize("layers", [0, -1, "two"])
def test_a_config_with_no_layers(tmp_path, layers):
    path, _ = _folder(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["num_hidden_layers"] = layers
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as e:
        load_model(str(path), "cpu")
    assert "layers" in str(e.value) and "\n" not in str(e.value)


def test_pickled_weights_only_are_refused(tmp_path):
    path, model = _folder(tmp_path)
    (path / "model.safetensors").unlink()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    msg = _error(path, "has only pytorch_model.bin: addrop loads safetensors weights only")
    assert "never pickled" in msg


def test_weights_of_another_shape_are_an_error_not_a_random_model(tmp_path):
    path, _ = _folder(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["intermediate_size"] = 48  # the saved feed-forward weights are 64 wide
    (path / "config.json").write_text(json.dumps(cfg))
    _error(path, "other shapes than its config")


def test_missing_encoder_weights_are_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    path, _ = _folder(tmp_path)
    w = load_file(path / "model.safetensors")
    save_file({k: v for k, v in w.items() if "layer.1." not in k}, path / "model.safetensors",
              metadata={"format": "pt"})
    _error(path, "no weights for")


def test_only_the_classification_head_may_be_new_and_the_user_is_told(tmp_path, make_batch):
    path, saved = _folder(tmp_path, num_labels=2)
    loaded = load_model(str(path), "cpu", num_labels=3, seed=1)
    assert loaded.model.config.num_labels == 3
    (note,) = loaded.notes
    assert "classifier" in note and "new classification head" in note
    enc = {k: v for k, v in loaded.model.state_dict().items() if k.startswith("bert.encoder")}
    for k, v in saved.state_dict().items():
        if k.startswith("bert.encoder"):
            assert torch.equal(enc[k], v), k  # the encoder is the saved one, not re-initialised
    same = load_model(str(path), "cpu", num_labels=2)
    assert same.notes == ()


def test_a_folder_without_tokenizer_files_is_an_error(tmp_path):
    path, _ = _folder(tmp_path)
    for f in path.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    _error(path, "has no tokenizer files")


def test_fewer_positions_than_the_default_max_length(tmp_path):
    """The default max length (128) on a 32-position model is capped to 32, said in the run's config."""
    from addrop.engine.training import train

    path, _ = _folder(tmp_path, max_position_embeddings=32)
    loaded = load_model(str(path), "cpu")
    assert loaded.max_length == 32 and loaded.tokenizer.model_max_length == 32
    notes = []
    from addrop.engine.training import Callbacks

    res = train(TrainConfig(model=str(path), task="demo", epochs=1, train_size=16, dev_size=8, batch_size=8),
                runs_dir=str(tmp_path / "runs"), callbacks=Callbacks(on_note=notes.append))
    assert res.status == "finished", res.reason
    cfg = json.loads((tmp_path / "runs" / res.id / "config.json").read_text())
    assert cfg["max_length"] == 32 and notes == [cfg["note"]] and "capped to 32" in notes[0]


def test_roberta_positions_start_after_the_padding_index():
    from transformers import RobertaConfig

    from addrop.engine.models import model_max_length

    class Tok:
        model_max_length = 10**30

    cfg = RobertaConfig(max_position_embeddings=66, pad_token_id=1)
    assert model_max_length(cfg, Tok()) == 64
