"""Loaders, subsets and a data description.

- Loaders that all return `(TaskSpec, train: Split, dev: Split)` (see `addrop.tasks`): `load_glue` (a GLUE folder
  as written by GLUE's `download_glue_data.py`), `load_hf` (the optional `datasets` package), `load_csv` (a
  CSV/TSV file or an uploaded buffer) and `load_demo` (the small sentiment set shipped in `assets/demo`).
  `load_data` picks one from its arguments.
- Seeded subsets (`subset`, `k_shot`) and `describe` (counts, class balance, text lengths) for display.

Metrics are in `addrop.metrics`, tokenization and batches in `addrop.batching`.
"""
from __future__ import annotations

import csv
import io
import math
import os
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UserError
from .tasks import TASKS, Split, TaskSpec, _norm, get_task

GLUE_ENV = "ADDROP_GLUE_DIR"
DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
SOURCES = ("auto", "glue", "hf", "csv", "demo")


# ----------------------------------------------------------------------------------------------------------
# GLUE folders
# ----------------------------------------------------------------------------------------------------------
def _parse_label(spec: TaskSpec, raw: str, where: str):
    raw = raw.strip()
    if spec.is_regression:
        try:
            v = float(raw)
        except ValueError:
            raise UserError(f"{where}: score {raw!r} is not a number") from None
        if not math.isfinite(v):
            raise UserError(f"{where}: score {raw!r} is not a finite number")
        return v
    if spec.file_labels is not None:
        try:
            return spec.file_labels.index(raw)
        except ValueError:
            raise UserError(f"{where}: label {raw!r} is not one of {', '.join(spec.file_labels)}") from None
    try:
        v = int(raw)
    except ValueError:
        raise UserError(f"{where}: label {raw!r} is not an integer class id") from None
    if not 0 <= v < spec.num_labels:
        raise UserError(f"{where}: label {v} is outside 0..{spec.num_labels - 1}")
    return v


def _read_tsv(path: Path, spec: TaskSpec) -> Split:
    """Read one GLUE-style TSV with QUOTE_NONE (sentences contain unbalanced quotes)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start}); GLUE files are UTF-8") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if not rows:
        raise UserError(f"{path} is empty; expected {spec.layout()}")
    start = 0
    if spec.header:
        header = [h.strip() for h in rows[0]]
        missing = [c for c in (*spec.text_cols, spec.label_col) if c not in header]
        if missing:
            raise UserError(f"{path} has no column {', '.join(map(repr, missing))} in its header "
                            f"(found: {', '.join(header)}); expected {spec.layout()}")
        ncols = len(header)
        tcols = [header.index(c) for c in spec.text_cols]
        lcol = header.index(spec.label_col)
        start = 1
    else:
        ncols = spec.n_cols
        tcols = list(spec.text_cols)
        lcol = spec.label_col
    texts, pairs, labels, skipped = [], [] if len(tcols) > 1 else None, [], 0
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if not row:  # a blank line (e.g. a trailing one)
            continue
        if len(row) != ncols:
            if spec.skip_malformed:
                skipped += 1
                continue
            raise UserError(f"{path} line {lineno} has {len(row)} columns, expected {ncols} ({spec.layout()})")
        raw = row[lcol].strip()
        if spec.skip_malformed and spec.file_labels is not None and raw not in spec.file_labels:
            skipped += 1  # MNLI rows without a gold label ("-")
            continue
        labels.append(_parse_label(spec, raw, f"{path} line {lineno}"))
        texts.append(row[tcols[0]])
        if pairs is not None:
            pairs.append(row[tcols[1]])
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed rows", stacklevel=3)
    if not texts:
        raise UserError(f"{path} has no examples; expected {spec.layout()}")
    return Split(texts, pairs, labels)


def _task_folder(root: Path, spec: TaskSpec) -> Path:
    exact = root / spec.glue_dir
    if exact.is_dir():
        return exact
    if _norm(root.name) == _norm(spec.glue_dir) and (root / "train.tsv").is_file():
        return root  # the task folder itself was given
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and _norm(child.name) == _norm(spec.glue_dir):
                return child
    return exact


def glue_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The GLUE folder from the argument or the ADDROP_GLUE_DIR variable (None when neither is set)."""
    d = data_dir if data_dir not in (None, "") else os.environ.get(GLUE_ENV) or None
    return Path(d).expanduser() if d is not None else None


