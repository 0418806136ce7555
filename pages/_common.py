"""Streamlit helpers shared by app.py and the pages (not a page itself: st.navigation lists the pages).

- `sidebar()` draws the model / device / data choices and returns a `Ctx`; app.py calls it on every run and
  keeps it in st.session_state["ctx"], so a page gets it with `ctx()`.
- The pristine model and the data are cached with st.cache_resource (`cached_model`, `cached_data`); no session
  changes them (attribution runs in eval mode without parameter gradients, training copies the model).
- The lists the sidebar offers (models, data sources, tasks) come from the library.

Background jobs are in pages/_jobs.py, the start-here example in pages/_start.py, the sidebar's choices in the
page's address in pages/_url.py, and the one Streamlit workaround in pages/_compat.py.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

# how OpenMP threads wait, set before torch loads (every page and app.py import this module first; a fresh server
# may run a page without app.py, see _compat): a bounded spin, fast on an idle machine, and no 10-20x slowdown of
# every pass on a CPU shared with other work as with libgomp's default spin (addrop/engine/openmp.py)
from addrop.engine.openmp import set_wait_policy  # noqa: E402

set_wait_policy()

from addrop.engine.data import SOURCE_LABELS, default_glue_dir, sniff_separator  # noqa: E402
from addrop.engine.data.table import UPLOADS_DIR, check_separator, display_name  # noqa: E402
from addrop.engine.tasks import GLUE_TASKS  # noqa: E402
from addrop.errors import UserError  # noqa: E402
from pages import _compat, _url  # noqa: E402
from pages._fields import KEPT, Numbers, clamp_sizes, defaults  # noqa: E402,F401
from pages._models import (OTHER_MODEL, UNTRAINED, checkpoints, default_model_for, deleted_run,  # noqa: E402,F401
                           model_caption, model_controls, model_label, use_model)

ROOT = Path(__file__).resolve().parent.parent
NONE = "(none)"
MISSING = "–"  # what a table shows for a value a run does not have (a vanilla run's p), not Streamlit's "None"


def runs_dir() -> Path:
    """Where run records live: $ADDROP_RUNS_DIR, else ./runs (engine.runs.names.default_runs_dir, as the command line)."""
    from addrop.engine.runs.names import default_runs_dir

    return Path(default_runs_dir())


def pinned_model() -> str | None:
    """$ADDROP_DEFAULT_MODEL: the model every session starts with (tests use tiny-bert); None: choose by data."""
    return (os.environ.get("ADDROP_DEFAULT_MODEL") or "").strip() or None


def default_model() -> str:  # noqa: D103
    return pinned_model() or "minilm"


def glue_dir_text() -> str:
    """The GLUE folder the sidebar starts with (engine.data.default_glue_dir), as text; "" when there is none."""
    root = default_glue_dir()
    return str(root.resolve()) if root is not None else ""


# ------------------------------------------------------------------------------------------------- caches

@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def cached_model(name: str, device: str, num_labels: int):
    """The pristine model (head initialised with seed 0). Shared by every session: never modify it."""
    from addrop.engine.models import load_model

    return load_model(name, device, num_labels=num_labels, seed=0)


@st.cache_resource(show_spinner="Reading the data…", max_entries=8)
def cached_data(source: str, task: str, data_dir: str | None, csv: str | None, text_col: str,
                pair_col: str | None, label_col: str):
    from addrop.engine.data import load_data

    return load_data(task, source, data_dir, csv, text_col=text_col, pair_col=pair_col, label_col=label_col)


@st.cache_data(show_spinner=False, max_entries=16)
def _data_tokens(model: str, data: tuple, max_length: int, _tokenizer, _train, _dev) -> tuple:
    from addrop.experiments.plans import mean_tokens

    return mean_tokens(_tokenizer, _train, max_length), mean_tokens(_tokenizer, _dev, max_length)


def data_tokens(c: "Ctx", loaded, train, dev, max_length=None) -> tuple:
    """Mean tokens per training and per dev example of the sidebar's data (plans.mean_tokens, cached per model,
    data and max length): what the time estimates scale with."""
    cut = int(max_length) if isinstance(max_length, (int, float)) and max_length >= 8 else 128
    return _data_tokens(loaded.name, tuple(sorted((c.data_args or {}).items())), cut, loaded.tokenizer, train, dev)


@st.cache_data(show_spinner=False, max_entries=16)
def csv_columns(path: str) -> list[str]:
    import pandas as pd

    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline()
        sep = sniff_separator(path, first)
        frame = pd.read_csv(path, nrows=5, dtype=str, sep=sep)
    except Exception as e:  # noqa: BLE001 - any parse problem is the user's file
        raise UserError(f"{display_name(path)} could not be read as CSV/TSV: "
                        f"{' '.join(str(e).split())[:200]}") from None
    cols = [str(c) for c in frame.columns]
    check_separator(display_name(path), sep, first, cols)  # one column: say the separator looks wrong
    return cols


def save_upload(upload) -> str:
    """Keep an uploaded CSV under <runs>/.uploads/ (named by its content hash) so runs can record its path."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:12]
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    suffix = ".tsv" if sniff_separator(upload.name, first) == "\t" else ".csv"
    # <runs>/.uploads/<hash>/<the user's name>: messages then name the user's file, not the hash
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(upload.name or "upload").stem).strip(".-")[:60] or "upload"
    folder = runs_dir() / UPLOADS_DIR / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{suffix}"
    if not path.exists():
        path.write_bytes(data)
    return str(path.resolve())


