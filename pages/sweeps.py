"""Sweeps: the p x q heatmap (paper Figure 6) filling in live, the best cell and its curves, and a small sweep
started in the background. Thin: every number comes from addrop.sweep_results reading the run records."""
from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from addrop.engine.models import TINY, model_choice_label
from addrop.engine.preflight import check_runs
from addrop.errors import UserError, counted
from addrop.experiments.sweeps import local as sweep_local
from addrop.experiments.sweeps import results as sr
from addrop.experiments.sweeps.spec import SweepSpec, default_name
from addrop.studio import plots
from addrop.studio.background import sweep_job
from pages import _common as ui
from pages import _jobs as jobs


def _start_settings(runs_dir: Path):
    """A new sweep's settings, its run count and time estimate (following every field as it changes; not a form),
    the problems with them said before Start, and Start."""
    from addrop.config import METHOD_LABELS, METHODS, AttributionConfig, TrainConfig, is_csv_task
    from addrop.engine.tasks import get_task

    from addrop.engine.weights import fine_tune_start

    c = ui.ctx()
    data = dict(c.data_args or {})
    # a model already fine-tuned (minilm-demo, a run's checkpoint) is not trained again: its pre-trained base is
    start = fine_tune_start(c.model_name) if c.model_name else ui.default_model()
    nums = ui.Numbers()  # ranges checked here, reported above Start (a browser-refused number would stop it silently)
    # not a form: the number of runs and the time estimate follow every field as it changes
    st.caption("A small grid runs in the background on this machine, one run after another; the heatmap above "
               "fills in as runs finish. Starting it again with the same name resumes it. Device and data "
               "default to the sidebar's, and so does the model, except that one already fine-tuned (such as "
               "minilm-demo) is replaced by the pre-trained model it grew from, with a new head.")
    c1, c2, c3 = st.columns(3)
    model = c1.text_input("Model", value=start,
                          help="minilm, a Hugging Face id or a folder. The tiny-* models are untrained (random "
                               "weights): they learn next to nothing, so every cell will equal the baseline.")
    task = c2.text_input("Task", value=str(data.get("task") or "demo"))
    data_dir = c3.text_input("GLUE folder", value=str(data.get("data_dir") or ui.glue_dir_text()))
    c1, c2, c3 = st.columns(3)
    ps = c1.text_input("p values", value="0.1,0.3,0.5", help="start:stop:step (0.1:0.9:0.1) or a list")
    qs = c2.text_input("q values", value="0.1,0.3,0.5")
    seeds = c3.text_input("Seeds", value="0")
    c1, c2, c3, c4 = st.columns(4)
    epochs = nums.field(c1, "Epochs", 2, 20, key="sw_epochs", value=2,
                        help="At least 2: with cross-tuning (always on here) epoch 1 is plain and AD-DROP masks "
                             "epochs 2, 4, ...")
    train_size = nums.field(c2, "Training examples (0 = all)", 0, 1_000_000, key="sw_train", value=128, step=32)
    dev_size = nums.field(c3, "Dev examples (0 = all)", 0, 1_000_000, key="sw_dev", value=0, step=32)
    batch = nums.field(c4, "Batch size", 1, 256, key="sw_batch", value=16)
    c1, c2, c3 = st.columns(3)
    lr = nums.field(c1, "Learning rate", 1e-7, 1.0, key="sw_lr", value=1e-4, format="%.0e")
    method = c2.selectbox("Attribution", list(METHODS), format_func=METHOD_LABELS.get)
    baseline = c3.checkbox("Vanilla baseline", value=True)
    name = st.text_input("Sweep name (empty: sweep-<task>-<model>)", value="")
    spec = None
    if nums.report():
        task = task.strip()
        same_task = task == str(data.get("task") or "")
        try:
            base = TrainConfig(model=model.strip(), task=task, data_dir=data_dir.strip() or None,
                               source=str(data.get("source") or "auto") if same_task else "auto",
                               csv=data.get("csv") if same_task else None,
                               text_col=str(data.get("text_col") or "text"), pair_col=data.get("pair_col"),
                               label_col=str(data.get("label_col") or "label"),
                               strategy="addrop", attribution=AttributionConfig(method=method), epochs=int(epochs),
                               train_size=int(train_size) or None, dev_size=int(dev_size) or None,
                               batch_size=int(batch), lr=float(lr), device=c.device_choice or "auto")
            spec = SweepSpec(name=name.strip() or default_name(base), base=base, ps=ps, qs=qs, seeds=seeds,
                             baseline=baseline)
            if not is_csv_task(task):
                get_task(task)  # a misspelt task, said as it is typed (the model is checked at Start: no download)
        except UserError as e:
            spec = None
            st.error(str(e))
        else:
            st.caption(_estimate(spec, c, same_task))
    if not st.button("Start sweep", key="sw_start", type="primary", icon=":material/play_arrow:",
                     disabled=spec is None) or spec is None:
        return
    try:
        check_runs(list(spec.cells()), runs_dir)  # a misspelt task, layers, names: refused before the job starts
        sweep_local.prepare(spec, runs_dir)  # and clashing settings
    except UserError as e:
        st.error(str(e))
        return
    job = jobs.submit_job("sweep", spec.name, sweep_job, spec, str(runs_dir))  # Busy: shown, None returned
    if job is not None:
        st.session_state["sweep_selected"] = spec.name
        st.rerun()


