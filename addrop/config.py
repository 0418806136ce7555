"""Configuration dataclasses, one per concern, validated in __post_init__ with UserError messages, and the lists
of choices every layer (the CLI, the app's widgets) reads from here.

Each field carries its help text in its metadata (`setting(...)`): the command line builds its options from
these fields (addrop/cli/options.py), so two commands cannot describe or default the same setting differently.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace

from .errors import UserError

METHODS = ("ga", "iga", "aa", "rd")
METHOD_LABELS = {"ga": "GA: gradient (Eq. 2, 5)", "iga": "IGA: integrated gradient (Eq. 3)",
                 "aa": "AA: attention as attribution", "rd": "RD: random scores"}
BACKENDS = ("native", "captum")
CAPTUM_METHODS = ("ga", "iga")  # what the Captum backend computes
TARGETS = ("pseudo", "gold", "label")
MODES = ("high", "low", "random")
MODE_LABELS = {"high": "high (AD-DROP)", "low": "low", "random": "random"}
TIES = ("paper", "strict")
COUNTS = ("equal", "reference")  # keys dropped per row by the fixed-share strategies (core/masking.py)
ATTRIBUTION_PATHS = ("auto", "padded", "packed", "rows", "by-length", "per-example")
ATTRIBUTION_PASSES = ("eval", "train")  # eval: no dropout (deterministic); train: as the reference code
STRATEGIES = ("vanilla", "addrop", "drop-high", "drop-low", "drop-random", "none")
PRIOR_STRATEGIES = ("none", "drop-random", "drop-low", "drop-high")
PRIOR_MODES = {"drop-high": "high", "drop-low": "low", "drop-random": "random"}  # the region each one drops
DATA_SOURCES = ("auto", "glue", "hf", "csv", "demo")
LR_SCHEDULES = ("linear", "constant")  # linear: warm-up then linear decay; constant: warm-up then flat
STOP_ON = ("loss", "metric")  # early stopping on the dev loss or on the task's primary dev metric
LAYOUTS = ("auto", "packed", "padded")  # training/evaluation batches (engine/training.py use_packing)
PRECISIONS = ("fp32", "bf16", "auto")  # arithmetic of a run's passes (engine/precision.py)
PAPER = "paper"  # layers "paper": the task's layers in the paper (PAPER_LAYERS); elsewhere all layers
# Section 3.2 (and the reference's run_addrop.sh): AD-DROP in the first layer only for these tasks, in every
# layer for CoLA, MRPC and RTE. Keys are task names without '-' or '_'; a task not named (demo, csv): all layers.
PAPER_LAYERS: dict[str, tuple[int, ...] | None] = {"sst2": (0,), "mnli": (0,), "qnli": (0,), "qqp": (0,),
                                                   "stsb": (0,), "cola": None, "mrpc": None, "rte": None}
# other spellings of task names (keys without punctuation, as `task_key` makes them): `engine.tasks.get_task` and
# `paper_layers` both read them, so `--task sst` is SST-2 with SST-2's layers
TASK_ALIASES = {"sst": "sst-2", "sts": "sts-b", "mnlim": "mnli", "mnlimatched": "mnli"}
PRESETS = ("none", "paper")
# The reference's training regime (run_addrop.sh / sst2/trainer.py), the best epoch kept:
PAPER_PRESET = {"batch_size": 16, "lr": 1e-5, "lr_schedule": "constant", "warmup_ratio": 0.0, "max_length": 100,
                "epochs": 50, "early_stopping": 5, "stop_on": "metric", "keep_best": True}
MAX_SEED = 2**63 - 1  # torch.manual_seed and torch.Generator take 64-bit seeds
MAX_IGA_STEPS = 1000  # IGA steps m: the paper uses 20; 1000 already costs 50 times as much
MAX_LABELS = 10_000  # classes of a classification head
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"


def setting(default, help: str, **meta):
    """A dataclass field with its help text (and CLI hints: `choices`, `flag`, `aliases`, `metavar`) in metadata."""
    kw = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata={"help": help, **meta}, **kw)


def _open_unit(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 < value < 1.0:
        raise UserError(f"{name} must be strictly between 0 and 1, got {value!r}")


def check_int(name: str, value, low: int, high: int) -> int:
    """`value` as an int in [low, high] (not a bool, not a float), else a UserError naming the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_seed(value, name: str = "seed") -> int:
    return check_int(name, value, 0, MAX_SEED)