# ------------------------------------------------------------------------------------------------ context

@dataclass
class Ctx:
    """What the sidebar chose, and what loading it gave."""

    model_name: str = ""
    device_choice: str = "auto"
    device: str | None = None
    loaded: object | None = None
    model_error: str | None = None
    spec: object | None = None
    train: object | None = None
    dev: object | None = None
    data_error: str | None = None
    data_args: dict = field(default_factory=dict)  # task, source, data_dir, csv, text_col, pair_col, label_col

    @property
    def untrained(self) -> bool:
        """Whether the model's classification head was never trained (the sidebar warns, pages offer training)."""
        return self.model_name in UNTRAINED

    @property
    def model_key(self) -> tuple:
        return (self.model_name, self.device, self.num_labels)

    @property
    def num_labels(self) -> int:
        return self.spec.num_labels if self.spec is not None else 2

    @property
    def label_names(self) -> tuple:
        if self.spec is None:
            return ("class 0", "class 1")
        return tuple(self.spec.label_names) or ()

    def need_model(self, otherwise=None):
        """The loaded model, or an error message and the end of this page's run (`otherwise`: drawn first, e.g.
        a running job's progress and Stop, which must not hide behind a sidebar setting)."""
        if self.loaded is None:
            st.error(self.model_error or "no model is loaded: choose one in the sidebar")
            _stop(otherwise)
        return self.loaded

    def fine_tune(self, otherwise=None) -> tuple[str, object, str]:
        """What an experiment page fine-tunes: (model name, its loaded pristine copy, a sentence that says so). A
        model already fine-tuned (minilm-demo, a run's checkpoint) is not trained again: its pre-trained base is,
        with a new classification head, as the paper's experiments start (engine.weights.fine_tune_start); the
        fine-tuned model itself need not load for this data then. `otherwise`: as need_model's."""
        from addrop.engine.weights import fine_tune_start

        start = fine_tune_start(self.model_name)
        if start == self.model_name:
            return (self.model_name, self.need_model(otherwise),
                    f"Fine-tunes **{self.model_name}**, the sidebar's model.")
        if self.device is None:
            self.need_model(otherwise)  # the device could not be resolved: its error
        try:
            loaded = cached_model(start, self.device, self.num_labels)
        except UserError as e:
            st.error(f"{self.model_name} was fine-tuned from {start}, which these experiments start from; it "
                     f"cannot be loaded: {e}")
            _stop(otherwise)
        return start, loaded, (f"Fine-tunes **{start}** with a new classification head. The sidebar's "
                               f"**{self.model_name}** was already fine-tuned from it, so it is not trained again "
                               "here: its loss would start at a model that has already fitted the data.")

    def need_data(self, otherwise=None):
        """(spec, train, dev) of the sidebar's data, or an error message and the end of this page's run
        (`otherwise`: as need_model's)."""
        if self.spec is None:
            st.error(self.data_error or "no data is loaded: the sidebar's Data section says what it needs (a GLUE "
                     "folder to type, a file to upload, or another source)")
            _stop(otherwise)
        return self.spec, self.train, self.dev


