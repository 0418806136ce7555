"""Streamlit helpers shared by app.py and the pages (not a page itself: st.navigation lists the pages).

- `sidebar()` draws the model / device / data choices and returns a `Ctx`; app.py calls it on every run and
  keeps it in st.session_state["ctx"], so a page gets it with `ctx()`.
- The pristine model and the data are cached with st.cache_resource (`cached_model`, `cached_data`); no session
  changes them (attribution runs in eval mode without parameter gradients, training copies the model).
- `submit_job`, `job_for` and `live_job` connect a page to the process-wide job runner (addrop/jobs.py): one
  job at a time per server, the job id kept in st.session_state, progress redrawn by an st.fragment.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from addrop.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_MODELS = ["minilm", "tiny-bert", "tiny-roberta", "tiny-electra", "tiny-distilbert"]
OTHER_MODEL = "other (Hugging Face id or folder)"
MODEL_HELP = {
    "minilm": "all-MiniLM-L6-v2 (6 layers x 12 heads), shipped with addrop-studio; a new, untrained "
              "classification head is put on top",
    "tiny-bert": "a 2-layer, 4-head BERT with random weights: instant demos, meaningless predictions",
    "tiny-roberta": "a 2-layer, 2-head RoBERTa with random weights",
    "tiny-electra": "a 2-layer, 4-head ELECTRA with random weights",
    "tiny-distilbert": "a 2-layer, 2-head DistilBERT with random weights",
}
SOURCES = {"demo": "Built-in demo", "glue": "GLUE folder", "hf": "Hugging Face datasets", "csv": "Upload a CSV"}
GLUE_TASKS = ["sst-2", "mrpc", "cola", "sts-b", "rte", "qnli", "qqp", "mnli"]
NONE = "(none)"


def runs_dir() -> Path:
    """Where run records live: $ADDROP_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("ADDROP_RUNS_DIR") or "runs").expanduser()


def default_model() -> str:
    return (os.environ.get("ADDROP_DEFAULT_MODEL") or "minilm").strip() or "minilm"


def default_glue_dir() -> str:
    env = os.environ.get("ADDROP_GLUE_DIR")
    if env:
        return env
    for cand in (Path("../shared/data/glue"), ROOT.parent / "shared" / "data" / "glue"):
        if cand.is_dir():
            return str(cand.resolve())
    return ""


# ------------------------------------------------------------------------------------------------- caches

@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def cached_model(name: str, device: str, num_labels: int):
    """The pristine model (head initialised with seed 0). Shared by every session: never modify it."""
    from addrop.models import load_model

    return load_model(name, device, num_labels=num_labels, seed=0)


@st.cache_resource(show_spinner="Reading the data…", max_entries=8)
def cached_data(source: str, task: str, data_dir: str | None, csv: str | None, text_col: str,
                pair_col: str | None, label_col: str):
    from addrop.data import load_data

    return load_data(task, source, data_dir, csv, text_col=text_col, pair_col=pair_col, label_col=label_col)


@st.cache_data(show_spinner=False, max_entries=16)
def csv_columns(path: str) -> list[str]:
    import pandas as pd

    low = path.lower()
    try:
        if low.endswith((".tsv", ".tab")):
            kw = {"sep": "\t"}
        elif low.endswith(".csv"):
            kw = {"sep": ","}
        else:
            kw = {"sep": None, "engine": "python"}
        frame = pd.read_csv(path, nrows=5, dtype=str, **kw)
    except Exception as e:  # noqa: BLE001 - any parse problem is the user's file
        raise UserError(f"the uploaded file could not be read as CSV/TSV: {' '.join(str(e).split())[:200]}") from None
    return [str(c) for c in frame.columns]


