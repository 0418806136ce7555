"""The replication study (docs/replication.md): its report, computed from the run records of a study folder, so a
visitor sees the answer without rerunning six hours of training."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from addrop.errors import UserError
from addrop.experiments.replication.notes import cross_tuning_notes
from addrop.experiments.replication.report import answer, markdown, study_report
from addrop.experiments.replication.runner import study_exists
from addrop.studio.plots import report_figures
from pages import _common as ui

SHIPPED = "docs/replication-runs"

st.title("Replication study")
ui.intro(
    "Does AD-DROP help minilm at a scale a 2-core CPU can run? The protocol is fixed in `docs/replication.md` "
    "before any result: p and q chosen on training examples held out (never on dev), then five paired seeds of "
    "vanilla and AD-DROP (GA) per setting, ablations on SST-2 64-shot. Everything below is computed from the "
    "study's run records: the dev metric at the best and at the last epoch, the paired difference per seed with "
    "its interval, and the less optimistic half-dev figure (the epoch chosen on one half of dev, scored on the "
    "other).")
own = ui.runs_dir() / "replication"
shipped = Path(__file__).resolve().parents[1] / SHIPPED  # this project's study, committed as it ran
default = str(own if study_exists(own) or not study_exists(shipped) else shipped)
folder = st.text_input("Study folder", value=default, key="rp_folder",
                       help=f"The --out folder of `python -m addrop replicate PLAN --out DIR`. This project's own "
                            f"study, as far as it has run, is in `{SHIPPED}`; yours goes to `{own}`.")
if Path(folder).resolve() == shipped.resolve():
    st.caption(f"This project's study (`{SHIPPED}`, committed as its runs finished). Your own goes to `{own}` "
               "with the command below, and opens here instead once it exists.")
if not study_exists(folder):
    st.info(f"No replication study in `{folder}` yet: run `python -m addrop replicate docs/replication-plan.json "
            f"--out {folder} --data-dir ../shared/data/glue` (about 5.4 hours at most, in as many sittings as you "
            "like; finished runs are skipped).", icon=":material/info:")
    st.stop()
try:
    rep = study_report(folder)
except UserError as e:
    st.error(str(e))
    st.stop()
if not rep["arms"]:
    st.warning("No main or ablation run has finished yet: there is no result to show.", icon=":material/hourglass:")
said = answer(rep)
if said:
    complete = all(g["finished"] == g["runs"] for g in rep["status"])
    st.info(f"**{'The answer' if complete else 'The answer so far'}.** {said}", icon=":material/fact_check:")
for name, fig in report_figures(rep):
    st.plotly_chart(fig, key=f"rp_fig_{name}")
    if name == "cross-tuning":  # what the grid shows, and what one seed per cell cannot
        for note in cross_tuning_notes(rep):
            st.caption(note)
st.markdown(markdown(rep, page=True).split("\n", 1)[1])  # the tables, without the title and the notes above