def _stop(otherwise=None):
    """End this run of the page, after drawing `otherwise` (what must show whatever the sidebar holds)."""
    if otherwise is not None:
        otherwise()
    st.stop()


def ctx() -> Ctx:
    _compat.leave_pages_folder_mode(sidebar_ran=isinstance(st.session_state.get("ctx"), Ctx))
    c = st.session_state.get("ctx")
    return c if isinstance(c, Ctx) else Ctx(model_error="the sidebar has not run yet")


def sidebar(fine_tunes: bool = False) -> Ctx:
    """Model, device and data choices in the sidebar; loads both (cached) and reports problems there.
    `fine_tunes`: the page fine-tunes with a new head, so an untrained head is no problem there."""
    from addrop.engine.models import available_devices, resolve_device  # noqa: PLC0415 (torch: imported late)

    c = Ctx()
    devices = available_devices()
    with st.sidebar:
        for said in _url.restore(devices):  # a reload or a link: the address's choices (pages/_url.py)
            st.warning(said, icon=":material/link_off:")
        st.markdown("#### Data")
        c.data_args = _data_controls()
        if c.data_args:
            try:
                a = c.data_args
                c.spec, c.train, c.dev = cached_data(a["source"], a["task"], a.get("data_dir"), a.get("csv"),
                                                     a.get("text_col", "text"), a.get("pair_col"),
                                                     a.get("label_col", "label"))
            except UserError as e:
                c.data_error = str(e)
        if c.data_error:
            st.error(c.data_error)
        elif c.spec is not None:
            labels = ", ".join(c.spec.label_names) if c.spec.label_names else "a score (regression)"
            st.caption(f"**{c.spec.name}**: {len(c.train):,} train / {len(c.dev):,} dev examples"
                       f"{', sentence pairs' if c.spec.has_pairs else ''}; labels: {labels}")

        st.markdown("#### Model")
        model_controls(c, runs_dir(), pinned_model())

        if st.session_state.get("device") not in devices:
            st.session_state["device"] = "auto"
        c.device_choice = st.selectbox("Device", devices, key="device",
                                       help="auto picks a CUDA GPU when there is one, else the CPU. Training and "
                                            "attribution run there.")
        try:
            c.device = str(resolve_device(c.device_choice))
        except UserError as e:
            c.model_error = str(e)

        if c.model_error is None:
            if not c.model_name:
                c.model_error = "no model given: type a Hugging Face id or a local folder"
            else:
                try:
                    c.loaded = cached_model(c.model_name, c.device, c.num_labels)
                except UserError as e:
                    c.model_error = str(e)
        st.markdown("#### In use")
        if c.loaded is not None:
            m = c.loaded
            st.caption(f"**{c.model_name}** on **{c.device}** · {m.num_layers} layers × {m.num_heads} heads · "
                       f"up to {m.max_length} tokens")
            if gone := deleted_run(c.model_name):  # deleted on the Runs page, maybe in another tab, since it loaded
                st.warning(f"The run behind this model was deleted (`{gone}`): its weights stay in use here until "
                           "another model is chosen, but they cannot be loaded again.", icon=":material/delete:")
            if c.untrained and fine_tunes:
                st.caption("Its classification head is untrained, which does not matter here: this page "
                           "fine-tunes with a new head.")
            elif c.untrained:
                st.warning("Untrained classification head: its predictions sit near chance and its attributions "
                           "describe a random classifier. Choose a trained model, or train one with *Train a "
                           "model for this data* on the Attribution explorer page.", icon=":material/warning:")
        else:
            st.error(c.model_error)
            st.caption(f"device: {c.device or '?'}")
    chosen = None if st.session_state.get("model_auto", True) else c.model_name
    _url.keep(_url.wanted(chosen, glue_dir_text()))
    st.session_state["ctx"] = c
    return c


