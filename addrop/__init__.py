"""addrop: attribution-driven dropout (AD-DROP, Yang et al., NeurIPS 2022) for BERT-style models."""
from .config import AttributionConfig, TrainConfig
from .errors import UserError

__all__ = ["AttributionConfig", "TrainConfig", "UserError"]
__version__ = "0.1.0"
