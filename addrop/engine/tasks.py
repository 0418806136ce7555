"""The task registry and the split type every loader returns.

- `TaskSpec`: what a task's files look like (columns, header, label strings), what its labels mean and how it
  is scored (`metrics`, `primary_metric`).
- `TASKS`: the GLUE tasks (SST-2, MRPC, RTE, CoLA, STS-B, QNLI, QQP, MNLI) and the demo set; `get_task` looks
  one up by a forgiving name (`SST-2`, `sst2`, `sts_b`).
- `Split`: texts, optional second texts (pairs) and labels, with `select` for subsets.

Label ids for the GLUE tasks follow the Hugging Face `nyu-mll/glue` datasets, so the GLUE folder and the hub
give the same ids (MNLI: entailment 0, neutral 1, contradiction 2; RTE/QNLI: entailment 0, not_entailment 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..config import TASK_ALIASES, normalize_name  # noqa: F401 (normalize_name: callers import it here)
from ..errors import UserError


# ----------------------------------------------------------------------------------------------------------
# Task registry
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    """What a task's files look like, what its labels mean, and how it is scored."""

    name: str
    glue_dir: str | None  # folder under the GLUE root (None: not a GLUE task)
    text_cols: tuple  # (text,) or (text, pair): header names, or column indices when header is False
    label_col: str | int
    num_labels: int  # 1 for regression
    label_names: tuple[str, ...]  # class names in id order; () for regression
    is_regression: bool = False
    metrics: tuple[str, ...] = ("accuracy",)
    primary_metric: str = "accuracy"
    header: bool = True
    hf_name: str | None = None  # config of the `nyu-mll/glue` dataset
    hf_cols: tuple[str, ...] = ()  # text columns in the HF dataset
    hf_dev_split: str = "validation"
    dev_file: str = "dev.tsv"
    n_cols: int | None = None  # columns per row when there is no header
    file_labels: tuple[str, ...] | None = None  # label strings as written in the files, in id order
    skip_malformed: bool = False  # skip (and count) rows with a wrong column count instead of failing
    description: str = ""

    @property
    def has_pairs(self) -> bool:
        return len(self.text_cols) > 1

    def layout(self) -> str:
        """The expected file layout, in words (for error messages)."""
        cols = ", ".join(str(c) for c in self.text_cols)
        if self.header:
            return f"tab-separated with a header row naming {cols} and {self.label_col}"
        return (f"tab-separated, no header, {self.n_cols} columns: text in column {cols}, "
                f"label in column {self.label_col} (0-based)")


_BIN = ("accuracy",)
TASKS: dict[str, TaskSpec] = {
    "demo": TaskSpec("demo", None, ("sentence",), "label", 2, ("negative", "positive"),
                     description="a small balanced sentiment set written for addrop-studio"),
    "sst-2": TaskSpec("sst-2", "SST-2", ("sentence",), "label", 2, ("negative", "positive"),
                      hf_name="sst2", hf_cols=("sentence",),
                      description="Stanford Sentiment Treebank, binary movie-review sentiment"),
    "mrpc": TaskSpec("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", 2,
                     ("not_equivalent", "equivalent"), metrics=("accuracy", "f1"),
                     hf_name="mrpc", hf_cols=("sentence1", "sentence2"),
                     description="Microsoft Research Paraphrase Corpus, paraphrase or not"),
    "rte": TaskSpec("rte", "RTE", ("sentence1", "sentence2"), "label", 2, ("entailment", "not_entailment"),
                    hf_name="rte", hf_cols=("sentence1", "sentence2"),
                    file_labels=("entailment", "not_entailment"),
                    description="Recognizing Textual Entailment"),
    "cola": TaskSpec("cola", "CoLA", (3,), 1, 2, ("unacceptable", "acceptable"),
                     metrics=("accuracy", "mcc"), primary_metric="mcc", header=False, n_cols=4,
                     hf_name="cola", hf_cols=("sentence",),
                     description="Corpus of Linguistic Acceptability, grammatical or not"),
    "sts-b": TaskSpec("sts-b", "STS-B", ("sentence1", "sentence2"), "score", 1, (), is_regression=True,
                      metrics=("pearson", "spearman"), primary_metric="pearson",
                      hf_name="stsb", hf_cols=("sentence1", "sentence2"),
                      description="Semantic Textual Similarity Benchmark, a similarity score from 0 to 5"),
    "qnli": TaskSpec("qnli", "QNLI", ("question", "sentence"), "label", 2, ("entailment", "not_entailment"),
                     hf_name="qnli", hf_cols=("question", "sentence"),
                     file_labels=("entailment", "not_entailment"),
                     description="Question-answering NLI: does the sentence answer the question"),
    "qqp": TaskSpec("qqp", "QQP", ("question1", "question2"), "is_duplicate", 2,
                    ("not_duplicate", "duplicate"), metrics=("accuracy", "f1"),
                    hf_name="qqp", hf_cols=("question1", "question2"), skip_malformed=True,
                    description="Quora Question Pairs, duplicate or not"),
    "mnli": TaskSpec("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label", 3,
                     ("entailment", "neutral", "contradiction"), hf_name="mnli",
                     hf_cols=("premise", "hypothesis"), hf_dev_split="validation_matched",
                     dev_file="dev_matched.tsv", file_labels=("entailment", "neutral", "contradiction"),
                     skip_malformed=True, description="Multi-Genre NLI (dev = matched)"),
}


_ALIASES = {normalize_name(k): k for k in TASKS}
_ALIASES.update(TASK_ALIASES)  # sst, sts, mnli-m: one table with config.paper_layers


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, ignoring case, dashes and underscores (`SST-2`, `sst2`, `sts_b`)."""
    key = _ALIASES.get(normalize_name(name))
    if key is None:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)} (or give a CSV file)")
    return TASKS[key]


# ----------------------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Split:
    """One split: texts, optional second texts (pairs), labels (class ids, or floats for regression)."""

    texts: list[str]
    pairs: list[str] | None = None
    labels: list = field(default_factory=list)  # list[int] | list[float]

    def __post_init__(self):
        if len(self.labels) != len(self.texts) or (self.pairs is not None and len(self.pairs) != len(self.texts)):
            raise ValueError("texts, pairs and labels must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_regression(self) -> bool:
        return bool(self.labels) and isinstance(self.labels[0], float)

    def select(self, indices: Sequence[int]) -> "Split":
        idx = [int(i) for i in indices]
        return Split([self.texts[i] for i in idx],
                     [self.pairs[i] for i in idx] if self.pairs is not None else None,
                     [self.labels[i] for i in idx])


GLUE_TASKS = tuple(name for name, spec in TASKS.items() if spec.glue_dir is not None)


def is_blank(text) -> bool:
    """No visible character: empty, whitespace, or only invisible format characters (zero-width space and joiners,
    word joiner, byte-order mark, soft hyphen: Unicode category Cf) and other separators."""
    import unicodedata

    if not isinstance(text, str):
        return True
    return all(c.isspace() or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp", "Cc") for c in text)
