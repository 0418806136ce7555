"""Runs: every run record under the runs folder; reopen a group's curves or one run's metrics and settings."""
from __future__ import annotations

import json

import streamlit as st

from addrop.experiments import groups, plans
from addrop.studio import plots
from addrop.engine.runs import (delete_run, disk_size, is_plain_file, list_runs, metrics_frame, read_regular,
                               runs_table)
from addrop.errors import UserError, counted
from pages import _common as ui

SS = "session"
UNGROUPED = "(runs outside a group)"

st.title("Runs")
root = ui.runs_dir()
ui.intro(f"Every run the app (or `python -m addrop train` / `prior` with `--out {root}`) wrote under `{root}` (set "
         "`ADDROP_RUNS_DIR` to use another folder). A run is a folder with `config.json`, `metrics.jsonl` (one line "
         "per epoch) and `status.json`; the prior experiment and the comparison keep their runs together in a group "
         "folder with `curves.html`. Runs stay here after a restart. The curves show the mean cross-entropy loss on "
         "the training set (with the run's masks) and on the dev set (no masks):",
         r"\mathcal{L} = -\frac{1}{N}\sum_{i=1}^{N} \log P_F(y_i \mid x_i)")

said = st.session_state.pop("rn_del_said", None)  # what the last Delete did, said once
if said:
    (st.success if said[0] == "success" else st.error)(said[1])
records = list_runs(root)
if not records:
    st.info("No runs yet. Start one on the Prior experiment, AD-DROP vs vanilla or Sweeps page, or train a model "
            "from the explorer.")
    st.stop()

table = runs_table(records)
table["size (MB)"] = [disk_size(r.path) / 1e6 for r in records]
table["weights"] = [r.has_weights for r in records]
st.caption(f"{counted(len(records), 'run')}, {table['size (MB)'].sum():,.1f} MB on disk (a minilm checkpoint is "
           "about 90 MB; delete runs below).")
st.dataframe(table, hide_index=True, placeholder=ui.MISSING,
             column_config={"size (MB)": st.column_config.NumberColumn(format="%.1f")} | {
    c: st.column_config.NumberColumn(format="%.4f") for c in table.columns
    if c.endswith("loss") or c.startswith("dev_")})

group_names = [g["name"] for g in groups.list_groups(root)]  # newest first
options = group_names + ([UNGROUPED] if any(not r.group for r in records) else [])
if st.session_state.get("rn_group") not in options:
    st.session_state["rn_group"] = options[0]
a, b = st.columns(2)
group = a.selectbox("Group", options, key="rn_group", persist_state=SS,
                    help="A prior experiment or a comparison (newest first), or the runs outside any group.")
in_group = [r for r in records if (r.group or UNGROUPED).split("/")[0] == group] if group != UNGROUPED else \
    [r for r in records if not r.group]
ids = [r.id for r in in_group]
if st.session_state.get("rn_run") not in ids:
    st.session_state["rn_run"] = ids[0]
run_id = b.selectbox("Run", ids, key="rn_run", persist_state=SS, help="One run of the group: its settings and "
                     "its epoch records.")

frame = metrics_frame(in_group)
if not frame.empty:
    kind = groups.kind_of({r.strategy for r in in_group}) if group != UNGROUPED else None
    if kind == plans.COMPARE:
        fig = plots.seed_curves(frame, label="strategy", panels=plans.compare_panels(frame), title=group)
    else:
        fig = plots.loss_curves(frame, label="run" if kind is None else "strategy", title=group)
    st.plotly_chart(fig, key="rn_fig")
    tasks = sorted({str(r.config.get("task") or "?") for r in in_group})
    if len(tasks) > 1:  # the runs outside a group: whatever was trained, on whatever data
        st.caption(f"These runs were trained on different data ({', '.join(tasks)}): a loss on one data set says "
                   "nothing against a loss on another. Compare runs of one task.")
else:
    st.caption("No epoch has finished in this group.")

rec = next(r for r in in_group if r.id == run_id)
st.subheader(f"Run: {rec.id}")
st.markdown(f"Status **{rec.status}**" + (f": {rec.reason}" if rec.reason else "") +
            f" · {counted(rec.epochs_done, 'epoch')} · started {rec.started or '?'}"
            f" · `{rec.path}`")
one = metrics_frame([rec])
if one.empty:
    st.caption("No epoch records.")
else:  # the whole width: beside the settings it cut its last columns off
    shown = one.drop(columns=[c for c in ("run", "group") if c in one])
    st.dataframe(shown, hide_index=True, placeholder=ui.MISSING, column_config=ui.epoch_formats(shown.columns) | (
        {"addrop_epoch": st.column_config.CheckboxColumn("AD-DROP epoch", help="An epoch trained with the masks "
                                                         "(with cross-tuning: 2, 4, ...).")}
        if "addrop_epoch" in shown else {}))
with st.expander("Settings (config.json)"):
    st.json(rec.config, expanded=1)
d1, d2, d3 = st.columns(3)
d1.download_button("Metrics (CSV)", data=lambda: metrics_frame([rec]).to_csv(index=False),
                   file_name=f"{rec.id}-metrics.csv", mime="text/csv", icon=":material/download:", key="rn_dl_csv",
                   help="One row per epoch.")
d2.download_button("Settings (JSON)", data=lambda: json.dumps(rec.config, indent=2), file_name=f"{rec.id}-config.json",
                   mime="application/json", icon=":material/download:", key="rn_dl_json",
                   help="The run's config.json.")
curves = (root / group / "curves.html") if group != UNGROUPED else None
if curves is not None and is_plain_file(curves):  # never a link: nothing outside the runs folder is offered
    d3.download_button("Group curves (HTML)", data=lambda: read_regular(curves), file_name=f"{group}-curves.html",
                       mime="text/html", icon=":material/download:", key="rn_dl_curves",
                       help="The group's curves.html (loads plotly from the internet).")

with st.expander("Delete", icon=":material/delete:"):
    what = st.radio("What", ["this run", "the whole group"] if group != UNGROUPED else ["this run"], key="rn_del_what",
                    horizontal=True)
    target = rec.path if what == "this run" else root / group
    st.caption(f"`{target}`: {disk_size(target) / 1e6:,.1f} MB. Deleting cannot be undone.")
    sure = st.checkbox("Yes, delete it", key="rn_del_sure")

    def _delete(target=target, what=what):
        # a callback: it runs before the page redraws, so the tick can be cleared and the result said once
        try:
            delete_run(root, target)
        except UserError as e:
            st.session_state["rn_del_said"] = ("error", str(e))
        else:
            ui.checkpoints.clear()
            st.session_state["rn_del_said"] = ("success", f"Deleted {what}: `{target}`.")
        st.session_state["rn_del_sure"] = False

    st.button("Delete", key="rn_del", disabled=not sure, type="primary", on_click=_delete)
