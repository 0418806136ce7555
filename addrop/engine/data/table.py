"""Tasks from a CSV/TSV file or an uploaded buffer, parsed by pandas (never executed)."""
from __future__ import annotations

import csv
import io
import math
import os
import random
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

from ...errors import UserError
from ..tasks import Split, TaskSpec, is_blank

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # the app's upload cap too (.streamlit/config.toml: 20 MB)
UPLOADS_DIR = ".uploads"  # the app keeps uploads in <runs>/.uploads/<hash>/<the user's file name>
MISSING_LABELS = ("nan", "na", "n/a", "#n/a", "null", "<na>", "inf", "-inf", "+inf", "infinity", "-infinity")
MAX_CLASS_INDEX = 1_000_000  # an integer label above this is a score, not a class
OTHER_SEPARATORS = (";", "|", "\t", ",")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f}".rstrip("0").rstrip(".") + " MB"


def display_name(path) -> str:
    """How messages name a file: its path, or for an upload kept by the app just the name the user gave it."""
    p = Path(path)
    if p.parent.parent.name == UPLOADS_DIR:
        return f"the uploaded file {p.name}"
    return str(p)


def check_separator(fname: str, sep: str, header: str, columns: list[str]) -> None:
    """A file read as one column whose header holds another separator: say which, instead of reading each
    whole line as one text (and one label) and failing later on the split."""
    if len(columns) != 1:
        return
    for other in OTHER_SEPARATORS:
        if other != sep and other in header:
            shown = "tab" if other == "\t" else repr(other)
            want = "commas (.csv)" if sep == "," else "tabs (.tsv)"
            raise UserError(f"{fname} has one column {columns[0][:60]!r}: it looks separated by {shown}, but it is "
                            f"read with {want}; save it as CSV (commas) or TSV (tabs, with a .tsv name)")


def _read_bytes(src, max_bytes: int) -> tuple[bytes, str]:
    """Bytes and a display name from a path, bytes, or a binary/text file-like (e.g. a Streamlit upload)."""
    if isinstance(src, (bytes, bytearray)):
        data, name = bytes(src), "the uploaded data"
    elif isinstance(src, (str, os.PathLike)):
        p = Path(src).expanduser()
        name = display_name(p)
        if not p.is_file():
            raise UserError(f"{name} does not exist or is not a file")
        size = p.stat().st_size
        if size > max_bytes:
            raise UserError(f"{name} is {_mb(size)}, larger than the {_mb(max_bytes)} limit")
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
        raise UserError(f"{name} is larger than the {_mb(max_bytes)} limit")
    return data, name


def sniff_separator(name: str, first_line: str) -> str:
    """A tab or a comma: by the file's extension (.tsv/.tab, .csv), else whichever the first line has more of."""
    ext = Path(name).suffix.lower()
    if ext in (".tsv", ".tab"):
        return "\t"
    if ext == ".csv":
        return ","
    return "\t" if first_line.count("\t") > first_line.count(",") else ","


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
    sep = sniff_separator(fname, text.split("\n", 1)[0])
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
        quote = re.search(r"EOF inside string starting at row (\d+)", msg)
        if quote:  # pandas counts rows from 0, the header included: its row r is line r + 1 of the file
            raise UserError(f"{fname} line {int(quote.group(1)) + 1}: a quote (\") opens a text that is never "
                            "closed; close it, or remove the stray quote") from None
        raise UserError(f"{fname} could not be parsed as {kind_name}: {msg}") from None
    if len(df) == 0:
        raise UserError(f"{fname} has a header but no rows")
    columns = [str(c) for c in df.columns]
    check_separator(fname, sep, text.split("\n", 1)[0], columns)
    tcol = _find_col(columns, text_col, fname)
    lcol = _find_col(columns, label_col, fname)
    pcol = _find_col(columns, pair_col, fname) if pair_col else None
    if lcol in (tcol, pcol):
        raise UserError(f"{fname}: the label column {lcol!r} is also a text column; choose another")

    def texts_of(col: str) -> list[str]:
        vals = [str(v) for v in df[col].tolist()]
        empty = [i for i, v in enumerate(vals) if is_blank(v)]
        if empty:
            raise UserError(f"{fname}: {len(empty)} rows have an empty {col!r} (first at line {empty[0] + 2})")
        return vals

    texts = texts_of(tcol)
    pairs = texts_of(pcol) if pcol else None
    raw = [str(v).strip() for v in df[lcol].tolist()]
    empty = [i for i, v in enumerate(raw) if is_blank(v)]
    if empty:
        raise UserError(f"{fname}: {len(empty)} rows have an empty {lcol!r} (first at line {empty[0] + 2})")
    missing = [i for i, v in enumerate(raw) if v.lower() in MISSING_LABELS]
    if missing:
        i = missing[0]
        raise UserError(f"{fname}: {len(missing)} rows have a missing or non-finite {lcol!r} such as {raw[i]!r} "
                        f"(first at line {i + 2}); give every row a label")

    kind = _label_kind(raw)
    is_reg = bool(regression) if regression is not None else kind == "float"
    if is_reg:
        if kind == "str":
            bad = next(v for v in raw if _label_kind([v]) == "str")
            raise UserError(f"{fname}: regression needs numeric labels in {lcol!r}, found {bad!r}")
        y: list = [float(v) for v in raw]
        label_names: tuple[str, ...] = ()
    else:
        if kind == "int":
            big = [i for i, v in enumerate(raw) if abs(float(v)) > MAX_CLASS_INDEX]
            if big:
                i = big[0]
                raise UserError(f"{fname} line {i + 2}: label {raw[i]!r} is not a class (integer classes are at "
                                f"most {MAX_CLASS_INDEX}); for scores use a regression task such as sts-b")
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
            if kind == "str" and len(classes) > 10 and len(classes) > len(canon) / 2:  # too few rows a class anyway
                raise UserError(f"{fname}: the label column {lcol!r} has {len(classes)} different values in "
                                f"{len(canon)} rows, such as {canon[0][:40]!r}: it holds text, not classes; choose "
                                "the column with the labels (a few classes, or numbers for regression)")
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
