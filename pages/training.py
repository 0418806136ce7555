"""Across training: a run's probe sentences epoch by epoch (engine/probes.py, studio/explore/across.py)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from addrop.engine.probes import PROBE_DIR, read_probes
from addrop.engine.runs import list_runs
from addrop.errors import counted
from addrop.studio import plots
from addrop.studio.explore import across
from pages import _common as ui

st.title("Attribution across training")
ui.intro("A run that follows *probe* sentences records, before training (epoch 0) and after every epoch, each "
         "probe's prediction, the [CLS] row of every head's attention and GA attribution, and the whole maps of "
         "one layer (the first layer the run masks; layer 0 for plain runs). Move the epoch slider to see how "
         "fine-tuning, or AD-DROP, changed them. Runs started from the app follow 4 dev sentences; on the command "
         "line add `--probes 4`.")


@st.cache_data(ttl=10, show_spinner=False)
def runs_with_probes(root: str) -> dict:
    out = {}
    for rec in reversed(list_runs(root)):
        if (rec.path / PROBE_DIR / "meta.json").is_file():
            name = rec.id if rec.group is None else f"{rec.group}/{rec.id}"
            epochs = counted(rec.epochs_done, 'epoch')
            out[str(rec.path)] = f"{name} ({rec.strategy or '?'}, {epochs}, {rec.status})"
    return out


found = runs_with_probes(str(ui.runs_dir()))
if not found:
    st.info("No run with probes yet. Train one: the explorer's *Train a model for this data*, the prior "
            "experiment, AD-DROP vs vanilla, or `python -m addrop train --probes 4`.")
    st.stop()
paths = list(found)
c1, c2 = st.columns(2)
first = c1.selectbox("Run", paths, format_func=found.get, key="tr_run")
second = c2.selectbox("Beside it (optional: e.g. the vanilla run of a comparison)", [None] + paths,
                      format_func=lambda x: "(none)" if x is None else found[x], key="tr_other")
chosen = [first] + ([second] if second and second != first else [])
series = {p: read_probes(p) for p in chosen}
series = {p: s for p, s in series.items() if s is not None}
if not series:
    st.error("The probe files of this run are unreadable.")
    st.stop()
s0 = series[first]
n_epochs = min(len(s.epochs) for s in series.values())
P = s0["probs"].shape[1]
H = s0["full_att"].shape[2]
c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
e = c1.slider("Epoch (0 = before training)", 0, n_epochs - 1, n_epochs - 1, key="tr_epoch")
probe = c2.selectbox("Probe", range(P), key="tr_probe",
                     format_func=lambda i: f"#{s0.meta['indices'][i]} {s0.meta['texts'][i][:70]}")
head = c3.number_input("Head", 0, H - 1, 0, key="tr_head")
p = c4.slider("p", 0.05, 0.95, 0.3, 0.05, key="tr_p", help="the share of each row in the candidate region")

cols = st.columns(len(series))
for col, (path, s) in zip(cols, series.items()):
    with col:
        st.markdown(f"**{found[path]}**")
        v = across.epoch_view(s, e, probe, head, p)
        st.plotly_chart(plots.attention_attribution(
            v["tokens"], v["attention"], v["attribution"], region=v["region"],
            title=f"layer {v['layer']}, head {head}, epoch {v['epoch']}: attention | GA with the top-{p:g} region"),
            key=f"tr_map_{path}")
        st.plotly_chart(plots.probe_predictions(across.predictions(s, ())),
                        key=f"tr_pred_{path}")
        st.caption(f"Each line: one probe sentence's probability of its gold class (its score, for regression) "
                   f"after each epoch. {counted(P, 'sentence')} {'say' if P != 1 else 'says'} little about the dev "
                   "set as a whole: the run's dev metric is on the Runs page.")
        if len(s.epochs) > 1:
            k = max(e, 1) - 1
            st.plotly_chart(plots.head_heatmap(
                across.drift(s)[k], f"GA drift, epoch {s.epochs[k]} → {s.epochs[k + 1]}:<br>rank correlation of "
                                    "the [CLS] row (1 = unchanged, 0 = unrelated)", zmin=-1, zmax=1,
                colorscale="RdBu"),
                key=f"tr_drift_{path}")
            chance = float(np.nanmean(across.region_kept_chance(s, p)[k]))
            st.plotly_chart(plots.head_heatmap(
                across.region_kept(s, p)[k], f"Share of the [CLS] row's top-{p:g} region kept,<br>epoch "
                                             f"{s.epochs[k]} → {s.epochs[k + 1]} (a random region: {chance:.0%})"),
                key=f"tr_kept_{path}")
            st.markdown(across.drift_sentence(s, k, p))
