"""One button that trains a model for the chosen data (studio.background.quick_config / train_job) and switches
the sidebar to it when it is done. Shown on the explorer page."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import _common as ui
from pages import _jobs

KIND = "model"


def panel_open(c: ui.Ctx) -> bool:
    """Whether the panel opens expanded: the model's head is untrained, or a training job is running."""
    job = _jobs.job_for(KIND)
    return bool(c.untrained or (job is not None and not job.done))


def kept_weights(result: dict) -> bool:
    """Whether the run wrote weights the sidebar can switch to (a run stopped before its first epoch ended has
    none)."""
    from addrop.engine.runs.names import WEIGHTS_FILE

    return bool(result.get("path")) and (Path(result["path"]) / WEIGHTS_FILE).is_file()


def stop_note(result: dict, model: str) -> str | None:
    """What a stopped run left the explorer: the weights of its last finished epoch, or nothing."""
    if result.get("status") != "stopped":
        return None
    if kept_weights(result):
        epochs = [m.get("epoch") for m in result.get("metrics") or [] if isinstance(m, dict)]
        which = f"epoch {epochs[-1]}, its last finished epoch" if epochs else "its last finished epoch"
        return (f"Stopped during training. The weights of {which}, are kept in the runs folder, and the sidebar "
                "switched to them.")
    from addrop.engine.weights import RUN_PREFIX, parse_run_ref

    shown = model
    if model.startswith(RUN_PREFIX):  # a run's name (and epoch), not its path
        folder, epoch = parse_run_ref(model)
        shown = folder.name + ("" if epoch is None else f"@{epoch}")
    return (f"Stopped before the first epoch ended, so no weights were kept: the sidebar stays on **{shown}**. "
            "Train again and let at least one epoch finish.")


def _data_key(c: ui.Ctx) -> str:
    """The data a model is trained for, as the sidebar chose it (source, task, folder or file, columns)."""
    return repr(sorted((c.data_args or {}).items()))


def train_model_panel(c: ui.Ctx) -> None:
    """Offered while the model's head is untrained (expanded) and in an expander otherwise."""
    job = _jobs.job_for(KIND)
    running = job is not None and not job.done
    trained_for = st.session_state.setdefault("train_model_data", {})  # job id -> _data_key of its data
    other_data = job is not None and job.done and trained_for.get(job.id, _data_key(c)) != _data_key(c)
    if job is not None and job.done and job.result and st.session_state.get("model_switched") != job.id \
            and not other_data:  # trained for data no longer chosen: its head would not fit this data
        st.session_state["model_switched"] = job.id
        if job.result.get("status") in ("finished", "stopped") and kept_weights(job.result):
            ui.use_model(job.result["ref"])
            st.rerun()
    if c.spec is None or c.loaded is None:
        return
    done = job.result if job is not None and job.done and job.result else None
    note = stop_note(done, c.model_name) if done and (not kept_weights(done) or c.model_name == done["ref"]) else None
    if note:  # above the panel (folded after a switch), while the sidebar holds what the stop left
        st.info(note, icon=":material/info:")
    with st.expander("Train a model for this data", expanded=panel_open(c), icon=":material/model_training:"):
        from addrop.studio.background import QUICK_DEV, QUICK_TRAIN

        from addrop.engine.weights import fine_tune_start

        base = fine_tune_start(c.model_name)  # a fine-tuned model's pre-trained base
        n_tr, n_dv = min(len(c.train), QUICK_TRAIN), min(len(c.dev), QUICK_DEV)
        st.markdown(f"A plain fine-tune of **{base}** on {n_tr:,} training examples of **{c.spec.name}** (3 epochs, "
                    f"batch 16, learning rate 5e-5), scored on {n_dv:,} dev examples. Its weights are kept in the "
                    "runs folder and the sidebar switches to it when it is done (it stays in the sidebar's model "
                    "list after a restart). It also follows a few dev examples across training for the *Across "
                    "training* page. With minilm on a 2-core CPU this took about 30 s on the demo data and about a "
                    "minute on 1,000 SST-2 sentences (longer inputs take longer); the tiny models take seconds.")
        picks = st.multiselect("Dev examples to follow (probes)", range(n_dv), key="train_probes",
                               format_func=lambda i: f"#{i} {c.dev.texts[i][:60]}",
                               help="Leave empty for 4 examples spread over the dev subset. At most 16.",
                               max_selections=16) if not running else []
        every = st.checkbox("Also keep every epoch's weights", key="train_every_epoch",
                            help="Each epoch's checkpoint (about 90 MB each for minilm) then appears in the sidebar's "
                                 "model list, so the explorer can show the model at any epoch.") if not running \
            else False
        _jobs.note_other_job(KIND, running)
        if not running and st.button("Train a model", type="primary", icon=":material/play_arrow:",
                                     key="train_model"):
            from addrop.errors import UserError
            from addrop.studio.background import quick_config, train_job

            try:
                cfg = quick_config(base, c.data_args, len(c.train), len(c.dev),
                                   ",".join(str(i) for i in picks) or None, device=c.device or "auto",
                                   every_epoch=bool(every))
            except UserError as e:
                st.error(str(e))
                return
            loaded = c.loaded if base == c.model_name else None
            splits = (c.spec, c.train, c.dev)
            started = _jobs.submit_job(KIND, cfg.name, train_job, cfg, str(ui.runs_dir()), loaded, splits)
            if started is not None:
                trained_for[started.id] = _data_key(c)
                st.rerun()
        if other_data:  # its numbers are another data set's: not shown as if they were this one's
            st.caption(f"The last model trained here, *{job.name}*, was for other data: the sidebar lists it when "
                       "that data is chosen, and the Runs page shows its numbers.")
        elif job is not None:
            def draw(snap):
                ev = snap.get("events") or []
                if ev:
                    last = ev[-1]
                    metric = next((k for k in last if k.startswith("dev_") and k != "dev_loss"), None)
                    st.caption(f"epoch {last.get('epoch')}: train loss {last.get('train_loss', float('nan')):.4f}, "
                               f"dev loss {last.get('dev_loss', float('nan')):.4f}"
                               + (f", {metric[4:]} {last[metric]:.3f}" if metric else ""))

            _jobs.live_job(job, draw, key="train_model", draw_every=2.0)  # one line: as often as the bar