def save_upload(upload) -> str:
    """Keep an uploaded CSV under <runs>/.uploads/ (named by its content hash) so runs can record its path."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:12]
    first = data.split(b"\n", 1)[0]
    tsv = upload.name.lower().endswith((".tsv", ".tab")) or (
        not upload.name.lower().endswith(".csv") and first.count(b"\t") > first.count(b","))
    suffix = ".tsv" if tsv else ".csv"
    folder = runs_dir() / ".uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
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

    def need_model(self):
        """The loaded model, or an error message and the end of this page's run."""
        if self.loaded is None:
            st.error(self.model_error or "no model is loaded: choose one in the sidebar")
            st.stop()
        return self.loaded

    def need_data(self):
        if self.spec is None:
            st.error(self.data_error or "no data is loaded: choose a data source in the sidebar")
            st.stop()
        return self.spec, self.train, self.dev


def _leave_v1_mode() -> None:
    """On a fresh server whose first visit opens a page URL (/prior) directly, Streamlit still runs the page on
    its own in its old pages/-folder mode, without app.py. Switch the server to st.navigation and rerun, which
    goes through app.py to the same page."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def ctx() -> Ctx:
    _leave_v1_mode()
    c = st.session_state.get("ctx")
    return c if isinstance(c, Ctx) else Ctx(model_error="the sidebar has not run yet")


def sidebar() -> Ctx:
    """Model, device and data choices in the sidebar; loads both (cached) and reports problems there."""
    from addrop.models import available_devices, resolve_device

    c = Ctx()
    with st.sidebar:
        st.markdown("#### Model")
        choices = BUILTIN_MODELS + [OTHER_MODEL]
        dm = default_model()
        if "model_choice" not in st.session_state:
            st.session_state["model_choice"] = dm if dm in BUILTIN_MODELS else OTHER_MODEL
            if dm not in BUILTIN_MODELS:
                st.session_state["model_custom"] = dm
        choice = st.selectbox("Model", choices, key="model_choice",
                              help="minilm: a small pre-trained sentence encoder (6 layers x 12 heads). The tiny "
                                   "models have random weights and 2 layers: instant, for trying the controls. "
                                   "Other: a BERT-family model from the Hugging Face hub (needs the internet) or "
                                   "a local folder with config.json.")
        if choice == OTHER_MODEL:
            name = st.text_input("Hugging Face id or local folder", key="model_custom",
                                 placeholder="e.g. prajjwal1/bert-tiny or /path/to/model",
                                 help="BERT, RoBERTa, ELECTRA, DistilBERT, ALBERT or CamemBERT families. A new "
                                      "classification head is added for the chosen data.")
        else:
            name = choice
            st.caption(MODEL_HELP.get(choice, ""))
        c.model_name = (name or "").strip()

        devices = available_devices()
        if st.session_state.get("device") not in devices:
            st.session_state["device"] = "auto"
        c.device_choice = st.selectbox("Device", devices, key="device",
                                       help="auto picks a CUDA GPU when there is one, else the CPU. Training and "
                                            "attribution run there.")
        try:
            c.device = str(resolve_device(c.device_choice))
        except UserError as e:
            c.model_error = str(e)

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
        else:
            st.error(c.model_error)
            st.caption(f"device: {c.device or '?'}")
    st.session_state["ctx"] = c
    return c


def _data_controls() -> dict | None:
    src = st.selectbox("Source", list(SOURCES), format_func=SOURCES.get, key="data_source",
                       help="Built-in demo: 400 + 140 short review sentences (positive/negative), offline. "
                            "GLUE folder: the tasks as written by GLUE's download script (TSV). Hugging Face: "
                            "nyu-mll/glue through the datasets package (needs the internet). CSV: your own file.")
    if src == "demo":
        return {"source": "demo", "task": "demo"}
    if src in ("glue", "hf"):
        task = st.selectbox("Task", GLUE_TASKS, key="data_task",
                            help="SST-2 sentiment, MRPC paraphrase, CoLA acceptability, STS-B similarity "
                                 "(regression), RTE/QNLI/MNLI inference, QQP duplicates.")
        if src == "hf":
            st.caption("Needs the `datasets` package and a connection to the Hugging Face hub.")
            return {"source": "hf", "task": task}
        if "data_dir" not in st.session_state:
            st.session_state["data_dir"] = default_glue_dir()
        folder = st.text_input("GLUE folder", key="data_dir",
                               help="A folder holding SST-2/, MRPC/, ... with train.tsv and dev.tsv "
                                    "(default: $ADDROP_GLUE_DIR or ../shared/data/glue).")
        if not folder.strip():
            st.info("Type the GLUE folder's path.")
            return None
        return {"source": "glue", "task": task, "data_dir": folder.strip()}
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


# --------------------------------------------------------------------------------------------------- jobs

def owner() -> str:
    if "_owner" not in st.session_state:
        st.session_state["_owner"] = "session " + uuid.uuid4().hex[:6]
    return st.session_state["_owner"]


def submit_job(kind: str, name: str, fn, *args, **kwargs):
    """Start a background job for this session; on Busy (another job runs) show its message and return None."""
    from addrop.jobs import Busy, default_runner

    try:
        job = default_runner().submit(f"{kind}: {name}", fn, *args, owner=owner(), **kwargs)
    except Busy as e:
        st.error(str(e))
        return None
    st.session_state[f"job:{kind}"] = job.id
    return job


def start_plan(kind: str, build, loaded, data, num_layers: int) -> None:
    """Build a training plan (`build()` may raise UserError), check it against the model and start it as this
    session's job. Errors and Busy show on the page; the page reruns once the job has started."""
    from addrop import app_jobs

    try:
        plan = build()
        app_jobs.check_plan(plan, num_layers)
    except UserError as err:
        st.error(str(err))
        return
    if submit_job(kind, plan.group, app_jobs.run_plan, plan, loaded, data) is not None:
        st.rerun()


