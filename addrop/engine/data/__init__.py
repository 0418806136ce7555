"""Loaders that all return `(TaskSpec, train: Split, dev: Split)` (see `addrop.engine.tasks`), one module per
source, and what is done with splits afterwards:

    glue.py      a GLUE folder (`load_glue`, `default_glue_dir`)
    hf.py        the Hugging Face hub through the optional `datasets` package (`load_hf`)
    table.py     a CSV/TSV file or an uploaded buffer (`load_csv`)
    demo.py      the small sentiment set shipped in assets/demo (`load_demo`)
    subsets.py   seeded subsets (`subset`, `k_shot`, `hold_out`)
    describe.py  counts, class balance and lengths for display (`describe`)

`load_data` picks the loader from its arguments.
"""
from __future__ import annotations

import os

from ...config import DATA_SOURCES, is_csv_task
from ...errors import UserError
from ..tasks import Split, TaskSpec, get_task, normalize_name
from .demo import DEMO_DIR, load_demo
from .describe import describe  # noqa: F401 (re-exported)
from .glue import GLUE_ENV, default_glue_dir, glue_root, has_task, load_glue
from .hf import hf_available, load_hf
from .subsets import hold_out, k_shot, subset
from .table import DEFAULT_MAX_BYTES, load_csv, sniff_separator

# what the app's data picker calls each source (auto is the command line's default, not a choice there)
SOURCE_LABELS = {"demo": "Built-in demo", "glue": "GLUE folder", "hf": "Hugging Face datasets", "csv": "Upload a CSV"}

__all__ = ["SOURCE_LABELS", "load_data", "load_demo", "load_glue", "load_hf", "load_csv", "subset", "k_shot", "hold_out",
           "describe", "glue_root", "default_glue_dir", "has_task", "hf_available", "sniff_separator", "GLUE_ENV",
           "DEMO_DIR", "DEFAULT_MAX_BYTES", "DATA_SOURCES"]


def load_data(task: str = "demo", source: str = "auto", data_dir: str | os.PathLike | None = None,
              csv: str | os.PathLike | None = None, text_col: str = "text", pair_col: str | None = None,
              label_col: str = "label", **csv_kwargs) -> tuple[TaskSpec, Split, Split]:
    """Load (spec, train, dev) from the demo set, a CSV file, a GLUE folder or the HF hub.

    source 'auto': the demo for task demo, the CSV when `csv` is given, the GLUE folder when there is one (the
    argument, ADDROP_GLUE_DIR, else shared/data/glue beside the project); otherwise an error saying how to provide
    the data.
    """
    src = str(source or "auto").lower()
    if src not in DATA_SOURCES:
        raise UserError(f"unknown data source {source!r}: choose one of {', '.join(DATA_SOURCES)}")
    csv_task = is_csv_task(task)
    if src == "auto":
        if csv is not None:
            src = "csv"
        elif csv_task:
            raise UserError("task csv needs a file: pass --csv PATH with --text-col and --label-col")
        elif normalize_name(task) == "demo":
            src = "demo"
        elif glue_root(data_dir) is not None or default_glue_dir() is not None:
            src = "glue"
        else:
            spec = get_task(task)
            raise UserError(f"no data for {spec.name}: pass --data-dir DIR (a GLUE folder holding "
                            f"{spec.glue_dir}/) or set {GLUE_ENV}, or use source 'hf' with the datasets package")
    if src == "csv":
        if csv is None:
            raise UserError("source csv needs a file: pass --csv PATH")
        name = "csv" if csv_task else str(task)
        if not csv_task and normalize_name(task) != "demo":  # a named GLUE task: its kind of label
            known = get_task(task)
            csv_kwargs.setdefault("regression", known.is_regression)
            if known.is_regression:
                name = known.name
        return load_csv(csv, text_col=text_col, label_col=label_col, pair_col=pair_col, name=name, **csv_kwargs)
    if csv_task:
        raise UserError(f"task csv needs source csv and a file, not source {src!r}")
    if src == "glue" and normalize_name(task) == "demo":
        raise UserError("task demo is not in a GLUE folder: name a GLUE task (--task sst-2, mrpc, cola, sts-b, ...) "
                        "or use source 'demo'")
    if src == "demo":
        if normalize_name(task) != "demo":
            raise UserError(f"source demo only provides task demo, not {task!r}")
        return load_demo()
    if src == "hf":
        return load_hf(task)
    return load_glue(task, data_dir)


def load_splits(cfg):
    """(spec, train, dev) of a TrainConfig's task, before subsets."""
    return load_data(cfg.task, cfg.source, cfg.data_dir, cfg.csv, text_col=cfg.text_col,
                     pair_col=cfg.pair_col, label_col=cfg.label_col)
