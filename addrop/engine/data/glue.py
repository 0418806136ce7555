"""GLUE folders as written by GLUE's `download_glue_data.py`: `<root>/<TASK>/{train,dev}.tsv` (QUOTE_NONE: sentences
contain unbalanced quotes; BOM; CoLA without a header). The folder comes from the argument, else ADDROP_GLUE_DIR,
else `shared/data/glue` beside the project (`default_glue_dir`)."""
from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

from ...errors import UserError
from ..tasks import Split, TaskSpec, get_task, normalize_name

GLUE_ENV = "ADDROP_GLUE_DIR"
_PROJECT = Path(__file__).resolve().parents[3]  # the folder holding app.py and addrop/


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


def read_tsv(path: Path, spec: TaskSpec) -> Split:
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
    if normalize_name(root.name) == normalize_name(spec.glue_dir) and (root / "train.tsv").is_file():
        return root  # the task folder itself was given
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and normalize_name(child.name) == normalize_name(spec.glue_dir):
                return child
    return exact


def has_task(root: str | os.PathLike, task: str) -> bool:
    """Whether the GLUE folder `root` holds the task's train and dev files (where `load_glue` would look)."""
    spec = get_task(task)
    if spec.glue_dir is None:
        return False
    folder = _task_folder(Path(root).expanduser(), spec)
    return (folder / "train.tsv").is_file() and (folder / spec.dev_file).is_file()


def glue_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The GLUE folder from the argument or the ADDROP_GLUE_DIR variable (None when neither is set)."""
    d = data_dir if data_dir not in (None, "") else os.environ.get(GLUE_ENV) or None
    return Path(d).expanduser() if d is not None else None


def default_glue_dir() -> Path | None:
    """The GLUE folder to use when none is given: ADDROP_GLUE_DIR, else `shared/data/glue` beside the project
    (this project's layout), else None."""
    root = glue_root(None)
    if root is not None:
        return root
    beside = _PROJECT.parent / "shared" / "data" / "glue"
    return beside if beside.is_dir() else None


def load_glue(task: str, data_dir: str | os.PathLike | None = None) -> tuple[TaskSpec, Split, Split]:
    """Read `<dir>/<GLUE folder>/{train,dev}.tsv`; dir defaults to the ADDROP_GLUE_DIR variable, else
    shared/data/glue beside the project (default_glue_dir, as the app and the benchmark).

    Rows with a wrong column count are an error naming the file and line, except in QQP and MNLI where they are
    skipped with a warning that counts them (as the reference GLUE readers do); MNLI rows without a gold label
    are skipped too.
    """
    spec = get_task(task)
    if spec.glue_dir is None:
        raise UserError(f"task {spec.name} has no GLUE folder")
    root = glue_root(data_dir) or default_glue_dir()
    if root is None:
        raise UserError(f"no GLUE folder given: set it (the app's GLUE folder field, --data-dir DIR on the command "
                        f"line, or {GLUE_ENV}) to a folder holding {spec.glue_dir}/train.tsv and "
                        f"{spec.glue_dir}/{spec.dev_file}")
    if not root.is_dir():
        raise UserError(f"GLUE folder {root} does not exist; set the GLUE folder (the app's field, --data-dir or "
                        f"{GLUE_ENV}) to the folder that holds {spec.glue_dir}/")
    folder = _task_folder(root, spec)
    paths = (folder / "train.tsv", folder / spec.dev_file)
    for p in paths:
        if not p.is_file():
            raise UserError(f"missing {p}: {spec.name} needs {spec.glue_dir}/train.tsv and "
                            f"{spec.glue_dir}/{spec.dev_file} under {root}, {spec.layout()}")
    return spec, read_tsv(paths[0], spec), read_tsv(paths[1], spec)
