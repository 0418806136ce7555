"""Configuration dataclasses: one per concern, validated in __post_init__ with UserError messages."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .errors import UserError

METHODS = ("ga", "iga", "aa", "rd")
BACKENDS = ("native", "captum")
TARGETS = ("pseudo", "gold", "label")
MODES = ("high", "low", "random")
TIES = ("paper", "strict")
STRATEGIES = ("vanilla", "addrop", "drop-high", "drop-low", "drop-random", "none")
PRIOR_STRATEGIES = ("none", "drop-random", "drop-low", "drop-high")


def _open_unit(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 < value < 1.0:
        raise UserError(f"{name} must be strictly between 0 and 1, got {value!r}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


def parse_layers(spec) -> tuple[int, ...] | None:
    """'all' / None -> None (all layers); '0,3' or [0, 3] -> (0, 3). Negative indices count from the top."""
    if spec is None:
        return None
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s in ("", "all"):
            return None
        try:
            return tuple(int(x) for x in s.split(","))
        except ValueError:
            raise UserError(f"layers must be 'all' or comma-separated integers such as 0,3; got {spec!r}") from None
    return tuple(int(x) for x in spec)


def resolve_layers(layers: tuple[int, ...] | None, num_layers: int) -> list[int]:
    """Turn a layer selection into sorted absolute indices, checking the range against the model."""
    if layers is None:
        return list(range(num_layers))
    out = []
    for l in layers:
        a = l + num_layers if l < 0 else l
        if not 0 <= a < num_layers:
            raise UserError(f"layer {l} is out of range: this model has {num_layers} layers (0..{num_layers - 1})")
        out.append(a)
    if not out:
        raise UserError("choose at least one layer")
    return sorted(set(out))


@dataclass
class AttributionConfig:
    """How attribution is computed and how the AD-DROP mask is drawn from it (paper Eq. 2-7)."""

    method: str = "ga"  # ga | iga | aa | rd
    backend: str = "native"  # native | captum (captum: ga and iga only)
    layers: tuple[int, ...] | None = None  # None = all layers
    steps: int = 20  # m, the IGA Riemann steps (Eq. 3)
    target: str = "pseudo"  # pseudo (argmax of the first pass) | gold (the example's label) | label (a fixed class)
    label: int | None = None  # the class when target == "label"
    p: float = 0.3  # size of the candidate discard region (Eq. 6)
    q: float = 0.3  # drop probability inside the region (Eq. 7)
    mode: str = "high"  # high (AD-DROP) | low | random (prior experiment)
    ties: str = "paper"  # paper: ">= threshold" as Eq. 6 | strict: constant rows are not candidates
    fixed_rate: bool = False  # drop exactly the candidates, no q draw (prior experiment)
    seed: int = 0
    iga_chunk: int = 0  # IGA copies per batched pass; 0 = automatic (bounds memory)

    def __post_init__(self):
        self.method = str(self.method).lower()
        self.backend = str(self.backend).lower()
        _choice("attribution method", self.method, METHODS)
        _choice("backend", self.backend, BACKENDS)
        _choice("target", self.target, TARGETS)
        _choice("mode", self.mode, MODES)
        _choice("ties rule", self.ties, TIES)
        if self.backend == "captum" and self.method not in ("ga", "iga"):
            raise UserError(f"the captum backend computes ga and iga only, not {self.method}")
        self.layers = parse_layers(self.layers)
        if not isinstance(self.steps, int) or self.steps < 1:
            raise UserError(f"IGA steps must be an integer >= 1, got {self.steps!r}")
        if self.target == "label" and self.label is None:
            raise UserError("target 'label' needs a label index (--label K)")
        _open_unit("p", self.p)
        _open_unit("q", self.q)
        if self.iga_chunk < 0:
            raise UserError("iga_chunk must be >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else "all"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AttributionConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainConfig:
    """One fine-tuning run: data, strategy, optimisation. The AD-DROP part lives in `attribution`."""

    model: str = "minilm"
    task: str = "demo"  # demo | sst-2 | mrpc | ... | csv
    data_dir: str | None = None  # GLUE folder (or the ADDROP_GLUE_DIR variable)
    source: str = "auto"  # auto | glue | hf | csv | demo
    csv: str | None = None  # a CSV/TSV file with the columns below
    text_col: str = "text"
    pair_col: str | None = None
    label_col: str = "label"
    strategy: str = "vanilla"  # vanilla | addrop | drop-high | drop-low | drop-random | none
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    cross_tuning: bool = True  # addrop: plain epochs 1,3,5..., AD-DROP epochs 2,4,...
    epochs: int = 3
    train_size: int | None = None
    dev_size: int | None = None
    shots: int | None = None  # k examples per class from train (few-shot)
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 128
    seed: int = 0
    device: str = "auto"
    clean_train_loss: bool | None = None  # None: on for the prior experiment, off elsewhere
    early_stopping: int = 0  # patience in epochs on the dev loss; 0 = off
    save_weights: bool = False
    name: str | None = None  # the run id (a safe file name); generated when None

    def __post_init__(self):
        if isinstance(self.attribution, dict):
            self.attribution = AttributionConfig.from_dict(self.attribution)
        self.strategy = str(self.strategy).lower()
        _choice("strategy", self.strategy, STRATEGIES)
        for name in ("epochs", "batch_size", "max_length"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{name.replace('_', ' ')} must be an integer >= 1, got {v!r}")
        for name in ("train_size", "dev_size", "shots"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise UserError(f"{name.replace('_', ' ')} must be an integer >= 1, got {v!r}")
        if not self.lr > 0:
            raise UserError(f"learning rate must be > 0, got {self.lr!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"warmup ratio must be in [0, 1), got {self.warmup_ratio!r}")

    @property
    def masks(self) -> bool:
        """Whether this strategy ever applies attention masks."""
        return self.strategy not in ("vanilla", "none")

    @property
    def wants_clean_loss(self) -> bool:
        if self.clean_train_loss is not None:
            return self.clean_train_loss
        return self.strategy in PRIOR_STRATEGIES

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attribution"] = self.attribution.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