def load_glue(task: str, data_dir: str | os.PathLike | None = None) -> tuple[TaskSpec, Split, Split]:
    """Read `<dir>/<GLUE folder>/{train,dev}.tsv`; dir defaults to the ADDROP_GLUE_DIR variable.

    Rows with a wrong column count are an error naming the file and line, except in QQP and MNLI where they are
    skipped with a warning that counts them (as the reference GLUE readers do); MNLI rows without a gold label
    are skipped too.
    """
    spec = get_task(task)
    if spec.glue_dir is None:
        return load_demo() if spec.name == "demo" else _no_glue(spec)
    root = glue_root(data_dir)
    if root is None:
        raise UserError(f"no GLUE folder given: pass --data-dir DIR or set {GLUE_ENV} to a folder holding "
                        f"{spec.glue_dir}/train.tsv and {spec.glue_dir}/{spec.dev_file}")
    if not root.is_dir():
        raise UserError(f"GLUE folder {root} does not exist; point --data-dir or {GLUE_ENV} at the folder "
                        f"that holds {spec.glue_dir}/")
    folder = _task_folder(root, spec)
    paths = (folder / "train.tsv", folder / spec.dev_file)
    for p in paths:
        if not p.is_file():
            raise UserError(f"missing {p}: {spec.name} needs {spec.glue_dir}/train.tsv and "
                            f"{spec.glue_dir}/{spec.dev_file} under {root}, {spec.layout()}")
    return spec, _read_tsv(paths[0], spec), _read_tsv(paths[1], spec)


def _no_glue(spec: TaskSpec):
    raise UserError(f"task {spec.name} has no GLUE folder")


def load_demo() -> tuple[TaskSpec, Split, Split]:
    """The small sentiment set in assets/demo (0 = negative, 1 = positive)."""
    spec = TASKS["demo"]
    paths = (DEMO_DIR / "train.tsv", DEMO_DIR / "dev.tsv")
    for p in paths:
        if not p.is_file():
            raise UserError(f"the demo data is missing: expected {p} (reinstall addrop-studio)")
    return spec, _read_tsv(paths[0], spec), _read_tsv(paths[1], spec)


# ----------------------------------------------------------------------------------------------------------
# Hugging Face datasets (optional)
# ----------------------------------------------------------------------------------------------------------
def load_hf(task: str) -> tuple[TaskSpec, Split, Split]:
    """Load a GLUE task through the optional `datasets` package (`nyu-mll/glue`); needs the hub or its cache."""
    spec = get_task(task)
    if spec.hf_name is None:
        raise UserError(f"task {spec.name} is not on the Hugging Face hub; use source 'demo'")
    try:
        import datasets  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise UserError("source 'hf' needs the datasets package: pip install datasets "
                        f"(or use a GLUE folder with --data-dir / {GLUE_ENV})") from None
    try:
        ds = datasets.load_dataset("nyu-mll/glue", spec.hf_name)
    except Exception as e:  # noqa: BLE001 (network, cache, hub errors all end here)
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"could not load nyu-mll/glue/{spec.hf_name} from the Hugging Face hub "
                        f"({type(e).__name__}: {msg}); check the connection or use a GLUE folder "
                        f"with --data-dir / {GLUE_ENV}") from None

    def conv(part) -> Split:
        cols = part.to_dict()
        texts = [str(t) for t in cols[spec.hf_cols[0]]]
        pairs = [str(t) for t in cols[spec.hf_cols[1]]] if spec.has_pairs else None
        labels = [float(v) for v in cols["label"]] if spec.is_regression else [int(v) for v in cols["label"]]
        return Split(texts, pairs, labels)

    return spec, conv(ds["train"]), conv(ds[spec.hf_dev_split])