def _data_controls() -> dict | None:
    from addrop.engine.data import has_task, hf_available

    no_hf = not hf_available()
    src = st.selectbox("Source", list(SOURCE_LABELS), key="data_source",
                       format_func=lambda s: SOURCE_LABELS[s] + (" (the datasets package is not installed)"
                                                                 if s == "hf" and no_hf else ""),
                       help="Built-in demo: 400 + 140 short review sentences (positive/negative), offline. "
                            "GLUE folder: the tasks as written by GLUE's download script (TSV). Hugging Face: "
                            "nyu-mll/glue through the datasets package (needs the internet). CSV: your own file.")
    if src == "demo":
        return {"source": "demo", "task": "demo"}
    if src in ("glue", "hf"):
        folder = None
        if src == "glue":  # the folder first: the task list says which tasks it holds
            if "data_dir" not in st.session_state:
                st.session_state["data_dir"] = glue_dir_text()
            folder = st.text_input("GLUE folder", key="data_dir",
                                   help="A folder holding SST-2/, MRPC/, ... with train.tsv and dev.tsv "
                                        "(default: $ADDROP_GLUE_DIR or ../shared/data/glue).").strip()
        held = {t for t in GLUE_TASKS if folder and has_task(folder, t)}
        task = st.selectbox("Task", list(GLUE_TASKS), key="data_task",
                            format_func=lambda t: t if src != "glue" or not folder or t in held
                            else f"{t} (not in this folder)",
                            help="SST-2 sentiment, MRPC paraphrase, CoLA acceptability, STS-B similarity "
                                 "(regression), RTE/QNLI/MNLI inference, QQP duplicates.")
        if src == "hf":
            st.caption("Needs the `datasets` package and a connection to the Hugging Face hub."
                       + (" The package is not installed here: `pip install datasets`." if no_hf else ""))
            return {"source": "hf", "task": task}
        if not folder:
            st.info("Type the GLUE folder's path.")
            return None
        return {"source": "glue", "task": task, "data_dir": folder}
    up = st.file_uploader("CSV or TSV file", type=["csv", "tsv", "txt"], key="data_upload",
                          help="One example per row with a header; a text column, a label column and optionally a "
                               "second text column (pairs) and a split column (train/dev). Parsed, never run.")
    if up is None:
        st.info("Upload a file with a header row.")
        return None
    path = save_upload(up)
    try:
        cols = csv_columns(path)
    except UserError as e:
        st.error(str(e))
        return None
    lower = [c.lower() for c in cols]

    def guess(names, fallback):
        for n in names:
            if n in lower:
                return lower.index(n)
        return fallback

    text = st.selectbox("Text column", cols, index=guess(("text", "sentence", "sentence1"), 0), key="csv_text",
                        help="The column with the (first) text.")
    pair_opts = [NONE] + cols
    pair = st.selectbox("Second text column", pair_opts,
                        index=(guess(("pair", "sentence2", "text_b"), -1) + 1), key="csv_pair",
                        help="For sentence-pair tasks; leave (none) for single texts.")
    label = st.selectbox("Label column", cols, index=guess(("label", "labels", "score", "y"), len(cols) - 1),
                         key="csv_label", help="Class names or integers (classification), or decimal numbers "
                                               "(regression).")
    return {"source": "csv", "task": "csv", "csv": path, "text_col": text,
            "pair_col": None if pair == NONE else pair, "label_col": label}


# ------------------------------------------------------------------------------------------------- errors

def epoch_formats(columns) -> dict:
    """Number formats of a table of epoch records (the prior page's, a run's on the Runs page): losses, dev metrics
    and the dropped share to 4 decimals, seconds to 1; the two dev halves' metrics with what they are."""
    half = ("The dev metric on one fixed half of the dev examples (a: even positions, b: odd ones): choosing the "
            "epoch on one half and scoring it on the other is a less optimistic figure than the best epoch's.")
    return {c: st.column_config.NumberColumn(format="%.1f" if c == "seconds" else "%.4f",
                                             help=half if c.startswith("half_") else None) for c in columns
            if c.endswith("loss") or c.startswith(("dev_", "half_")) or c in ("seconds", "dropped_share")}


def show_error(e: BaseException) -> None:
    """A UserError as st.error; anything else is a bug and is shown as such (still without a crash)."""
    if isinstance(e, UserError):
        st.error(str(e))
    else:
        st.error(f"unexpected error ({type(e).__name__}): {e}")


def intro(text: str, *latex: str) -> None:
    """The few plain sentences and the paper's equations that open a page."""
    st.markdown(text)
    for eq in latex:
        st.latex(eq)


# ------------------------------------------------------------------------------------ the start-here example
