"""Prior experiment (paper Section 2.2): drop high / low / random / no attention positions while fine-tuning."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from addrop.experiments import plans, verdicts
from addrop.studio import plots
from addrop.config import COUNTS, PRECISIONS, PRIOR_STRATEGIES, TrainConfig
from addrop.errors import UserError, counted
from addrop.engine.precision import ran_in, resolve_precision
from addrop.engine.runs import list_runs, metrics_frame
from pages import _common as ui
from pages import _jobs as jobs

KIND = plans.PRIOR
LRS = [1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4]
COUNT_LABELS = {"equal": "equal: n − int(n(1−r)) keys for high, low and random",
                "reference": "reference: high n − int(n(1−r)), low int(nr), random a coin per key"}
SETTINGS_NOTE = (
    "**Quick look** (the defaults) shows drop-low fitting fastest and drop-high slowest, but no run has time to "
    "overfit. **Overfitting in view** trains fewer examples for more epochs; it was chosen on the demo data "
    "(docs/prior-preset.md) so that drop-low's dev loss turns upwards, as in the paper's Figure 2. On 4 seeds not "
    "used to choose it, the runs agreed with all three of the paper's observations on every seed, and drop-low's "
    "dev loss rose by 0.02 or more after its lowest on 3 of them. On other data it is only a longer run.")
CHART_TITLE = "Training loss (solid: with the masks; dotted: clean) and dev loss per epoch, by strategy"
# the two settings' run sizes (plans.PRIOR_SETTINGS) and the fields they fill
SIZE_KEYS = {"train_size": "pr_train", "dev_size": "pr_dev", "epochs": "pr_epochs", "lr": "pr_lr"}
SETTING_LABELS = {"quick": "Quick look", "overfit": "Overfitting in view"}

c = ui.ctx()
st.title("Prior experiment")
ui.intro(
    "Section 2.2 of the paper asks whether all attention positions matter equally for overfitting. Each "
    "training batch is attributed with the **gold** label by gradient attribution (Eq. 2) in the chosen layers; "
    "then a fixed share of every attention row is dropped: the positions with the **highest** attribution, the "
    "**lowest**, **random** ones, or **none**. Same data, seed and model for all four. By default the three "
    "drop-* strategies drop the same number of keys from every row, so they differ only in *which* keys. What "
    "your run shows is summarised below its curves, computed from its numbers; the paper's finding is quoted "
    "below it.",
    r"B_h = \frac{\partial F_{y}(A)}{\partial A_h}\ \text{(gold label } y\text{)}",  # two lines: one overflows
    r"M_h[i,j] = -\infty \ \text{for the } k = n - \mathrm{int}(n(1-r)) \text{ highest / lowest / random } "
    r"b_{i,j} \text{ of row } i",
)


def draw(snap: dict) -> None:
    prog = snap.get("progress") or {}
    frame = pd.DataFrame(prog.get("epochs") or [])
    show_clean = st.toggle("Show the clean training loss (dotted)", value=True, key="pr_clean",
                           help="The training loss of the same model without masks, measured after each epoch.")
    live = snap.get("status") in ("running", "queued")  # the summary then says it covers the runs so far
    recs = list_runs(prog["path"]) if prog.get("path") else []
    if recs:
        st.caption(describe(prog.get("group") or snap.get("name"), recs))
    if frame.empty:
        ended = verdicts.prior_summary(frame, runs={r["strategy"]: r["status"] for r in prog.get("runs") or []})
        st.caption("The curves appear when the first epoch ends." if live or not ended else ended[0])
        return
    results(frame, show_clean, "live", recs, total_runs=len(prog.get("runs") or []) if live else None,
            runs=None if live else {r["strategy"]: r["status"] for r in prog.get("runs") or []})
    if prog.get("path"):
        st.caption(f"Run records: `{prog['path']}`")


def describe(name: str, recs) -> str:
    """One line on what an experiment trains: model, data, sizes, layers, rate, seed and each run's status."""
    cfg = recs[0].config
    att = next((r.config.get("attribution") for r in recs if r.config.get("attribution")), None)
    masks = f"layers {att.get('layers')} · rate {att.get('p')} · " if att else ""  # none's run alone has none
    return (f"{name}: {cfg.get('model')} on {cfg.get('task')} · {cfg.get('num_train')} train / "
            f"{cfg.get('num_dev')} dev · {counted(cfg.get('epochs'), 'epoch')} · lr {cfg.get('lr')} · {masks}"
            f"seed {cfg.get('seed')} · " + ", ".join(f"{r.id}: {r.status}" for r in recs))