def note_other_job(kind: str, running: bool) -> None:
    """Say so when another kind of job occupies the server (one job at a time)."""
    other = other_job_running(kind)
    if other is not None and not running:
        st.info(f"Another job is running on this server ({other.describe()}); only one runs at a time.")


def job_for(kind: str):
    """This session's latest job of `kind`, else a running job of that kind started elsewhere (so a reload or
    another tab still sees and can stop it)."""
    from addrop.jobs import default_runner

    runner = default_runner()
    jid = st.session_state.get(f"job:{kind}")
    job = runner.get(jid) if jid else None
    if job is None:
        cur = runner.current()
        if cur is not None and cur.name.startswith(f"{kind}:"):
            job = cur
    return job


def other_job_running(kind: str):
    """A running job of another kind (only one job runs per server)."""
    from addrop.jobs import default_runner

    cur = default_runner().current()
    if cur is not None and not cur.name.startswith(f"{kind}:"):
        return cur
    return None


def live_job(job, draw, key: str, every: float = 2.0) -> None:
    """Progress bar, elapsed / remaining time, a stop button and `draw(snapshot)`, redrawn every `every`
    seconds while the job runs (an st.fragment); one full rerun when it ends."""
    from addrop.jobs import format_duration

    running_at_start = not job.done

    @st.fragment(run_every=every if running_at_start else None)
    def _live():
        snap = job.snapshot()
        status = snap["status"]
        frac = snap["fraction"] or 0.0
        msg = snap["message"] or status
        if status in ("running", "queued"):
            st.progress(frac, text=f"{msg} — {frac:.0%}")
            c1, c2, c3 = st.columns([1, 1, 1])
            c1.metric("Elapsed", format_duration(snap["elapsed"]))
            c2.metric("Remaining (estimate)", format_duration(snap["eta"]) if snap["eta"] is not None else "…")
            with c3:
                if snap["stop_requested"]:
                    st.info("Stopping after the current step…")
                elif st.button("Stop", key=f"stop:{key}", type="secondary", icon=":material/stop_circle:",
                               help="Stop after the current training step. The run is kept on disk, marked "
                                    "stopped; runs not yet started are skipped."):
                    job.stop()
                    st.rerun(scope="fragment")
            if snap["owner"] and snap["owner"] != owner():
                st.caption(f"Started by {snap['owner']}.")
        elif status == "finished":
            st.success(f"Finished in {format_duration(snap['elapsed'])}.")
        elif status == "stopped":
            st.warning(f"Stopped after {format_duration(snap['elapsed'])}; what ran is kept (marked stopped).")
        else:
            st.error(snap["error"] or "the job failed")
        draw(snap)
        if running_at_start and status not in ("running", "queued"):
            st.rerun()

    _live()


