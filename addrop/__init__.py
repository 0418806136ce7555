"""addrop: attribution-driven dropout (AD-DROP, Yang et al., NeurIPS 2022) for BERT-style models.

    from addrop import load_model, attribute, make_drops, AttributionConfig
    loaded = load_model("minilm")                      # any BERT-family model, attention routed through addrop
    res = attribute(loaded, batch, AttributionConfig(method="ga"))        # [L, B, H, T, T] scores (Eq. 2-5)
    region, dropped = make_drops(res.scores, res.key_mask, p=0.3, q=0.3)  # Eq. 6-7

    from addrop import train, TrainConfig              # fine-tuning runs with run records
    from addrop import ADDropTrainer, ADDropConfig     # AD-DROP inside a transformers.Trainer script

The package is layered; each folder imports only from the ones below it:

    cli/          python -m addrop ...: one module per command
    studio/       what the app shows, without Streamlit: explorer analysis, figures, background jobs
    experiments/  prior and compare plans, p x q sweeps, the benchmark
    engine/       models, tasks and data, batching, metrics, training, run records, the HF Trainer subclass
    core/         the paper's method: Eq. 1-7 and Algorithm 1 (see core/__init__.py)
    config.py, errors.py   settings and the one error type a person reads
"""
from .config import AttributionConfig, TrainConfig
from .errors import UserError

__all__ = ["attribute", "make_drops", "load_model", "train", "ADDropTrainer", "ADDropConfig", "AttributionConfig",
           "TrainConfig", "UserError"]
__version__ = "0.1.0"

# loaded on first use: importing addrop stays light (torch, transformers.Trainer)
_LAZY = {"attribute": "core.attribution", "make_drops": "core.masking", "load_model": "engine.models",
         "train": "engine.training", "ADDropTrainer": "engine.hf_trainer", "ADDropConfig": "engine.hf_trainer"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