# ----------------------------------------------------------------------------------------------------------
# CSV / TSV files
# ----------------------------------------------------------------------------------------------------------
def _read_bytes(src, max_bytes: int) -> tuple[bytes, str]:
    """Bytes and a display name from a path, bytes, or a binary/text file-like (e.g. a Streamlit upload)."""
    if isinstance(src, (bytes, bytearray)):
        data, name = bytes(src), "the uploaded data"
    elif isinstance(src, (str, os.PathLike)):
        p = Path(src).expanduser()
        name = str(p)
        if not p.is_file():
            raise UserError(f"{p} does not exist or is not a file")
        size = p.stat().st_size
        if size > max_bytes:
            raise UserError(f"{p} is {size / 1e6:.1f} MB, larger than the {max_bytes / 1e6:.1f} MB limit")
        data = p.read_bytes()
    elif hasattr(src, "read"):
        name = str(getattr(src, "name", None) or "the uploaded file")
        if hasattr(src, "seek"):
            try:
                src.seek(0)
            except (OSError, ValueError):
                pass
        data = src.read(max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        raise UserError(f"cannot read data from a {type(src).__name__}; give a file path or an upload")
    if len(data) > max_bytes:
        raise UserError(f"{name} is larger than the {max_bytes / 1e6:.1f} MB limit")
    return data, name


def _sniff_sep(name: str, text: str) -> str:
    ext = Path(name).suffix.lower()
    if ext in (".tsv", ".tab"):
        return "\t"
    if ext == ".csv":
        return ","
    first = text.split("\n", 1)[0]
    return "\t" if first.count("\t") > first.count(",") else ","


def _find_col(columns: list[str], want: str, name: str) -> str:
    if want in columns:
        return want
    folded = [c for c in columns if c.strip().lower() == str(want).strip().lower()]
    if len(folded) == 1:
        return folded[0]
    raise UserError(f"{name} has no column {want!r}; its columns are: {', '.join(map(str, columns))}")


def _label_kind(raw: list[str]) -> str:
    """'int', 'float' (some non-integer value) or 'str'."""
    try:
        vals = [float(v) for v in raw]
    except ValueError:
        return "str"
    if not all(math.isfinite(v) for v in vals):
        return "str"
    return "int" if all(v == int(v) for v in vals) else "float"


def _sort_key(kind: str):
    return (lambda v: float(v)) if kind in ("int", "float") else (lambda v: v)


def _class_name(v: str) -> str:
    try:
        f = float(v)
        return str(int(f)) if f == int(f) else v
    except (ValueError, OverflowError):
        return v


def load_csv(path_or_buffer, text_col: str = "text", label_col: str = "label", pair_col: str | None = None,
             regression: bool | None = None, dev_fraction: float = 0.2, seed: int = 0,
             max_bytes: int = DEFAULT_MAX_BYTES, labels: Sequence | None = None,
             name: str = "csv") -> tuple[TaskSpec, Split, Split]:
    """A task from a CSV/TSV file (parsed by pandas, never executed).

    Labels: integers or strings become classes 0..K-1 in sorted order (`label_names` keeps the originals), or in
    the order of `labels` when given (then any other value is an error). Non-integer numbers, or
    `regression=True`, make a regression task. A `split` column with train/dev values chooses the split;
    otherwise a seeded split puts `dev_fraction` of each class in dev (at least 2 per class stay in train).
    A `.tsv` file is read without quote handling, as GLUE files are.
    """
    import pandas as pd  # noqa: PLC0415 (keep `import addrop.data` light)

    if not 0.0 < float(dev_fraction) < 1.0:
        raise UserError(f"dev fraction must be strictly between 0 and 1, got {dev_fraction!r}")
    data, fname = _read_bytes(path_or_buffer, max_bytes)
    if not data.strip():
        raise UserError(f"{fname} is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{fname} is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8") from None
    sep = _sniff_sep(fname, text)
    kind_name = "TSV" if sep == "\t" else "CSV"
    try:
        kw = {"quoting": csv.QUOTE_NONE} if sep == "\t" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # extra fields would be dropped silently
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, index_col=False, **kw)
    except pd.errors.EmptyDataError:
        raise UserError(f"{fname} is empty") from None
    except pd.errors.ParserWarning:
        hint = "remove tabs inside texts" if sep == "\t" else "quote texts that contain commas, or save as TSV"
        raise UserError(f"{fname}: some rows have more fields than the header; {hint}") from None
    except (pd.errors.ParserError, ValueError) as e:
        msg = (str(e).strip().splitlines() or [""])[0]
        raise UserError(f"{fname} could not be parsed as {kind_name}: {msg}") from None
    if len(df) == 0:
        raise UserError(f"{fname} has a header but no rows")
    columns = [str(c) for c in df.columns]
    tcol = _find_col(columns, text_col, fname)
    lcol = _find_col(columns, label_col, fname)
    pcol = _find_col(columns, pair_col, fname) if pair_col else None

    def texts_of(col: str) -> list[str]:
        vals = [str(v) for v in df[col].tolist()]
        empty = [i for i, v in enumerate(vals) if not v.strip()]
        if empty:
            raise UserError(f"{fname}: {len(empty)} rows have an empty {col!r} (first at line {empty[0] + 2})")
        return vals

    texts = texts_of(tcol)
    pairs = texts_of(pcol) if pcol else None
    raw = [str(v).strip() for v in df[lcol].tolist()]
    empty = [i for i, v in enumerate(raw) if not v]
    if empty:
        raise UserError(f"{fname}: {len(empty)} rows have an empty {lcol!r} (first at line {empty[0] + 2})")

    kind = _label_kind(raw)
    is_reg = bool(regression) if regression is not None else kind == "float"
    if is_reg:
        if kind == "str":
            bad = next(v for v in raw if _label_kind([v]) == "str")
            raise UserError(f"{fname}: regression needs numeric labels in {lcol!r}, found {bad!r}")
        y: list = [float(v) for v in raw]
        label_names: tuple[str, ...] = ()
    else:
        canon = [_class_name(v) for v in raw] if kind == "int" else raw
        if labels is not None:
            allowed = [str(_class_name(str(v))) for v in labels]
            if isinstance(labels, (set, frozenset)):
                allowed = sorted(allowed, key=_sort_key(_label_kind(allowed)))
            outside = [(i, v) for i, v in enumerate(canon) if v not in allowed]
            if outside:
                i, v = outside[0]
                raise UserError(f"{fname} line {i + 2}: label {v!r} is not one of {', '.join(allowed)} "
                                f"({len(outside)} rows outside that set)")
            classes = allowed
        else:
            classes = sorted(set(canon), key=_sort_key(kind))
        if len(set(canon)) < 2:
            raise UserError(f"{fname}: column {lcol!r} has only one class ({canon[0]!r}); "
                            "classification needs at least 2")
        index = {c: i for i, c in enumerate(classes)}
        y = [index[v] for v in canon]
        label_names = tuple(classes)

    spec = TaskSpec(name=name, glue_dir=None, text_cols=(tcol, pcol) if pcol else (tcol,), label_col=lcol,
                    num_labels=1 if is_reg else len(label_names), label_names=label_names, is_regression=is_reg,
                    metrics=("pearson", "spearman") if is_reg else ("accuracy",),
                    primary_metric="pearson" if is_reg else "accuracy",
                    description=f"from {Path(fname).name}")
    full = Split(texts, pairs, y)

    split_col = next((c for c in columns if c.strip().lower() == "split"), None)
    if split_col is not None:
        norm = {"train": "train", "training": "train", "dev": "dev", "validation": "dev", "valid": "dev",
                "val": "dev"}
        vals = [str(v).strip().lower() for v in df[split_col].tolist()]
        bad = [(i, v) for i, v in enumerate(vals) if v not in norm]
        if bad:
            i, v = bad[0]
            raise UserError(f"{fname} line {i + 2}: split {v!r} must be train or dev")
        tr = [i for i, v in enumerate(vals) if norm[v] == "train"]
        dv = [i for i, v in enumerate(vals) if norm[v] == "dev"]
    else:
        tr, dv = _seeded_split(y, is_reg, float(dev_fraction), seed)
    _check_split_sizes(fname, y, is_reg, tr, dv, label_names)
    return spec, full.select(tr), full.select(dv)