def check_device_name(device) -> str:
    """The spelling of a device, checked without torch (whether this machine has it: engine.models.resolve_device)."""
    d = str(device if device is not None else "auto").strip().lower() or "auto"
    if d == "meta":
        raise UserError("device 'meta' holds no data (it only tracks shapes), so nothing can be computed on it: "
                        f"use {DEVICE_NAMES}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", d):
        raise UserError(f"unknown device {device!r}: use {DEVICE_NAMES}")
    return d


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


def normalize_name(name) -> str:
    """A name in lower case without punctuation ('SST-2', 'sst_2' -> 'sst2'): how task and folder names compare."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def task_key(name) -> str:
    """A task name as normalize_name gives it, aliases resolved ('sst' -> 'sst2')."""
    key = normalize_name(name or "")
    alias = TASK_ALIASES.get(key)
    return key if alias is None else task_key(alias)


def is_csv_task(name) -> bool:
    """A task name that stands for a CSV's own labels, not a named task: 'csv', 'custom' or none."""
    return normalize_name(name or "") in ("csv", "custom", "")


def paper_layers(task: str | None) -> tuple[int, ...] | None:
    """The layers the paper applies AD-DROP to for `task` (Section 3.2): (0,) or None (all); all for other tasks."""
    return PAPER_LAYERS.get(task_key(task))


def with_preset(settings: dict, preset: str | None, given=None) -> dict:
    """TrainConfig keyword arguments with a preset's values for the settings not in `given` (default: the keys of
    `settings`), and `preset` recorded: `TrainConfig(**with_preset({"task": "rte"}, "paper"))`."""
    preset = preset or "none"
    _choice("preset", preset, PRESETS)
    given = set(settings) if given is None else set(given)
    out = dict(settings, preset=preset)
    if preset == "paper":
        out.update({k: v for k, v in PAPER_PRESET.items() if k not in given})
    return out


