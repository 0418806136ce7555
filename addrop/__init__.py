"""addrop: attribution-driven dropout (AD-DROP, Yang et al., NeurIPS 2022) for BERT-style models."""
from .config import AttributionConfig, TrainConfig
from .errors import UserError

__all__ = ["AttributionConfig", "TrainConfig", "UserError", "ADDropTrainer", "ADDropConfig"]
__version__ = "0.1.0"

_LAZY = {"ADDropTrainer": "hf_trainer", "ADDropConfig": "hf_trainer"}  # heavy imports (transformers.Trainer)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
