"""AD-DROP vs vanilla fine-tuning: paired runs with the same seeds, curves, dev metrics and cost."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from addrop.experiments import groups, plans, verdicts
from addrop.studio import plots
from addrop.config import (METHOD_LABELS, PAPER_PRESET, AttributionConfig, TrainConfig, paper_layers,
                           resolve_layers, with_preset)
from addrop.experiments.best import best_vs_last
from addrop.errors import UserError, counted
from addrop.engine.runs import metrics_frame
from pages import _common as ui
from pages import _jobs as jobs

KIND = plans.COMPARE
LRS = [1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4]
SEEDS = 3  # default seed pairs: one pair tells nothing, three fit the defaults' budget (see the time estimate)

c = ui.ctx()
st.title("AD-DROP vs vanilla")
ui.intro(
    "Fine-tune the same model twice per seed: once plainly (**vanilla**) and once with **AD-DROP** (Algorithm 1). "
    "Both runs of a seed share the data subset, the data order and the new head's initial weights, so the "
    "difference is the regularizer. With **cross-tuning** the AD-DROP run alternates plain epochs (1, 3, …) and "
    "AD-DROP epochs (2, 4, …). Several seeds give a mean and a band (min to max), and the verdict below the "
    "curves is the paired difference per seed with its spread: one seed tells nothing. AD-DROP needs an extra "
    "forward and backward pass for the attribution in its masked epochs: the cost table shows what it adds.",
    r"\text{AD-DROP epoch:}\quad \tilde c=\arg\max_c P_F(c\mid x)\ \rightarrow\ "
    r"B_h=\frac{\partial F_{\tilde c}(A)}{\partial A_h}\ \rightarrow\ M_h\ (p, q)\ \rightarrow\ "
    r"\mathcal{L}\big(F(x; M), y\big)",
)


def show(frame: pd.DataFrame, key: str, runs: list) -> None:
    """The curves of every epoch so far; the verdict and the tables at the last epoch over the seeds whose runs
    have all finished (`runs`: the plan's live entries or the group's run records)."""
    if frame.empty:
        st.caption("The curves appear when the first epoch ends.")
        return
    panels = plans.compare_panels(frame)
    every, (frame, pending) = frame, groups.comparable(frame, runs)
    n = int(every["seed"].nunique()) if "seed" in every else 1
    title = ("Per epoch, vanilla against AD-DROP: " + ", ".join(t for _, t in panels)
             + (" (mean over the runs that reached each epoch, band: min to max)" if pending and n > 1 else
                f" (mean over {n} seeds, band: min to max)" if n > 1 else " (one seed)"))
    st.plotly_chart(plots.seed_curves(every, label="strategy", panels=panels, title=title), key=f"cm_fig_{key}")
    if pending:
        st.caption(("Left out of the verdict and the tables below (a seed counts once both its runs have "
                    "finished): " if not frame.empty
                    else "The verdict and the tables at the last epoch appear when both runs of a seed have "
                         "finished: ") + "; ".join(pending) + ".")
    if not frame.empty:
        verdict_and_metrics(frame)
    cost_table(every)
    best = best_vs_last(frame) if not frame.empty else pd.DataFrame()
    if not best.empty:
        st.markdown("**The epoch of the best dev metric beside the last** (mean over seeds; the paper reports the "
                    "best)")
        st.dataframe(best, hide_index=True, placeholder=ui.MISSING)


def verdict_and_metrics(frame: pd.DataFrame) -> None:
    """The paired verdict and the dev metrics at the last epoch (seeds whose runs all finished)."""
    verdict = verdicts.compare_verdict(frame)
    said = verdict["sentences"][:-1] if verdict["overfit"] is False else verdict["sentences"]
    if said:
        st.markdown("**Verdict** (paired by seed: the AD-DROP run minus the vanilla run with the same seed)\n\n"
                    + "\n".join(f"- {s}" for s in said))
    if verdict["overfit"] is False:
        st.warning(verdict["sentences"][-1], icon=":material/info:")
    if "addrop_epoch" in frame and frame["addrop_epoch"].astype(bool).any():
        st.caption("The AD-DROP run's training loss is measured with its masks in the AD-DROP epochs; with "
                   "cross-tuning those alternate with plain epochs, so its training curve can zig-zag. The dev "
                   "loss and metrics are always measured without masks.")
    metrics = groups.last_epoch_metrics(frame)
    st.markdown("**Dev metrics at the last epoch** (mean over seeds; sd when several)")
    st.dataframe(metrics, hide_index=True, placeholder=ui.MISSING, height="content", column_config={
        col: st.column_config.NumberColumn(format="%.4f") for col in metrics.columns
        if col.startswith("dev_")})  # the whole width: half of it cut off the columns


def cost_table(every: pd.DataFrame) -> None:
    """Seconds per epoch of every epoch so far, and AD-DROP's epoch against vanilla's."""
    cost, ratio = groups.epoch_cost(every)
    st.markdown("**Cost**: seconds per epoch")
    left, right = st.columns([3, 2], gap="large")
    with left:
        shown = cost.copy()
        for col in shown.columns:
            if col != "strategy":
                shown[col] = [f"{v:.2f} s" if v is not None and v == v else "–" for v in cost[col]]
        st.dataframe(shown, hide_index=True, placeholder=ui.MISSING)
    with right:
        if ratio is not None:
            st.metric("AD-DROP epoch / vanilla epoch", f"{ratio:.2f}×",
                      help="Seconds per AD-DROP epoch (masked epochs only, with cross-tuning) over seconds per "
                           "vanilla epoch.")


def draw(snap: dict) -> None:
    prog = snap.get("progress") or {}
    frame = pd.DataFrame(prog.get("epochs") or [])
    if frame.empty and snap.get("status") not in ("running", "queued"):
        st.caption("No epoch of this comparison ended, so there are no curves.")
    else:
        show(frame, "live", prog.get("runs") or [])
    if prog.get("path"):
        st.caption(f"Run records: `{prog['path']}`")


def reopened(pick: str, recs) -> None:
    show(metrics_frame(recs), "old", recs)
    masked = [r.config for r in recs if isinstance(r.config, dict) and r.config.get("attribution")]
    cfg = masked[0] if masked else (recs[0].config if recs else {})
    att = cfg.get("attribution") or {}
    st.caption(f"{cfg.get('model')} on {cfg.get('task')} · {cfg.get('num_train')} train / {cfg.get('num_dev')} "
               f"dev · {counted(cfg.get('epochs'), 'epoch')} · {att.get('method')} p={att.get('p')} "
               f"q={att.get('q')} layers {att.get('layers')} · cross-tuning {cfg.get('cross_tuning')} · "
               + ", ".join(f"{r.id}: {r.status}" for r in recs))


def so_far() -> None:
    jobs.so_far(KIND, draw, "comparison", "Reopen a comparison", "comparison", "cm_reopen", reopened)


model_name, loaded, tune_note = c.fine_tune(otherwise=so_far)  # never the fine-tuned model again
spec, train, dev = c.need_data(otherwise=so_far)
L = loaded.num_layers

PAPER_LAYERS = resolve_layers(paper_layers(spec.name), L)  # the task's layers in the paper (Section 3.2)
ui.defaults(cm_train=min(200, len(train)), cm_dev=min(100, len(dev)), cm_epochs=4, cm_batch=16, cm_lr=5e-5,
            cm_method="ga", cm_p=0.3, cm_q=0.3, cm_layers=PAPER_LAYERS, cm_cross=True, cm_seeds=SEEDS,
            cm_seed0=0, cm_target="pseudo", cm_steps=20, cm_maxlen=128, cm_paper=False, cm_layers_task=spec.name)
if st.session_state.get("cm_layers_task") != spec.name or not all(
        isinstance(l, int) and 0 <= l < L for l in st.session_state.get("cm_layers") or []):
    st.session_state["cm_layers"], st.session_state["cm_layers_task"] = PAPER_LAYERS, spec.name
ui.clamp_sizes("cm", len(train), len(dev))

job = jobs.job_for(KIND)
running = job is not None and not job.done
nums = ui.Numbers()  # ranges checked here, reported above Start (a browser-refused number would stop it silently)
with st.container(border=True):  # not a form: the caption's time estimate follows every field as it changes
    st.markdown("##### AD-DROP")
    a, b, d, e = st.columns(4)
    method = a.selectbox("Attribution", list(METHOD_LABELS), format_func=METHOD_LABELS.get, key="cm_method",
                         **ui.KEPT,
                         help="GA is the paper's default; IGA costs m extra passes; AA and RD are its ablations.")
    p = b.slider("p: candidate region", 0.05, 0.95, step=0.05, key="cm_p", **ui.KEPT,
                 help="Share of each attention row that may be dropped (Eq. 6).")
    q = d.slider("q: drop rate", 0.05, 0.95, step=0.05, key="cm_q", **ui.KEPT,
                 help="Probability of dropping each candidate (Eq. 7).")
    # pills, not a multiselect: a narrow column cut the chips of six layers off
    layers = e.pills("Layers", list(range(L)), selection_mode="multi", key="cm_layers", **ui.KEPT, wrap=True,
                     format_func=lambda l: f"L{l}", help="Layers whose attention AD-DROP masks "
                           "(default: the paper's for this task, the first for SST-2, MNLI, QNLI, QQP, STS-B and "
                           "all for CoLA, MRPC, RTE).")
    if not layers:
        nums.problems.append("Layers: choose at least one layer for AD-DROP.")
    a, b, d, e = st.columns(4)
    cross = a.toggle("Cross-tuning", key="cm_cross", **ui.KEPT,
                     help="On: plain epochs 1, 3, 5, … and AD-DROP epochs 2, 4, … (Algorithm 1). Off: AD-DROP "
                          "in every epoch.")
    target = b.selectbox("Label attributed", ["pseudo", "gold"], key="cm_target", **ui.KEPT,
                         format_func=lambda t: {"pseudo": "predicted (pseudo label)", "gold": "gold label"}[t],
                         help="AD-DROP uses the predicted label (Section 2.3); the gold label is its ablation.")
    n_seeds = nums.field(d, "Seeds", 1, 10, key="cm_seeds", **ui.KEPT,
                         help="How many seed pairs to run (seeds first, first+1, …).")
    seed0 = nums.field(e, "First seed", 0, 1_000_000, key="cm_seed0", **ui.KEPT,
                       help="Seeds the subset, the data order, the masks, dropout and the new head.")
    st.markdown("##### Training")
    n_train, n_dev, epochs, batch = nums.run_size(
        "cm", len(train), len(dev), "With cross-tuning, use an even number so that half are AD-DROP epochs.",
        "Examples per step.")
    with st.expander("More"):
        a, b, d = st.columns(3)
        lr = a.select_slider("Learning rate", LRS, key="cm_lr", **ui.KEPT, format_func=lambda v: f"{v:.0e}",
                             help="Peak learning rate of AdamW.")
        steps = nums.field(b, "IGA steps m", 2, 50, key="cm_steps", **ui.KEPT,
                           help="Only used with IGA (the paper: 20).")
        maxlen = nums.field(d, "Max tokens per example", 8, 512, key="cm_maxlen", **ui.KEPT,
                            help="Longer examples are cut.")
        keep, keep_note = jobs.keep_weights_toggle(st, "cm_keep", loaded, 2 * int(n_seeds or 1))
    paper = st.toggle("Paper preset", key="cm_paper", **ui.KEPT,
                      help="The reference's regime, in place of epochs, batch size, learning rate and max tokens: "
                           "batch 16, constant lr 1e-5, max length 100, up to 50 epochs, early stopping on the dev "
                           "metric (patience 5), best epoch kept.")
    settings_ok = nums.report()
    at_once = jobs.side_by_side(loaded, model_name, c.device, spec.num_labels, seed0, 2 * int(n_seeds or 1),
                                running)  # how many runs train at once; where two, their workers start now
    if settings_ok:
        n_epochs = 50 if paper else int(epochs)
        est_base = TrainConfig(model=model_name, epochs=n_epochs,
                               train_size=int(n_train), dev_size=int(n_dev))
        est_attr = AttributionConfig(method=method, p=float(p), q=float(q), steps=int(steps))
        est = plans.time_estimate(plans.compare_plan(est_base, est_attr, bool(cross), list(range(int(n_seeds))),
                                                     "").configs, model_name,
                                  ui.data_tokens(c, loaded, train, dev, maxlen), at_once)
        st.caption(f"{2 * int(n_seeds)} runs × {counted(n_epochs, 'epoch')} on {int(n_train)} + "
                   f"{int(n_dev)} examples ({est}{', at most: early stopping may end them sooner' if paper else ''})."
                   + (" **One seed tells nothing**: the verdict needs the spread over three or more seeds."
                      if int(n_seeds) == 1 else "") + f" {keep_note} {tune_note}")
    start = st.button("Start the comparison", key="cm_start", type="primary", icon=":material/play_arrow:",
                      disabled=running or not settings_ok, help=f"Train the runs {jobs.how(at_once)} in the "
                      "background (one job per server); you can leave the page meanwhile.")

def _plan():
    if not layers:
        raise UserError("choose at least one layer for AD-DROP")
    attr = AttributionConfig(method=method, target=target, layers=list(layers), p=float(p), q=float(q),
                             steps=int(steps))
    settings = dict(model=model_name, device=c.device, **c.data_args, epochs=int(epochs),
                    train_size=int(n_train), dev_size=int(n_dev), batch_size=int(batch), lr=float(lr),
                    max_length=int(maxlen))
    if paper:  # the preset replaces the training fields it names
        settings = with_preset({k: v for k, v in settings.items() if k not in PAPER_PRESET}, "paper")
    base = TrainConfig(**settings)
    seeds = list(range(int(seed0), int(seed0) + int(n_seeds)))
    return plans.compare_plan(base, attr, bool(cross), seeds, str(ui.runs_dir()))


if start:
    jobs.start_plan(KIND, _plan, loaded, (spec, train, dev), L, keep_weights=keep)
jobs.note_other_job(KIND, running)

so_far()