def parse_layers(spec):
    """'all' / None -> None (all); '0,3' or [0, 3] -> (0, 3), negative from the top; 'paper' stays 'paper' (the
    task's paper layers, resolved by TrainConfig and ADDropConfig; all layers where no task is known)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s in ("", "all"):
            return None
        if s == PAPER:
            return PAPER
        try:
            return tuple(int(x) for x in s.split(","))
        except ValueError:
            raise UserError(f"layers must be 'all' or comma-separated integers such as 0,3; got {spec!r}") from None
    return tuple(int(x) for x in spec)


def resolve_layers(layers: tuple[int, ...] | None, num_layers: int) -> list[int]:
    """Turn a layer selection into sorted absolute indices, checking the range against the model."""
    if layers is None or layers == PAPER:  # 'paper' with no task known: all layers
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


def _field_docs(cls):
    """Append each field's help text to the class docstring, so that help(TrainConfig) says what the settings do
    (the command line's options read the same texts)."""
    lines = [f"    {f.name}: {f.metadata['help']}" for f in fields(cls) if "help" in f.metadata]
    cls.__doc__ = (cls.__doc__ or cls.__name__).rstrip() + "\n\n    Fields:\n" + "\n".join(lines) + "\n"
    return cls


@_field_docs
@dataclass
class AttributionConfig:
    """How attribution is computed and how the AD-DROP mask is drawn from it (paper Eq. 2-7)."""

    method: str = setting("ga", "attribution: ga gradient (Eq. 2), iga integrated gradient (Eq. 3), aa attention "
                          "weights, rd random", choices=METHODS, aliases=("--attribution",))
    backend: str = setting("native", "native: addrop's own batched code; captum: the same quantity through Captum "
                           "(ga, iga)", choices=BACKENDS)
    layers: tuple[int, ...] | str | None = setting(PAPER, "layers: paper (the task's layers in the paper: 0 for "
                                                   "SST-2, MNLI, QNLI, QQP, STS-B; all for CoLA, MRPC, RTE and "
                                                   "other tasks), 'all', or indices such as 0 or 0,3",
                                                   metavar="paper|all|0,3")
    steps: int = setting(20, "IGA steps m (Eq. 3)")
    target: str = setting("pseudo", "label attributed: pseudo (the predicted class, AD-DROP's default), gold (the "
                          "example's label) or label (the class --label K)", choices=TARGETS)
    label: int | None = setting(None, "the class attributed when target is label")
    p: float = setting(0.3, "candidate region size p in (0, 1) (Eq. 6)")
    q: float = setting(0.3, "drop probability q in (0, 1) inside the region (Eq. 7)")
    mode: str = setting("high", "region: high (AD-DROP's top p), low (the bottom p), random (keys drawn with "
                        "probability p)", choices=MODES)
    ties: str = setting("paper", "paper: keys at or above the threshold (Eq. 6); strict: constant rows are not "
                        "candidates", choices=TIES)
    count: str | None = setting(None, "keys per row: equal (high, low and random all take n - int(n(1-p)), the prior "
                                "experiment's default) or reference (high n - int(n(1-p)), low int(pn), random a "
                                "coin per key; AD-DROP's default)", choices=COUNTS)
    fixed_rate: bool = setting(False, "drop exactly the candidates, no q draw (the prior experiment)", cli=False)
    seed: int = setting(0, "seed of the mask draw", cli=False)
    iga_chunk: int = setting(0, "IGA copies per batched pass; 0 = automatic (bounds memory)", cli=False)
    path: str = setting("auto", "how a padded batch is attributed: auto, padded, packed, rows, by-length or "
                        "per-example (same numbers; see addrop/core/attribution.py)", choices=ATTRIBUTION_PATHS,
                        flag="--attribution-path")
    attribution_pass: str = setting("eval", "mode of the attribution pass: eval (no dropout, deterministic) or "
                                    "train (dropout on, gradients of the probabilities after attention dropout, "
                                    "as the reference code)", choices=ATTRIBUTION_PASSES)

    def __post_init__(self):
        self.method = str(self.method).lower()
        self.backend = str(self.backend).lower()
        _choice("attribution method", self.method, METHODS)
        _choice("backend", self.backend, BACKENDS)
        _choice("target", self.target, TARGETS)
        _choice("mode", self.mode, MODES)
        _choice("ties rule", self.ties, TIES)
        if self.count is not None:
            _choice("count rule", self.count, COUNTS)
        _choice("attribution path", self.path, ATTRIBUTION_PATHS)
        _choice("attribution pass", self.attribution_pass, ATTRIBUTION_PASSES)
        if self.backend == "captum" and self.attribution_pass != "eval":
            raise UserError("the captum backend attributes in eval mode only: use attribution_pass eval")
        if self.backend == "captum" and self.method not in CAPTUM_METHODS:
            raise UserError(f"the captum backend computes {' and '.join(CAPTUM_METHODS)} only, not {self.method}")
        self.layers = parse_layers(self.layers)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise UserError(f"IGA steps must be an integer >= 1, got {self.steps!r}")
        if self.steps > MAX_IGA_STEPS:
            raise UserError(f"IGA steps {self.steps} is more than {MAX_IGA_STEPS} (each step is a forward and "
                            "backward pass; the paper uses 20)")
        if self.label is not None:
            check_int("label", self.label, 0, MAX_LABELS - 1)
        check_seed(self.seed)
        if self.target == "label" and self.label is None:
            raise UserError("target 'label' needs a label index (--label K)")
        _open_unit("p", self.p)
        _open_unit("q", self.q)
        if isinstance(self.iga_chunk, bool) or not isinstance(self.iga_chunk, int) or self.iga_chunk < 0:
            raise UserError("iga_chunk must be >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = "all" if self.layers is None else self.layers if self.layers == PAPER else list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AttributionConfig":
        """The inverse of to_dict (a None where the field needs a value, such as a record's q: the default)."""
        return cls(**_known(cls, d))


@_field_docs
@dataclass
class TrainConfig:
    """One fine-tuning run: data, strategy, optimisation. The AD-DROP part lives in `attribution`."""

    model: str = setting("minilm", "minilm (embedded, untrained head), minilm-demo (minilm fine-tuned on the demo "
                         "set), tiny-bert, tiny-roberta, tiny-electra, tiny-distilbert (random weights), "
                         "run:PATH[@EPOCH] (a run's checkpoint), a Hugging Face id or a local folder")
    task: str = setting("demo", "demo (built in), sst-2, mrpc, rte, cola, sts-b, qnli, qqp, mnli, or csv with --csv")
    data_dir: str | None = setting(None, "GLUE folder holding <TASK>/{train,dev}.tsv (default: the ADDROP_GLUE_DIR "
                                   "variable, else shared/data/glue beside the project)", metavar="DIR")
    source: str = setting("auto", "where the data comes from (auto: demo, --csv, or the GLUE folder)",
                          choices=DATA_SOURCES)
    csv: str | None = setting(None, "a CSV/TSV file with text, optional pair, and label columns", metavar="PATH")
    text_col: str = setting("text", "CSV column with the text")
    pair_col: str | None = setting(None, "CSV column with the second text, if any")
    label_col: str = setting("label", "CSV column with the label")
    strategy: str = setting("vanilla", "vanilla, addrop, or a prior-experiment strategy (drop-high, drop-low, "
                            "drop-random, none)", choices=STRATEGIES)
    attribution: AttributionConfig = setting(AttributionConfig, "AD-DROP's attribution and mask settings",
                                             cli=False)
    cross_tuning: bool = setting(True, "addrop: plain epochs 1, 3, 5, ... and AD-DROP epochs 2, 4, ... (off: "
                                 "AD-DROP at every epoch)")
    epochs: int = setting(3, "epochs")
    train_size: int | None = setting(None, "seeded subset of the training set")
    dev_size: int | None = setting(None, "seeded subset of the dev set")
    shots: int | None = setting(None, "k training examples per class (few-shot)")
    holdout: int | None = setting(None, "hold out this many training examples (drawn with --split-seed) and use "
                                  "them as the dev set: validation on training data, never on dev")
    split_seed: int | None = setting(None, "seed of the dev subset and of the held-out slice (default: --seed)")
    batch_size: int = setting(16, "batch size")
    lr: float = setting(2e-5, "peak learning rate")
    lr_schedule: str = setting("linear", "learning rate after the warm-up: linear decay to 0, or constant",
                               choices=LR_SCHEDULES)
    weight_decay: float = setting(0.01, "AdamW weight decay")
    warmup_ratio: float = setting(0.1, "share of the steps with a linear learning-rate warm-up")
    max_grad_norm: float = setting(1.0, "gradient clipping norm")
    max_length: int = setting(128, "tokens per example; longer ones are cut")
    layout: str = setting("auto", "batches: packed (real tokens only, the numbers of padded), padded, or auto "
                          "(packed on the CPU where the model allows it)", choices=LAYOUTS)
    group_by_length: bool = setting(False, "batch examples of similar length together (the Trainer's group_by_length)")
    precision: str = setting("fp32", "arithmetic of the training, attribution and evaluation passes: fp32, bf16 "
                             "(autocast), or auto (bf16 where the device has it natively)", choices=PRECISIONS)
    seed: int = setting(0, "seed (data subset and order, masks, dropout, head init)")
    device: str = setting("auto", "auto (cuda, then mps, then cpu), cpu, cuda:N")
    clean_train_loss: bool | None = setting(None, "also record the unmasked eval-mode training loss (default: on "
                                            "for the prior experiment, off elsewhere)")
    early_stopping: int = setting(0, "patience in epochs without a better dev loss or metric (0: off)")
    stop_on: str = setting("loss", "what early stopping and the best epoch watch: the dev loss, or the task's "
                           "primary dev metric (the paper)", choices=STOP_ON)
    keep_best: bool = setting(False, "with --save-weights: model.safetensors holds the best epoch's weights "
                                     "instead of the last's (status.json names the best epoch either way)")
    preset: str = setting("none", "paper: the reference's regime (batch 16, constant lr 1e-5, no warm-up, max "
                          "length 100, up to 50 epochs, early stopping on the dev metric with patience 5, best "
                          "epoch kept) for every one of those settings not given explicitly", choices=PRESETS)
    save_weights: bool = setting(False, "also write model.safetensors (a run stopped during an epoch writes its "
                                        "last finished epoch's)")
    name: str | None = setting(None, "run id (a safe file name; generated when left out)")
    save_every_epoch: bool = setting(False, "also keep every epoch's weights (open one as --model run:PATH@N)")
    probes: int = setting(0, "follow this many dev examples (at most 16) across training: attention and GA "
                          "recorded before training and after every epoch, in probes/")
    probe_ids: str | None = setting(None, "dev-subset indices to follow, e.g. 0,5,9 (default: spread evenly)",
                                    metavar="IDS")

    def __post_init__(self):
        if isinstance(self.attribution, dict):
            self.attribution = AttributionConfig.from_dict(self.attribution)
        self.strategy = str(self.strategy).lower()
        for what, value, allowed in (("strategy", self.strategy, STRATEGIES), ("preset", self.preset, PRESETS),
                                     ("learning-rate schedule", self.lr_schedule, LR_SCHEDULES),
                                     ("early-stopping target", self.stop_on, STOP_ON), ("layout", self.layout, LAYOUTS),
                                     ("precision", self.precision, PRECISIONS)):
            _choice(what, value, allowed)
        if self.attribution.layers == PAPER:
            self.attribution = replace(self.attribution, layers=paper_layers(self.task))
        for name in ("epochs", "batch_size", "max_length", "train_size", "dev_size", "shots", "holdout"):
            v = getattr(self, name)  # the last four may be None (not set)
            if (v is not None or name in ("epochs", "batch_size", "max_length")) and (not isinstance(v, int) or v < 1):
                raise UserError(f"{name.replace('_', ' ')} must be an integer >= 1, got {v!r}")
        check_seed(self.seed)
        if self.split_seed is not None:
            check_seed(self.split_seed, "split seed")
        self.device = check_device_name(self.device)
        for name in ("lr", "weight_decay", "warmup_ratio", "max_grad_norm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UserError(f"{name.replace('_', ' ')} must be a finite number, got {v!r}")
        check_int("early stopping", self.early_stopping, 0, 10**6)
        if not self.lr > 0:
            raise UserError(f"learning rate must be > 0, got {self.lr!r}")
        check_int("probes", self.probes, 0, 16)
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"warmup ratio must be in [0, 1), got {self.warmup_ratio!r}")

    @property
    def uses_masks(self) -> bool:
        """Whether this strategy ever applies attention masks."""
        return self.strategy not in ("vanilla", "none")

    def masking(self) -> AttributionConfig | None:
        """The attribution and mask settings the strategy actually uses (None: it never masks). The prior
        experiment's drop-* strategies (paper Section 2.2) attribute the gold label with GA (drop-random: random
        scores, RD) and drop exactly the chosen share p of each row (the highest, the lowest or random keys): q
        does not apply to them, and by default (count "equal") all three take the same number of keys per row."""
        if not self.uses_masks:
            return None
        a = self.attribution
        if self.strategy in PRIOR_MODES:
            mode = PRIOR_MODES[self.strategy]
            return replace(a, method="rd" if mode == "random" else "ga", backend="native", target="gold", mode=mode,
                           fixed_rate=True, count=a.count or "equal")
        return replace(a, backend="native", count=a.count or "reference")

    def record(self) -> dict:
        """What a run does, for its config.json: `to_dict()` with `attribution` the settings the masks are made with
        (`masking()`; None for vanilla and none), q None where every candidate is dropped (no q draw), cross_tuning
        None where nothing is masked and False for drop-* (masks every epoch), clean_train_loss resolved."""
        d = self.to_dict()
        m = self.masking()
        d["attribution"] = None if m is None else m.to_dict()
        if m is not None and m.fixed_rate:
            d["attribution"]["q"] = None
        d["cross_tuning"] = None if m is None else (self.cross_tuning if self.strategy == "addrop" else False)
        d["clean_train_loss"] = self.wants_clean_loss
        return d

    @property
    def wants_clean_loss(self) -> bool:
        return self.strategy in PRIOR_STRATEGIES if self.clean_train_loss is None else self.clean_train_loss

    def to_dict(self) -> dict:
        return dict(asdict(self), attribution=self.attribution.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The inverse of to_dict and of record() (its None attribution and cross_tuning: the defaults)."""
        return cls(**_known(cls, d))


def _known(cls, d: dict) -> dict:
    """The entries of d that name fields of cls, without None for a field whose default is not None."""
    out = {}
    for f in fields(cls):
        if f.name in d and (d[f.name] is not None or f.default is None):
            out[f.name] = d[f.name]
    return out