# ------------------------------------------------------------------------------------------ widget state

def defaults(**values) -> None:
    """Initial values of keyed widgets (set once; widgets then read them from st.session_state, so they are not
    also given a value= argument, which Streamlit would warn about)."""
    for k, v in values.items():
        if k not in st.session_state:
            st.session_state[k] = v


# ------------------------------------------------------------------------------------ the start-here example

START_P, START_Q, START_SEED = 0.3, 0.3, 0


@st.cache_resource(show_spinner="Searching a few example sentences for one that shows the idea…", max_entries=8)
def flip_case(model_key: tuple, _loaded, texts: tuple, pairs: tuple | None, golds: tuple, label_names: tuple,
              p: float = START_P, q: float = START_Q, seed: int = START_SEED, limit: int = 30):
    """explore.find_flip over the first `limit` examples, cached per model and data."""
    from addrop.config import AttributionConfig
    from addrop.explore import find_flip

    return find_flip(_loaded, texts, pairs, golds, AttributionConfig(method="ga"), p=p, q=q, seed=seed,
                     limit=limit, label_names=label_names)


def load_start_example(c: Ctx) -> bool:
    """Find the start-here example for the current model and data and preset the explorer's widgets with it.
    Returns False (after showing why) when there is nothing to show."""
    loaded = c.need_model()
    if c.spec is not None and not c.spec.is_regression:
        split = c.dev
        names = c.label_names
    else:
        from addrop.data import load_demo

        spec, _, split = load_demo()
        names = spec.label_names
        if c.spec is not None and c.num_labels != spec.num_labels:
            st.warning("The start-here example needs a classification task; choose the demo data or another "
                       "classification task in the sidebar.")
            return False
    n = min(30, len(split))
    try:
        case = flip_case(c.model_key, loaded, tuple(split.texts[:n]),
                         tuple(split.pairs[:n]) if split.pairs is not None else None,
                         tuple(split.labels[:n]), tuple(names))
    except UserError as e:
        show_error(e)
        return False
    if case is None:
        st.warning("No example to show for this model and data.")
        return False
    st.session_state.update({
        "ex_source": "Type your own", "ex_text": case.text, "ex_pair": case.pair or "", "ex_method": "ga",
        "ex_backend": "native", "ex_target": "predicted", "ex_p": START_P, "ex_q": START_Q, "ex_mode": "high",
        "ex_ties": "paper",
        "ex_seed": START_SEED, "ex_layer": case.layer, "ex_head": case.head,
        "ex_mask_layers": list(range(loaded.num_layers)),
    })
    if case.found:
        note = (f"**Start-here example.** Under the AD-DROP mask (p = {START_P}, q = {START_Q}, all layers) the "
                f"prediction flips from **{case.before}** to **{case.after_addrop}**; under a random mask that "
                f"drops exactly as many positions in every row it stays **{case.after_random}**. The head shown "
                f"(layer {case.layer}, head {case.head}) has strong attribution.")
    else:
        note = (f"**Start-here example.** Among the {case.searched} sentences searched, none flipped under the "
                f"AD-DROP mask alone; this one is where the AD-DROP mask lowers the prediction's margin the most "
                f"compared with a random mask of the same size ({case.margin_change_addrop:+.3f} vs "
                f"{case.margin_change_random:+.3f}).")
    st.session_state["ex_note"] = note
    st.session_state["ex_note_for"] = case.text
    return True