def results(frame: pd.DataFrame, show_clean: bool, key: str, recs, total_runs: int | None = None,
            runs: dict | None = None) -> None:
    """Curves, the summary computed from them, the paper's finding, the clean-loss note and the table
    (`total_runs`: a running experiment's, whose summary covers the runs so far; `runs`: an ended one's status of
    every run, so that the summary names those that did not finish)."""
    st.plotly_chart(plots.loss_curves(frame, label="strategy", clean=show_clean, title=CHART_TITLE),
                    key=f"pr_fig_{key}")
    summary = verdicts.prior_summary(frame, total_runs, runs)
    st.markdown("**What this run shows**\n\n" + "\n".join(f"- {s}" for s in summary))
    if total_runs is None and verdicts.overfit_sentence(frame)[0] is False and plans.overfit_setting_helps(
            recs[0].config if recs else None):
        st.caption(f"The **{SETTING_LABELS['overfit']}** setting (under Settings above) trains long enough for "
                   "drop-low's dev loss to turn upwards on the demo data.")
    st.markdown(f"**The paper's finding.** {verdicts.PAPER_PRIOR_FINDING}")
    counts = {(r.config.get("attribution") or {}).get("count") for r in recs
              if isinstance(r.config, dict) and str(r.config.get("strategy", "")).startswith("drop-")}
    counts.discard(None)
    precisions = ran_in(recs)
    notes = [f"Keys dropped per row: {'; '.join(COUNT_LABELS.get(k, str(k)) for k in sorted(counts))} (the "
             "dropped_share column shows the share actually dropped)."] if counts else []
    notes += [f"Precision of the runs: {', '.join(precisions)}."] if precisions else []
    if notes:
        st.caption(" ".join(notes))
    if show_clean:
        st.markdown(verdicts.clean_note(frame))
    _table(frame)


def _table(frame: pd.DataFrame) -> None:
    cols = [c for c in ("strategy", "epoch", "train_loss", "clean_train_loss", "dev_loss") if c in frame]
    cols += [c for c in frame.columns if c.startswith("dev_") and c != "dev_loss"]
    cols += [c for c in ("dropped_share", "seconds") if c in frame]
    st.dataframe(frame[cols], hide_index=True, placeholder=ui.MISSING, height="content",
                 column_config=ui.epoch_formats(cols))


def reopened(pick: str, recs) -> None:
    frame = metrics_frame(recs)
    if frame.empty:
        st.caption("No finished epochs in this experiment.")
        return
    show_clean = st.toggle("Show the clean training loss (dotted)", value=True, key="pr_clean_old",
                           help="The training loss of the same model without masks, after each epoch.")
    st.caption(describe(pick, recs))
    # a run that never started has no folder: the experiment planned all four
    results(frame, show_clean, "old", recs,
            runs=dict.fromkeys(PRIOR_STRATEGIES, "waiting") | {r.strategy: r.status for r in recs})


def so_far() -> None:
    jobs.so_far(KIND, draw, "experiment", "Reopen an experiment", "prior experiment", "pr_reopen", reopened)


