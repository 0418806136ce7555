"""Deletion curves (experiments/faithfulness.py): evidence over a data set instead of one sentence."""
from __future__ import annotations

import time

import streamlit as st

from addrop.errors import UserError
from addrop.experiments.faithfulness import FAITH_LABELS, FAITH_METHODS, MEASURES, DeletionSettings
from addrop.studio import plots
from pages import _common as ui

c = ui.ctx()
st.title("Deletion curves")
ui.intro("Does the attribution find the attention positions a prediction depends on? For N dev sentences, every "
         "attention row of the chosen layers loses its top-p share of keys by GA, IGA, AA (attention weights) or "
         "RD (random), or the bottom-p share by GA (*low*), and the model predicts again. The curves show the mean "
         "change of the predicted class's probability (and logit, and the share of predictions that flip), with "
         "bootstrap 95% intervals. The paper's claim behind AD-DROP (Section 2.2, Table 2) is that GA's top "
         "positions matter more than attention's or random ones; here you can check it on your model.")
loaded = c.need_model()
spec, _, dev = c.need_data()
if c.untrained:
    st.warning(f"{c.model_name} has an untrained head: its deletion curves describe a random classifier. Choose "
               "a trained model in the sidebar (minilm-demo for the demo data).")
ui.defaults(fa_n=64, fa_methods=["ga", "aa", "rd", "low"], fa_q=1.0, fa_layers="all", fa_seeds=3)
c1, c2, c3, c4 = st.columns([1, 3, 1, 1])
nums = ui.Numbers()  # ranges checked here and said (a browser-refused number would be ignored silently)
n = nums.field(c1, "Dev sentences (N)", 4, min(1000, len(dev)), key="fa_n")
methods = c2.pills("Methods", FAITH_METHODS, selection_mode="multi", format_func=FAITH_LABELS.get, key="fa_methods",
                   wrap=True, help="IGA costs about 20 passes per sentence: minutes for 64 sentences on a CPU.")
q = nums.field(c3, "q", 0.05, 1.0, step=0.05, key="fa_q", help="1: the whole region is dropped")
layers = c4.text_input("Layers", key="fa_layers",
                       help="all, or indices such as 0,1; negative ones count from the top (-1: the last layer)")
st.caption("p = 0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9; RD averaged over 3 seeds. With minilm, GA, AA, RD and low over "
           "64 sentences take under a minute of CPU time.")

key = (c.model_key, str(c.data_args), n, tuple(methods), q, layers)
numbers_ok = nums.report()
if st.button("Draw the deletion curves", type="primary", icon=":material/play_arrow:", key="fa_go",
             disabled=not numbers_ok):
    bar = None
    try:
        settings = DeletionSettings(n=int(n), methods=tuple(methods), q=float(q), layers=layers)
        from addrop.experiments.faithfulness import deletion_curves, layers_used

        layers_used(layers, loaded.num_layers)  # a layer out of range is said before any progress shows
        bar = st.progress(0.0, text="starting")
        t0 = time.perf_counter()
        res = deletion_curves(loaded, spec, dev, settings,
                              progress=lambda f, msg: bar.progress(f, text=f"{msg} · {time.perf_counter() - t0:.0f} s"))
        st.session_state["fa_result"] = (key, res)
    except UserError as e:
        st.error(str(e))
    finally:
        if bar is not None:
            bar.empty()  # done or failed: the bar would go on saying "batch k/k" (or "starting")
got = st.session_state.get("fa_result")
if got is not None:
    got_key, res = got
    if got_key != key:
        st.caption("These curves are for earlier settings; press the button to redraw them for the current ones.")
    from addrop.experiments.faithfulness import deletion_summary

    where = res.settings.get("layers_used") or f"layers {', '.join(map(str, res.settings['layers']))}"
    measure = st.radio("Measure", list(MEASURES), format_func=MEASURES.get, horizontal=True, key="fa_measure",
                       help="what the chart and the sentences below it are about")
    st.markdown(f"**{res.n} dev sentences, {where}, {res.seconds:.0f} s.** What the table shows for the "
                f"{MEASURES[measure]}:")
    for line in deletion_summary(res.table, measure):
        st.markdown(f"- {line}")
    st.plotly_chart(plots.deletion_figure(res.table, measure), key="fa_chart")
    cols = ["method", "p", *(c for m in MEASURES for c in ((m, f"{m}_lo", f"{m}_hi") if m == measure else (m,))),
            "dropped_share"]  # the interval of the measure the sentences and the chart are about
    st.dataframe(res.table[cols].round(4), hide_index=True, placeholder=ui.MISSING, width="stretch",
                 height="content")
    st.caption("dropped_share is the share of real positions dropped, and it differs by method at the same p: GA, "
               "IGA and low leave alone the rows whose scores are all equal (with GA, every top-layer row but "
               "[CLS]: those rows never reach the output), while AA and RD drop in them too, with no effect on "
               "the prediction. In every other row each method makes the same number of keys candidates, "
               "n − int(n(1 − p)) of n, all dropped when q = 1.")
    st.download_button("Download the table (CSV)", res.table.to_csv(index=False), "deletion.csv", "text/csv",
                       key="fa_csv")