def _estimate(spec: SweepSpec, c, same_task: bool) -> str:
    """'N runs (p x q x seeds + baseline) of E epochs on n + d examples (time estimate)'. The sizes "all" are the
    sidebar's data's sizes when the sweep trains on it, else unknown (no estimate of the time then)."""
    from dataclasses import replace

    from addrop.experiments import plans

    cells = list(spec.cells())
    base = spec.base
    n_train, n_dev = base.train_size, base.dev_size
    if same_task and c.spec is not None:
        n_train, n_dev = n_train or len(c.train), n_dev or len(c.dev)
    grid = (f"({len(spec.ps)} p × {len(spec.qs)} q{' + a vanilla baseline' if spec.baseline else ''}) × "
            f"{counted(len(spec.seeds), 'seed')}")
    what = f"{counted(len(cells), 'run')}, {grid}, of {counted(base.epochs, 'epoch')}"
    if not (n_train and n_dev):
        return f"{what}, on all the examples of {base.task}."
    sized = [replace(cfg, train_size=n_train, dev_size=n_dev) for cfg in cells]
    tokens = ui.data_tokens(c, c.loaded, c.train, c.dev) if same_task and c.loaded is not None else None
    return f"{what} on {n_train:,} + {n_dev:,} examples ({plans.time_estimate(sized, base.model, tokens)})."


def _cell_label(row) -> str:
    if row["kind"] == "baseline":
        return "baseline (vanilla)"
    return f"p={row['p']:g} q={row['q']:g}"


def _sweep_bar(folder: Path):
    """The one progress bar of a sweep (the job's own is hidden), counted from the run records."""
    try:
        prog = sr.progress(folder)
    except UserError as e:
        st.error(str(e))
        return
    done, finished, expected = prog["done"], prog["finished"], prog["expected"]
    frac = min(1.0, done / max(expected, 1))
    st.progress(frac, text=f"{finished}/{expected} runs finished" + (f", {done - finished} failed or stopped"
                                                                    if done > finished else "")
                + f" — {frac:.0%}" + (f"; running: {', '.join(prog['running'])}" if prog["running"] else ""))