model_name, loaded, tune_note = c.fine_tune(otherwise=so_far)  # never the fine-tuned model again
spec, train, dev = c.need_data(otherwise=so_far)
L = loaded.num_layers
HERE = resolve_precision("auto", loaded.device)
PRECISION_LABELS = {"fp32": "fp32", "bf16": "bf16", "auto": f"auto (here: {HERE})"}
PRECISION_HELP = ("The arithmetic of the training, attribution and evaluation passes. bf16: matrix products in bf16 "
                  "through autocast (weights and optimizer stay fp32), faster where the device computes bf16 "
                  "natively (this page's default run: about 15% faster on a CPU with AVX512-BF16 or AMX); the "
                  "losses agree with fp32 to about 1e-3, and this experiment compares the strategies with each "
                  f"other. auto (default): bf16 where the device computes it natively, else fp32; here: {HERE}.")


def setting_sizes(name: str) -> dict:
    """A setting's run sizes (TrainConfig fields), the example counts capped at the data's."""
    caps = {"train_size": len(train), "dev_size": len(dev)}
    return {k: (min(v, caps[k]) if k in caps else v) for k, v in plans.PRIOR_SETTINGS[name].items()}


def setting_values(name: str) -> dict:
    """{field key: value} of a setting."""
    return {SIZE_KEYS[k]: v for k, v in setting_sizes(name).items()}


def use_setting(name: str) -> None:
    st.session_state.update(setting_values(name))


_TC = TrainConfig()  # the command line's defaults, where PRIOR_DEFAULTS does not set its own
ui.defaults(**setting_values("quick"), pr_batch=_TC.batch_size,
            pr_layers=list(plans.PRIOR_DEFAULTS["layers"]), pr_rate=plans.PRIOR_DEFAULTS["rate"], pr_seed=_TC.seed,
            pr_maxlen=_TC.max_length, pr_count=plans.PRIOR_DEFAULTS["count"],
            pr_precision=plans.PRIOR_DEFAULTS["precision"])
if not all(isinstance(l, int) and 0 <= l < L for l in st.session_state.get("pr_layers") or []):
    st.session_state["pr_layers"] = list(plans.PRIOR_DEFAULTS["layers"])
    st.session_state["pr_layers_said"] = (f"Layers masked were set back to layer 0: {model_name} has "
                                          f"{counted(L, 'layer')} (0 to {L - 1}).")
ui.clamp_sizes("pr", len(train), len(dev))

job = jobs.job_for(KIND)
running = job is not None and not job.done
at_once = jobs.side_by_side(loaded, model_name, c.device, spec.num_labels, st.session_state.get("pr_seed"), 4,
                            running)  # how many runs train at once; where two, their workers start now
