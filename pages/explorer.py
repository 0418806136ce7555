"""Attribution explorer: one example's attention and attribution maps, the AD-DROP mask and what it does."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from addrop.config import CAPTUM_METHODS, METHOD_LABELS, MODE_LABELS, AttributionConfig
from addrop.engine.tasks import is_blank
from addrop.errors import UserError
from addrop.studio import explore, plots
from pages import _common as ui
from pages import _start, _train

DEFAULT_TEXT = "The plot was predictable, but the acting was wonderful and I loved every minute."
EXAMPLE_INPUTS = ("Type your own", "Pick from the data set")
SS = "session"  # widget values survive page switches


@st.cache_resource(show_spinner="Computing attention and attribution…", max_entries=12)
def cached_explain(model_key: tuple, _loaded, text: str, pair: str | None, cfg_items: tuple, gold,
                   label_names: tuple):
    return explore.explain(_loaded, text, pair, AttributionConfig(**dict(cfg_items)), gold=gold,
                           label_names=label_names)


@st.cache_resource(show_spinner="Attributing with the other backend…", max_entries=4)
def cached_compare(model_key: tuple, text: str, pair: str | None, cfg_items: tuple, gold, _loaded, _expl):
    return explore.compare_backends(_loaded, _expl)


c = ui.ctx()
st.title("Attribution explorer")
ui.intro(
    "Type a sentence (or pick one from the data set) and see, for every layer and head, the **attention map** "
    "A (how much each query token reads each key token) beside the **attribution map** B: how much the logit of "
    "the attributed class c would change with each attention weight. AD-DROP sorts each row of B, takes the "
    "highest share p as the *candidate discard region* and drops each candidate with probability q; the "
    "dropped positions get −∞ before the softmax in the next forward pass.",
    r"B_h = \frac{\partial F_c(A)}{\partial A_h}\quad\text{(GA, Eq. 5)}\qquad "
    r"B_h = \frac{A_h}{m} \odot \sum_{k=1}^{m} \frac{\partial F_c(\tfrac{k}{m}A)}{\partial A_h}"
    r"\quad\text{(IGA, Eq. 3)}",
)
_train.train_model_panel(c)
loaded = c.need_model()
L, H = loaded.num_layers, loaded.num_heads
spec = c.spec
label_names = c.label_names if spec is not None else ()
regression = spec is not None and spec.is_regression

ui.defaults(ex_source=EXAMPLE_INPUTS[0], ex_text=DEFAULT_TEXT, ex_pair="", ex_method="ga", ex_backend="native",
            ex_target="predicted", ex_steps=20, ex_p=0.3, ex_q=0.3, ex_mode="high", ex_ties="paper", ex_seed=0,
            ex_layer=0, ex_head=0, ex_mask_layers=list(range(L)), ex_grid_value="attribution", ex_compare=True,
            ex_example=0)
# the model may have changed since these were set
if st.session_state.get("ex_layer") not in range(L):
    st.session_state["ex_layer"] = 0
if st.session_state.get("ex_head") not in range(H):
    st.session_state["ex_head"] = 0
ml = [l for l in st.session_state.get("ex_mask_layers") or [] if isinstance(l, int) and 0 <= l < L]
st.session_state["ex_mask_layers"] = ml if ml or st.session_state.get("ex_mask_layers") == [] else list(range(L))

top = st.columns([4, 1])
with top[1]:
    if st.button("Start-here example", icon=":material/auto_awesome:", key="ex_start",
                 help="Load a sentence whose prediction flips under the AD-DROP mask but not under a random "
                      "mask with the same number of drops per row (searched among a few data set examples)."):
        if _start.load_start_example(c):
            st.rerun()
# ------------------------------------------------------------------------------------------------ inputs
col_in, col_attr, col_mask = st.columns([5, 3, 3], gap="medium")
gold = None
with col_in:
    st.markdown("##### Input")
    sources = EXAMPLE_INPUTS if spec is not None and len(c.dev) else EXAMPLE_INPUTS[:1]
    if st.session_state.get("ex_source") not in sources:
        st.session_state["ex_source"] = EXAMPLE_INPUTS[0]
    source = st.radio("Example", sources, key="ex_source", horizontal=True, persist_state=SS,
                      help="Type any text, or take an example (with its gold label) from the dev split of the "
                           "data chosen in the sidebar.")
    if source == EXAMPLE_INPUTS[0]:
        text = st.text_area("Text", key="ex_text", height=90, persist_state=SS,
                            help="Longer texts are cut to the model's maximum length (you will be told).")
        pair = None
        pair_task = spec is not None and spec.has_pairs
        if pair_task or st.toggle("Add a second text (sentence pair)", key="ex_use_pair", persist_state=SS,
                                  help="Pair tasks (MRPC, RTE, …) read two texts joined with [SEP]; the chosen "
                                       "data here is single sentences, so this is for exploring only."):
            pair = st.text_area("Second text (pair)", key="ex_pair", height=70, persist_state=SS,
                                help="The second text; the tokenizer joins the two with [SEP].")
    else:
        n = min(len(c.dev), 500)
        if st.session_state.get("ex_example") not in range(n):
            st.session_state["ex_example"] = 0

        def fmt(i: int) -> str:
            lab = c.dev.labels[i]
            name = (f"{lab:.2f}" if regression else
                    (label_names[int(lab)] if int(lab) < len(label_names) else str(lab)))
            t = c.dev.texts[i]
            return f"#{i} [{name}] {t[:80]}{'…' if len(t) > 80 else ''}"

        i = st.selectbox("Dev example", range(n), format_func=fmt, key="ex_example", persist_state=SS,
                         help=f"The first {n} examples of the dev split, with their gold labels.")
        text = c.dev.texts[i]
        pair = c.dev.pairs[i] if c.dev.pairs is not None else None
        gold = c.dev.labels[i]
        st.caption(text + (f"  \n**pair:** {pair}" if pair else ""))

with col_attr:
    st.markdown("##### Attribution")
    method = st.selectbox("Method", list(METHOD_LABELS), format_func=METHOD_LABELS.get, key="ex_method",
                          persist_state=SS, help="GA: the gradient of the logit with respect to the attention (AD-DROP's "
                               "default). IGA: integrated gradients over m scaled copies of the attention (more "
                               "costly). AA: the attention weights themselves. RD: random scores, the random "
                               "baseline of the paper's ablation.")
    can_captum = method in CAPTUM_METHODS
    if not can_captum:
        st.session_state["ex_backend"] = "native"
    backend = st.radio("Backend", ["native", "captum"], key="ex_backend", horizontal=True, persist_state=SS,
                       disabled=not can_captum,
                       help="native: addrop's own implementation. captum: the same quantity through Captum "
                            "(GA and IGA only). Both should agree; see the cross-check below.")
    steps = 20
    if method == "iga":
        steps = st.slider("IGA steps m", 2, 50, key="ex_steps", persist_state=SS,
                          help="Riemann steps of the integral in Eq. 3 (the paper uses 20).")
    targets = ["predicted"] + (["gold"] if gold is not None and not regression else [])
    targets += [f"class:{k}" for k in range(len(label_names))] if not regression else []
    if st.session_state.get("ex_target") not in targets:
        st.session_state["ex_target"] = "predicted"

    def fmt_target(t: str) -> str:
        if t == "predicted":
            return "predicted (pseudo label)"
        if t == "gold":
            return f"gold label: {label_names[int(gold)]}"
        k = int(t.split(":")[1])
        return f"class {k}: {label_names[k]}"

    target = st.selectbox("Label to attribute (c)", targets, format_func=fmt_target, key="ex_target",
                          persist_state=SS, disabled=regression,
                          help="AD-DROP attributes the class the model predicts (the pseudo label, Eq. 4). The "
                               "gold label is what the prior experiment uses; any class can be chosen.")

with col_mask:
    st.markdown("##### Mask")
    p = st.slider("p: candidate region", 0.05, 0.95, step=0.05, key="ex_p", persist_state=SS,
                  help="Share of each row (of the real tokens) that forms the candidate discard region (Eq. 6).")
    q = st.slider("q: drop rate in the region", 0.05, 0.95, step=0.05, key="ex_q", persist_state=SS,
                  help="Each candidate is dropped with probability q (Eq. 7).")
    r1, r2 = st.columns([3, 2])
    mode = r1.selectbox("Region", list(MODE_LABELS), format_func=MODE_LABELS.get, key="ex_mode", persist_state=SS,
                        help="high (AD-DROP): the top p of each row by attribution. low: the bottom p. random: each "
                             "key with probability p. low and random are the prior experiment's contrasts.")
    ties = r2.selectbox("Ties", ["paper", "strict"], key="ex_ties", persist_state=SS,
                        help="paper: Eq. 6 as written (scores ≥ the threshold are candidates), so a row whose "
                             "scores are all equal, e.g. all zero, is a candidate as a whole. With GA that happens in "
                             "the last layer, where only the [CLS] row reaches the output. strict: such rows are "
                             "left alone.")
    s1, s2 = st.columns([1, 1], vertical_alignment="bottom")
    seed = s1.number_input("Seed", 0, 1_000_000, step=1, key="ex_seed", persist_state=SS,
                           help="Seeds the draw of the mask (and of RD scores); the same seed gives the same mask.")

    def _resample():
        st.session_state["ex_seed"] = int(st.session_state.get("ex_seed", 0)) + 1

    s2.button("Resample", on_click=_resample, icon=":material/casino:", key="ex_resample",
              help="Draw a new mask: the seed goes up by one.")
    mask_layers = st.multiselect("Layers masked", list(range(L)), key="ex_mask_layers", persist_state=SS,
                                 format_func=lambda l: f"layer {l}",
                                 help="AD-DROP masks every layer; choose fewer to see one layer's effect.")

# ---------------------------------------------------------------------------------------------- compute
if source == EXAMPLE_INPUTS[0] and is_blank(text or ""):  # invisible characters only count as empty too
    st.error("The text is empty: type a sentence (or pick an example from the data set).")
    st.stop()
if not mask_layers:
    st.error("Choose at least one layer to mask.")
    st.stop()
try:
    cfg = AttributionConfig(method=method, backend=backend if can_captum else "native", steps=int(steps),
                            target="pseudo" if target == "predicted" else ("gold" if target == "gold" else "label"),
                            label=int(target.split(":")[1]) if target.startswith("class:") else None,
                            p=float(p), q=float(q), mode=mode, ties=ties, seed=int(seed))
    # the attribution's cache key: the mask settings (p, q, mode, ties) do not change the scores
    mask_only = ("layers", "p", "q", "mode", "ties", "fixed_rate") + (() if method == "rd" else ("seed",))
    cfg_items = tuple(sorted((k, v) for k, v in cfg.to_dict().items() if k not in mask_only))
    expl = cached_explain(c.model_key, loaded, text, pair or None, cfg_items, gold, tuple(label_names))
    view = explore.analyse(loaded, expl, p, q, mode, ties=ties, seed=int(seed), layers=mask_layers)
    mask, rand, effect, summary = view.mask, view.random_dropped, view.effect, view.summary
except UserError as e:
    st.error(str(e))
    st.stop()


# ---------------------------------------------------------------------------------------------- results
if st.session_state.get("ex_note") and source == EXAMPLE_INPUTS[0] and text == st.session_state.get("ex_note_for"):
    st.info(st.session_state["ex_note"], icon=":material/auto_awesome:")
if expl.truncated:
    st.warning(f"The text is longer than this model's maximum of {loaded.max_length} tokens: it was cut to the "
               f"first {loaded.max_length} tokens.")

before, after_ad, after_rd = (effect.row(k) for k in explore.CONDITIONS)
n_real = int(expl.key_mask.sum())
m1, m2, m3, m4 = st.columns(4)
if regression:
    m1.metric("Predicted score", f"{before['score']:.3f}", help="The regression output without any mask.")
    m2.metric("Attributed", "the score itself" if expl.gold is None else "− squared error",
              help="For regression, F is the negative squared error against the gold score, or the output itself.")
else:
    m1.metric("Prediction", before["prediction"], help="The class the model predicts without any mask, with "
              "its probability.", delta=f"p = {before['confidence']:.3f}", delta_color="off")
    m2.metric("Attributed class c", expl.class_name(int(expl.target)),
              help="The class whose logit F_c is differentiated.")
m3.metric("Tokens", n_real, help="Real tokens (with [CLS] and [SEP]); the maps are n × n.")
st.caption(f"Attributed in {expl.attribution.seconds * 1000:.0f} ms on the **{expl.attribution.path}** path "
           f"({expl.attribution.backend} backend). The path is how a batch is run (padded, packed, by length, per "
           "example); every path gives the same numbers up to rounding.")
total_real = n_real * n_real * H * len(mask.masked_layers)
m4.metric("Positions dropped", f"{after_ad['drops']:,}",
          delta=f"{after_ad['drops'] / max(total_real, 1):.1%} of the masked layers", delta_color="off",
          help="Dropped (query, key) positions summed over the masked layers and all heads.")

st.subheader("One head")
h1, h2, h3 = st.columns([1, 1, 3], vertical_alignment="bottom")
layer = h1.selectbox("Layer", list(range(L)), key="ex_layer", persist_state=SS, format_func=lambda l: f"layer {l}",
                     help="Which layer's head to show (also framed in the grid below).")
head = h2.selectbox("Head", list(range(H)), key="ex_head", persist_state=SS, format_func=lambda h: f"head {h}",
                    help="Which head of that layer to show.")
row = summary[(summary["layer"] == layer) & (summary["head"] == head)].iloc[0]
rho = row["spearman"]
rho_text = "n/a" if rho != rho else f"{rho:+.2f}"
h3.caption(f"Spearman ρ between attention and attribution over the real positions: "
           f"**{rho_text}** · dropped in this head: **{row['dropped_share']:.1%}** of the "
           f"positions · candidate region: **{row['region_share']:.1%}**"
           + ("" if layer in mask.masked_layers else " · (this layer is not masked)"))
fig_head = plots.attention_attribution(
    expl.tokens, expl.attention[layer, head], expl.scores[layer, head], mask.region[layer, head],
    mask.dropped[layer, head], key_mask=expl.key_mask[0],
    title=f"layer {layer}, head {head} · {METHOD_LABELS[method].split(':')[0]} ({backend}) · c = "
          f"{'score' if regression else expl.class_name(int(expl.target))}")
st.plotly_chart(fig_head, key="ex_fig_head")
st.caption("Rows are query tokens, columns key tokens. On the attribution map the black outline is the "
           f"candidate discard region ({mode} p = {p:.2f} of each row) and the orange × are "
           f"the positions dropped with probability q = {q:.2f} (seed {seed}). Hover a cell on either map to read "
           "both values.")

st.subheader("Every layer and head")
g1, g2 = st.columns([2, 3], vertical_alignment="center")
value = g1.segmented_control("Tiles show", ["attribution", "attention", "mask"], key="ex_grid_value",
                             persist_state=SS, help="attribution and attention are scaled per tile (each head's "
                             "largest value is full colour); mask shows kept, candidate and dropped positions.")
value = value or "attribution"
g2.caption("Above each tile: ρ, the Spearman rank correlation of attention and attribution over the real "
           "positions (low or negative: the head's attention is not what drives the prediction), and the share "
           "of its positions dropped. The framed tile is the head shown above.")
if value == "mask":
    maps = mask.region.float().cpu().numpy() + mask.dropped.float().cpu().numpy()
else:
    maps = expl.scores if value == "attribution" else expl.attention
fig_grid = plots.head_grid(maps, key_mask=expl.key_mask[0], summary=summary, layers=expl.layers,
                           selected=(layer, head), tokens=expl.tokens, value=value)
st.plotly_chart(fig_grid, key="ex_fig_grid")

st.subheader("What the mask does")
e1, e2 = st.columns([3, 2], gap="large")
with e1:
    frame = effect.frame()
    show = ["condition", "drops", "prediction"] + ([] if regression else ["confidence", "attributed_logit"]) + ["loss"]
    st.dataframe(frame[show], hide_index=True, column_config={
        "drops": st.column_config.NumberColumn("positions dropped", help="Summed over masked layers and heads."),
        "confidence": st.column_config.NumberColumn("p(prediction)", format="%.4f"),
        "attributed_logit": st.column_config.NumberColumn("logit F_c", format="%.4f",
                                                          help="The logit of the attributed class c."),
        "loss": st.column_config.NumberColumn("loss", format="%.4f", help=f"Against {effect.reference}."),
    })
    if regression:
        st.markdown(f"The AD-DROP mask moves the predicted score from {before['score']:.3f} to "
                    f"{after_ad['score']:.3f}; the random mask with the same number of drops in every row moves it "
                    f"to {after_rd['score']:.3f}.")
    else:
        d_ad = after_ad["attributed_logit"] - before["attributed_logit"]
        d_rd = after_rd["attributed_logit"] - before["attributed_logit"]
        flip = lambda r: "**flips** the prediction to " + r["prediction"] if r["prediction"] != before["prediction"] \
            else "keeps the prediction"
        st.markdown(f"The AD-DROP mask changes the logit of c by **{d_ad:+.4f}** and {flip(after_ad)}; a random "
                    f"mask that drops exactly as many positions in every row changes it by **{d_rd:+.4f}** and "
                    f"{flip(after_rd)}. Dropping the positions the prediction relies on most hurts it more than "
                    f"dropping as many at random: that is what makes AD-DROP a stronger regularizer than random "
                    f"dropout. The loss is measured against {effect.reference}.")
with e2:
    st.plotly_chart(plots.mask_effect(frame), key="ex_fig_effect")

st.subheader("Native vs Captum")
if method not in CAPTUM_METHODS:
    st.caption("Captum computes GA and IGA only; choose one of them to cross-check the two backends.")
else:
    on = st.toggle("Cross-check with the other backend", key="ex_compare", persist_state=SS,
                   help="Attribute the same example with the other backend too and compare the scores.")
    if on:
        try:
            cmp = cached_compare(c.model_key, text, pair or None, cfg_items, gold, loaded, expl)
        except UserError as e:
            st.error(str(e))
            cmp = None
        if cmp is not None:
            k1, k2, k3, k4 = st.columns(4)
            k1.metric("Largest relative difference", f"{cmp.max_rel_diff:.2e}",
                      help="max |captum − native| / max |native| over every layer, head and real position.")
            k2.metric("Largest absolute difference", f"{cmp.max_abs_diff:.2e}")
            k3.metric("Native time", f"{cmp.native_seconds * 1000:.0f} ms", help="All layers, this example.")
            k4.metric("Captum time", f"{cmp.captum_seconds * 1000:.0f} ms", help="All layers, this example.")
            li = expl.layers.index(layer)
            if cmp.max_abs_diff == 0:
                st.success("The two backends give exactly the same scores for this example: the difference map "
                           "is zero everywhere.")
            else:
                st.plotly_chart(plots.backend_diff(
                    expl.tokens, cmp.native.scores[li, 0, head], cmp.captum.scores[li, 0, head],
                    key_mask=expl.key_mask[0], title=f"captum − native, layer {layer}, head {head}"),
                    key="ex_fig_diff")
                st.caption("Differences at the level of float rounding (relative ~1e-6) mean the backends agree.")

if cfg.method != "rd" and st.toggle("Eval- vs train-mode attribution pass", key="ex_passes", help="Jaccard overlap "
                                    "of the candidate regions of our eval-mode pass and of train-mode passes "
                                    "(dropout on, as the reference code), and of two train-mode passes."):
    o = explore.pass_overlap(loaded.model, expl.batch, replace(cfg, backend="native", layers=None), draws=2)
    st.caption(f"Region overlap (Jaccard): eval vs train {o.eval_vs_train:.2f}, train vs train {o.train_vs_train:.2f}.")

st.subheader("Export")
settings = dict(model=c.model_name, device=c.device, text=text, pair=pair or None, gold=gold,
                attribution=cfg, mask_layers=list(mask_layers), layer=layer, head=head,
                tokens=expl.tokens, truncated=expl.truncated)
x1, x2, x3, x4 = st.columns(4)
x1.download_button("Figure (HTML)", data=lambda: fig_head.to_html(include_plotlyjs=True), file_name=
                   f"addrop-layer{layer}-head{head}.html", mime="text/html", icon=":material/download:",
                   key="ex_dl_html", help="The head figure above as a standalone, interactive HTML page.")
x2.download_button("Tensors (NPZ)", data=lambda: explore.to_npz_bytes(expl, mask, rand), file_name="addrop-maps.npz",
                   mime="application/octet-stream", icon=":material/download:", key="ex_dl_npz",
                   help="numpy.load it: tokens, attention and attribution [L, H, T, T], region, dropped, "
                        "random_dropped, key_mask, logits.")
x3.download_button("Tensors (CSV)", data=lambda: explore.to_csv_text(expl, mask), file_name="addrop-maps.csv",
                   mime="text/csv", icon=":material/download:", key="ex_dl_csv",
                   help="One row per layer, head, query and key over the real tokens.")
x4.download_button("Settings (JSON)", data=lambda: explore.settings_json(**settings), file_name="addrop-settings.json",
                   mime="application/json", icon=":material/download:", key="ex_dl_json",
                   help="Everything needed to recompute this view.")