def _seeded_split(y: list, is_reg: bool, frac: float, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    groups: dict = {}
    if is_reg:
        groups[None] = list(range(len(y)))
    else:
        for i, v in enumerate(y):
            groups.setdefault(v, []).append(i)
    dev: list[int] = []
    spare: list[list[int]] = []
    for key in sorted(groups, key=lambda k: (k is None, k)):
        idx = groups[key]
        rng.shuffle(idx)
        n_dev = max(0, min(round(len(idx) * frac), len(idx) - 2))
        dev += idx[:n_dev]
        spare.append(idx[n_dev:])
    if not dev:  # tiny data: move one example from a group that can spare it
        for rest in spare:
            if len(rest) > 2:
                dev.append(rest[0])
                break
    dev_set = set(dev)
    return [i for i in range(len(y)) if i not in dev_set], sorted(dev)


def _check_split_sizes(fname, y, is_reg, tr, dv, label_names) -> None:
    if is_reg:
        if len(tr) < 2 or len(dv) < 1:
            raise UserError(f"{fname}: too few rows to split ({len(y)} rows, {len(tr)} train / {len(dv)} dev); "
                            "need at least 2 for training and 1 for dev")
        return
    counts = Counter(y[i] for i in tr)
    low = [(label_names[c], counts.get(c, 0)) for c in sorted(set(y)) if counts.get(c, 0) < 2]
    if low:
        name, n = low[0]
        raise UserError(f"{fname}: too few rows: class {name!r} has {n} in train ({len(y)} rows in all); "
                        "need at least 2 per class in train and 1 row in dev")
    if len(counts) < 2:
        raise UserError(f"{fname}: the training split has only one class; classification needs at least 2")
    if not dv:
        raise UserError(f"{fname}: too few rows: {len(tr)} train and 0 dev; need at least 1 row in dev "
                        "besides 2 per class in train (add rows, or a split column)")


# ----------------------------------------------------------------------------------------------------------
# One entry point
# ----------------------------------------------------------------------------------------------------------
def load_data(task: str = "demo", source: str = "auto", data_dir: str | os.PathLike | None = None,
              csv: str | os.PathLike | None = None, text_col: str = "text", pair_col: str | None = None,
              label_col: str = "label", **csv_kwargs) -> tuple[TaskSpec, Split, Split]:
    """Load (spec, train, dev) from the demo set, a CSV file, a GLUE folder or the HF hub.

    source 'auto': the demo for task demo, the CSV when `csv` is given, the GLUE folder when one is set (the
    argument or ADDROP_GLUE_DIR); otherwise an error saying how to provide the data.
    """
    src = str(source or "auto").lower()
    if src not in SOURCES:
        raise UserError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    is_csv_task = _norm(task) in ("csv", "custom", "")
    if src == "auto":
        if csv is not None:
            src = "csv"
        elif is_csv_task:
            raise UserError("task csv needs a file: pass --csv PATH with --text-col and --label-col")
        elif _norm(task) == "demo":
            src = "demo"
        elif glue_root(data_dir) is not None:
            src = "glue"
        else:
            spec = get_task(task)
            raise UserError(f"no data for {spec.name}: pass --data-dir DIR (a GLUE folder holding "
                            f"{spec.glue_dir}/) or set {GLUE_ENV}, or use source 'hf' with the datasets package")
    if src == "csv":
        if csv is None:
            raise UserError("source csv needs a file: pass --csv PATH")
        name = "csv" if is_csv_task else str(task)
        return load_csv(csv, text_col=text_col, label_col=label_col, pair_col=pair_col, name=name, **csv_kwargs)
    if is_csv_task:
        raise UserError(f"task csv needs source csv and a file, not source {src!r}")
    if src == "demo":
        if _norm(task) != "demo":
            raise UserError(f"source demo only provides task demo, not {task!r}")
        return load_demo()
    if src == "hf":
        return load_hf(task)
    return load_glue(task, data_dir)


# ----------------------------------------------------------------------------------------------------------
# Subsets
# ----------------------------------------------------------------------------------------------------------
def subset(split: Split, n: int | None, seed: int = 0) -> Split:
    """n random examples (seeded, kept in file order); the whole split, unchanged, when n is None or >= len."""
    if n is None or n >= len(split):
        return split
    if n < 1:
        raise UserError(f"subset size must be >= 1, got {n}")
    idx = sorted(random.Random(seed).sample(range(len(split)), n))
    return split.select(idx)


def k_shot(split: Split, k: int, seed: int = 0, label_names: Sequence[str] | None = None) -> Split:
    """k examples of every class (seeded, kept in file order). With `label_names`, every class must appear."""
    if k < 1:
        raise UserError(f"shots must be >= 1, got {k}")
    if split.is_regression:
        raise UserError("few-shot sampling (k per class) needs a classification task, not a regression task")
    groups: dict[int, list[int]] = {}
    for i, v in enumerate(split.labels):
        groups.setdefault(int(v), []).append(i)
    classes = range(len(label_names)) if label_names else sorted(groups)
    rng = random.Random(seed)
    chosen: list[int] = []
    for c in classes:
        idx = groups.get(c, [])
        if len(idx) < k:
            name = label_names[c] if label_names else c
            raise UserError(f"class {name!r} has only {len(idx)} training examples; choose shots <= {len(idx)}")
        chosen += rng.sample(idx, k)
    return split.select(sorted(chosen))


# ----------------------------------------------------------------------------------------------------------
# Description for the app
# ----------------------------------------------------------------------------------------------------------
def _split_stats(spec: TaskSpec, s: Split) -> dict:
    words = [len(t.split()) + (len(p.split()) if s.pairs is not None else 0)
             for t, p in zip(s.texts, s.pairs if s.pairs is not None else s.texts)]
    d: dict = {"examples": len(s), "mean_words": float(np.mean(words)) if words else 0.0,
               "max_words": int(max(words)) if words else 0}
    if spec.is_regression:
        y = np.asarray(s.labels, dtype=np.float64)
        d.update({"label_mean": float(y.mean()) if len(y) else 0.0, "label_std": float(y.std()) if len(y) else 0.0,
                  "label_min": float(y.min()) if len(y) else 0.0, "label_max": float(y.max()) if len(y) else 0.0})
    else:
        c = Counter(int(v) for v in s.labels)
        names = spec.label_names or tuple(str(i) for i in range(spec.num_labels))
        d["classes"] = {names[i]: c.get(i, 0) for i in range(len(names))}
        d["majority_fraction"] = max(c.values()) / len(s) if len(s) else 0.0
    return d


def describe(spec: TaskSpec, train: Split, dev: Split) -> dict:
    """Counts, class balance (or score range) and text lengths, for display."""
    return {"task": spec.name, "description": spec.description, "pairs": spec.has_pairs,
            "regression": spec.is_regression, "num_labels": spec.num_labels, "label_names": list(spec.label_names),
            "metrics": list(spec.metrics), "primary_metric": spec.primary_metric,
            "train": _split_stats(spec, train), "dev": _split_stats(spec, dev)}