nums = ui.Numbers()  # ranges checked here, reported above Start (a browser-refused number would stop it silently)
with st.container(border=True):  # not a form: the caption's time estimate follows every field as it changes
    st.markdown("##### Settings")
    a, b, d = st.columns([1, 1, 2], vertical_alignment="center")
    for col, name in ((a, "quick"), (b, "overfit")):
        est = plans.time_estimate(plans.prior_plan(TrainConfig(model=model_name, **setting_sizes(name)),
                                                   plans.PRIOR_DEFAULTS["rate"], [0], "").configs, model_name,
                                  ui.data_tokens(c, loaded, train, dev, st.session_state.get("pr_maxlen")),
                                  at_once)
        col.button(SETTING_LABELS[name], key=f"pr_use_{name}", on_click=use_setting, args=(name,),
                   width="stretch", help=f"Fill in this setting's training and dev examples, epochs and learning "
                                         f"rate ({est}); the other settings stay.")
    now = next((n for n in plans.PRIOR_SETTINGS
                if all(st.session_state.get(k) == v for k, v in setting_values(n).items())), None)
    d.caption(f"Examples, epochs and learning rate below: the **{SETTING_LABELS[now]}** setting." if now else
              "Examples, epochs and learning rate below: your own.")
    st.caption(SETTINGS_NOTE)
    n_train, n_dev, epochs, batch = nums.run_size(
        "pr", len(train), len(dev), "Every epoch of every strategy uses its masks (no cross-tuning here).",
        "Examples per training step.")
    a, b, d, e = st.columns(4)
    lr = a.select_slider("Learning rate", LRS, key="pr_lr", **ui.KEPT, format_func=lambda v: f"{v:.0e}",
                         help="Peak learning rate of AdamW (linear warm-up over 10% of the steps, then decay).")
    layers = b.multiselect("Layers masked", list(range(L)), key="pr_layers", **ui.KEPT,
                           format_func=lambda l: f"layer {l}",
                           help="The paper masks the first layer; its Appendix B tries others.")
    if not layers:
        nums.problems.append("Layers masked: choose at least one layer.")
    if st.session_state.get("pr_layers_said"):
        b.caption(st.session_state.pop("pr_layers_said"))
    rate = d.slider("Drop rate r", 0.05, 0.9, step=0.05, key="pr_rate", **ui.KEPT,
                    help="Share of each attention row dropped (the paper uses 0.3).")
    seed = nums.field(e, "Seed", 0, 1_000_000, key="pr_seed", **ui.KEPT,
                      help="Seeds the subsets, the data order, the masks, dropout and the new head.")
    with st.expander("More"):
        a, b, d = st.columns(3)
        maxlen = nums.field(a, "Max tokens per example", 8, 512, key="pr_maxlen", **ui.KEPT,
                            help="Longer examples are cut.")
        count = b.selectbox("Keys dropped per row", list(COUNTS), key="pr_count", **ui.KEPT,
                            format_func=COUNT_LABELS.get,
                            help="equal (default): the three drop-* strategies drop the same number of keys from "
                                 "each row. reference: the reference code's rule, which on a 13-key row at r = 0.3 "
                                 "drops 4 keys for high and 3 for low, so the comparison is confounded.")
        precision = d.selectbox("Precision", list(PRECISIONS), key="pr_precision", **ui.KEPT,
                                format_func=PRECISION_LABELS.get, help=PRECISION_HELP)
        keep, keep_note = jobs.keep_weights_toggle(st, "pr_keep", loaded, 4, default=False)  # a contrast's runs
    settings_ok = nums.report()
    if settings_ok:
        base_cfg = TrainConfig(model=model_name, epochs=int(epochs), train_size=int(n_train),
                               dev_size=int(n_dev))
        est = plans.time_estimate(plans.prior_plan(base_cfg, float(rate), [0], "", count=count).configs,
                                  model_name, ui.data_tokens(c, loaded, train, dev, maxlen), at_once)
        st.caption(f"4 runs × {counted(int(epochs), 'epoch')} on {int(n_train)} + {int(n_dev)} "
                   f"examples ({est}). Keys dropped per row: {COUNT_LABELS[count]}. Precision: "
                   f"{PRECISION_LABELS[precision]}. {keep_note} {tune_note}")
    start = st.button("Start the prior experiment", key="pr_start", type="primary", icon=":material/play_arrow:",
                      disabled=running or not settings_ok, help=f"Train the four runs {jobs.how(at_once)} in the "
                      "background (one job per server); you can leave the page meanwhile.")

def _plan():
    if not layers:
        raise UserError("choose at least one layer to mask")
    base = TrainConfig(model=model_name, device=c.device, **c.data_args, epochs=int(epochs),
                       train_size=int(n_train), dev_size=int(n_dev), batch_size=int(batch), lr=float(lr),
                       max_length=int(maxlen), seed=int(seed), precision=precision)
    return plans.prior_plan(base, float(rate), list(layers), str(ui.runs_dir()), count=count)


if start:
    jobs.start_plan(KIND, _plan, loaded, (spec, train, dev), L, keep_weights=keep)
jobs.note_other_job(KIND, running)

so_far()