def _show_sweep(folder: Path):
    try:
        table = sr.sweep_table(folder, which=st.session_state.get("sweep_which", "best"))
    except UserError as e:
        st.error(str(e))
        return
    model = table.attrs.get("model")
    if model in TINY:
        st.caption(f"{model_choice_label(model)}: it learns next to nothing, so expect every cell to equal the "
                   "baseline.")
    fig = plots.sweep_heatmap(table)
    event = st.plotly_chart(fig, key=f"heat-{folder.name}", on_select="rerun", selection_mode="points",
                            width="stretch")
    verdict = sr.sweep_verdict(table)
    best = verdict["best"]  # None when no cell differs from the baseline beyond noise
    base = table.attrs.get("baseline", math.nan)
    metric = table.attrs.get("metric", "metric")
    if table["n"].gt(0).any():
        (st.success if best else st.info)(verdict["sentence"])
    c1, c2, c3 = st.columns(3)
    c1.metric(f"baseline {metric}", "–" if base != base else f"{base:.4f}")
    if best:
        c2.metric("best cell", f"p={best['p']:g} q={best['q']:g}", None if best["delta"] != best["delta"]
                  else sr.delta_text(best["delta"], table.attrs.get("higher_is_better", True)),
                  delta_color="normal" if table.attrs.get("higher_is_better", True) else "inverse")
        c3.metric(f"best {metric}", f"{best['mean']:.4f}", f"± {best['std']:.4f} ({best['n']} seed(s))",
                  delta_color="off")

    # the cell whose curves are shown: a click on the heatmap, else the selector (best cell first)
    rows = [r for _, r in table.iterrows() if r["n"] > 0 or r["running"]]
    labels = [_cell_label(r) for r in rows]
    clicked = None
    try:
        pts = (event or {}).get("selection", {}).get("points", []) if event else []
        if pts:
            clicked = f"p={float(pts[0]['y']):g} q={float(pts[0]['x']):g}"
    except (AttributeError, KeyError, TypeError, ValueError):
        clicked = None
    default = clicked or (f"p={best['p']:g} q={best['q']:g}" if best else None)
    if not labels:
        st.info("no run has finished yet: the heatmap fills in as cells finish")
        return
    index = labels.index(default) if default in labels else 0
    choice = st.selectbox("cell to plot (or click one on the heatmap)", labels, index=index,
                          key=f"cell-{folder.name}-{clicked or ''}")
    row = rows[labels.index(choice)]
    from addrop.studio.plots import loss_curves
    from addrop.engine.runs import metrics_frame

    runs = sr.cell_runs(folder, None if row["kind"] == "baseline" else row["p"],
                        None if row["kind"] == "baseline" else row["q"])
    if row["kind"] != "baseline":
        runs += sr.cell_runs(folder, None, None)
    frame = metrics_frame(runs)
    if not frame.empty:
        frame["label"] = frame["run"]
        st.plotly_chart(loss_curves(frame, label="label", title=choice if row["kind"] == "baseline"
                                    else f"{choice} and the baseline"),
                        width="stretch")
        dev_cols = [c for c in frame.columns if c.startswith("dev_") and c != "dev_loss"]
        st.dataframe(frame[["run", "epoch", "addrop_epoch", "train_loss", "dev_loss", *dev_cols,
                            "dropped_share"]].round(4) if "addrop_epoch" in frame else frame,
                     hide_index=True, placeholder=ui.MISSING, width="stretch")
    with st.expander("table (table.csv)"):
        st.dataframe(table.round(4), hide_index=True, placeholder=ui.MISSING, width="stretch")
        st.caption(f"{folder / sr.TABLE_FILE}  ·  {folder / sr.HEATMAP_FILE}")


def main():
    st.title("p × q sweeps")
    st.caption("AD-DROP's two hyper-parameters over a grid (the paper's 9 × 9 search and its Figure 6): each cell's "
               "dev metric minus the vanilla baseline with the same seeds. Command line: "
               "`python -m addrop sweep --model minilm --task mrpc --p 0.1:0.9:0.1 --q 0.1:0.9:0.1 --out runs`.")
    runs_dir = ui.runs_dir()
    job = jobs.job_for("sweep")
    if job is not None and (not job.done or job.snapshot()["status"] == "failed"):  # a failure says why, here
        jobs.live_job(job, None, key="sweep", bar=False)  # the sweep's bar: below
    folders = sr.list_sweeps(runs_dir)
    if not runs_dir.is_dir():
        st.info(f"No runs folder yet at {runs_dir.resolve()} (set ADDROP_RUNS_DIR): start a sweep below")
    elif not folders:
        st.info(f"No sweep in {runs_dir.resolve()} yet: start one below or with `python -m addrop sweep`")
    if folders:
        names = [f.relative_to(runs_dir).as_posix() for f in folders]
        want = st.session_state.get("sweep_selected")
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Sweep", names, index=names.index(want) if want in names else 0)
        c2.radio("Score of a run", ["best", "last"], key="sweep_which", horizontal=True,
                 help="best: its best dev epoch (early stopping, as in the paper); last: the final epoch")
        folder = runs_dir / pick
        try:
            live = bool(sr.progress(folder)["running"]) or (job is not None and not job.done)
        except UserError:
            live = False
        # two fragments, as jobs.live_job: the bar often, the heatmap, curves and tables a third as often
        st.fragment(run_every=jobs.BAR_EVERY if live else None)(_sweep_bar)(folder)
        st.fragment(run_every=jobs.DRAW_EVERY if live else None)(_show_sweep)(folder)
    with st.expander("Start a sweep", expanded=not folders):
        _start_settings(runs_dir)


main()
