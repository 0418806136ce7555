"""Attribution explorer: one example's attention and attribution maps, the AD-DROP mask and what it does."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from addrop.config import CAPTUM_METHODS, METHOD_LABELS, MODE_LABELS, AttributionConfig
from addrop.engine.tasks import is_blank
from addrop.errors import UserError
from addrop.studio import explore
from pages import _common as ui
from pages import _explorer_view as view_ui
from pages import _start, _train

DEFAULT_TEXT = "The plot was predictable, but the acting was wonderful and I loved every minute."
EXAMPLE_INPUTS = ("Type your own", "Pick from the data set")
SS = view_ui.SS  # widget values survive page switches

c = ui.ctx()
t1, t2 = st.columns([5, 2], vertical_alignment="bottom")
t1.title("Attribution explorer")
start = t2.button("Start-here example", icon=":material/auto_awesome:", key="ex_start",
                  help="Load a sentence whose prediction flips under the AD-DROP mask but not under a random mask "
                       "with the same number of drops per row (searched among a few data set examples).")
st.html("<style>[data-testid='stMainBlockContainer'], .block-container { padding-top: 2rem; "
        "padding-left: 2rem; padding-right: 2rem; } [data-testid='stMainBlockContainer'] h1 { font-size: 2.1rem; "
        "padding: 0.5rem 0 0 0; }</style>")  # the first screen at 1280 x 720 holds the input, prediction and maps
if c.data_error:  # said here too: the page still explains the text below, without the data's class names
    st.warning(f"The sidebar's data did not load ({c.data_error}); this page explains the text below with the "
               "model's own class names until it does.")
# side by side while both are closed; the training panel open (untrained head, a job running) is tall, so then the
# two go one above the other at full width instead of leaving a blank column beside it
e1, e2 = (st.container(), st.container()) if _train.panel_open(c) else st.columns(2)
with e1.expander("What this page shows, and the methods (GA, IGA, AA, RD)"):
    st.markdown(
        "For every layer and head, the **attention map** A (how much each query token reads each key token) beside the "
        "**attribution map** B (how much the logit of the attributed class c would change with each attention weight). "
        "AD-DROP takes the highest share p of each row of B as the *candidate discard region* and drops each candidate "
        "with probability q (−∞ before the softmax in the next forward pass).")
    st.latex(r"B_h = \frac{\partial F_c(A)}{\partial A_h}\quad\text{(GA, Eq. 5)}\qquad "
             r"B_h = \frac{A_h}{m} \odot \sum_{k=1}^{m} \frac{\partial F_c(\tfrac{k}{m}A)}{\partial A_h}"
             r"\quad\text{(IGA, Eq. 3)}")
    st.markdown(
        "**AA** takes the attention weights themselves as B (B_h = A_h): no gradient, so it is the cheapest, and it "
        "ignores which class is attributed. **RD** draws B at random: its candidate region is a coin per key with "
        "probability p, as in the reference code, so the scores play no part in it (a control: what any mask of that "
        "size does). The *Region* setting picks the highest share p of each row (AD-DROP), the lowest (the prior "
        "experiment's drop-low) or a random one.")
with e2:
    _train.train_model_panel(c)
loaded = c.need_model()
L, H = loaded.num_layers, loaded.num_heads
spec = c.spec
label_names = c.label_names if spec is not None else ()
regression = spec is not None and spec.is_regression

ui.defaults(ex_source=EXAMPLE_INPUTS[0], ex_text=DEFAULT_TEXT, ex_pair="", ex_method="ga", ex_backend="native",
            ex_target="predicted", ex_steps=20, ex_p=0.3, ex_q=0.3, ex_mode="high", ex_ties="paper", ex_seed=0,
            ex_layer=0, ex_head=0, ex_mask_layers=list(range(L)), ex_grid_value="attribution",
            ex_example=0)
# the model may have changed since these were set
if st.session_state.get("ex_layer") not in range(L):
    st.session_state["ex_layer"] = 0
if st.session_state.get("ex_head") not in range(H):
    st.session_state["ex_head"] = 0
ml = [l for l in st.session_state.get("ex_mask_layers") or [] if isinstance(l, int) and 0 <= l < L]
st.session_state["ex_mask_layers"] = ml if ml or st.session_state.get("ex_mask_layers") == [] else list(range(L))

if start and _start.load_start_example(c):
    st.rerun()
# ------------------------------------------------------------------------------------------------ inputs
def inputs():
    """The example and the attribution settings (left column)."""
    gold = None
    with st.container():
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
                if pair_task and not (pair or "").strip():
                    st.caption(f"{spec.name} pairs two sentences; with the second one empty the model reads the "
                               "first alone, unlike anything it was trained on.")
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

    with st.container():
        st.markdown("##### Attribution")
        method = st.selectbox("Method", list(METHOD_LABELS), format_func=METHOD_LABELS.get, key="ex_method",
                              **ui.KEPT, help="GA: the gradient of the logit with respect to the attention (AD-DROP's "
                                   "default). IGA: integrated gradients over m scaled copies of the attention (more "
                                   "costly). AA: the attention weights themselves. RD: random scores, the random "
                                   "baseline of the paper's ablation.")
        can_captum = method in CAPTUM_METHODS
        if not can_captum:
            st.session_state["ex_backend"] = "native"
        backend = st.radio("Backend", ["native", "captum"], key="ex_backend", horizontal=True, **ui.KEPT,
                           disabled=not can_captum,
                           help="native: addrop's own implementation. captum: the same quantity through Captum "
                                "(GA and IGA only). Both should agree; see the cross-check below.")
        steps = 20
        if method == "iga":
            steps = st.slider("IGA steps m", 2, 50, key="ex_steps", **ui.KEPT,
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

    if source == EXAMPLE_INPUTS[0] and is_blank(text or ""):  # invisible characters only count as empty too
        st.error("The text is empty: type a sentence (or pick an example from the data set).")
        return None
    return source, text, pair or None, gold, method, backend if can_captum else "native", int(steps), target


def mask_controls(method: str = "ga"):
    """p, q, region, ties, seed and the masked layers (left column, under the inputs)."""
    st.markdown("##### Mask")
    k = [*st.columns(2), *st.columns([3, 2]), *st.columns([1, 1], vertical_alignment="bottom")]
    k.append(st.container())
    p = k[0].slider("p: candidate region", 0.05, 0.95, step=0.05, key="ex_p", **ui.KEPT,
                    help="Share of each row (of the real tokens) that forms the candidate discard region (Eq. 6).")
    q = k[1].slider("q: drop rate", 0.05, 0.95, step=0.05, key="ex_q", **ui.KEPT,
                    help="Each candidate is dropped with probability q (Eq. 7).")
    mode = k[2].selectbox("Region", list(MODE_LABELS), format_func=MODE_LABELS.get, key="ex_mode", **ui.KEPT,
                          help="high (AD-DROP): the top p of each row by attribution. low: the bottom p. random: each "
                               "key with probability p. low and random are the prior experiment's contrasts.")
    random = mode == "random" or method == "rd"  # RD draws a random region (core.algorithm.region_mode)
    ties = k[3].selectbox("Ties", ["paper", "strict"], key="ex_ties", **ui.KEPT, disabled=random,
                          help="paper: Eq. 6 as written (scores ≥ the threshold are candidates), so a row whose "
                               "scores are all equal, e.g. all zero, is a candidate as a whole. With GA that happens "
                               "in the last layer, where only the [CLS] row reaches the output. strict: such rows "
                               "are left alone." + (" A random region (RD, or Region random) reads no scores, so "
                                                    "it has no ties: off." if random else ""))
    nums = ui.Numbers()  # a typed seed out of range is said, not ignored while the field still shows it
    seed = nums.field(k[4], "Seed", 0, 1_000_000, key="ex_seed", **ui.KEPT,
                      help="Seeds the draw of the mask (and of RD scores); the same seed gives the same mask.")

    def _resample():
        now = st.session_state.get("ex_seed")
        st.session_state["ex_seed"] = (int(now) + 1) % 1_000_001 if isinstance(now, (int, float)) and now >= 0 else 0

    k[5].button("Resample", on_click=_resample, icon=":material/casino:", key="ex_resample",
                help="Draw a new mask: the seed goes up by one.")
    layers = k[6].multiselect("Layers masked", list(range(L)), key="ex_mask_layers", **ui.KEPT,
                              format_func=lambda l: f"L{l}", placeholder="none",
                              help="AD-DROP masks every layer; choose fewer to see one layer's effect.")
    if not nums.report():
        seed = None
    return float(p), float(q), mode, ties, None if seed is None else int(seed), layers


@st.fragment
def results():
    """The controls (left), the prediction and one head's maps (right), the rest below: a change of any control
    reruns only this (the sidebar and the page's head stay); the head shown is a fragment of its own."""
    left, right = st.columns([2, 3], gap="medium")
    with left:
        got = inputs()
        if got is None:
            return
        source, text, pair, gold, method, backend, steps, target = got
        note = st.empty()  # conditional elements sit in placeholders: every later element keeps its place (below)
        if st.session_state.get("ex_note") and source == EXAMPLE_INPUTS[0] and text == st.session_state.get("ex_note_for"):
            note.info(st.session_state["ex_note"], icon=":material/auto_awesome:")
        p, q, mode, ties, seed, mask_layers = mask_controls(method)
    if not mask_layers:
        right.error("Choose at least one layer to mask.")
        return
    if seed is None:  # out of range: said under the field
        return
    try:
        cfg = AttributionConfig(method=method, backend=backend, steps=int(steps),
                                target="pseudo" if target == "predicted" else ("gold" if target == "gold" else "label"),
                                label=int(target.split(":")[1]) if target.startswith("class:") else None,
                                p=p, q=q, mode=mode, ties=ties, seed=seed)
        # the attribution's cache key: the mask settings (p, q, mode, ties) do not change the scores
        mask_only = ("layers", "p", "q", "mode", "ties", "fixed_rate") + (() if method == "rd" else ("seed",))
        cfg_items = tuple(sorted((k, v) for k, v in cfg.to_dict().items() if k not in mask_only))
        # the label names too: the analysis names the prediction with them (another data set, same model and text)
        expl_key = (c.model_key, text, pair or None, cfg_items, gold, tuple(label_names))
        with right:  # the spinner at the top of the results it will replace
            expl = view_ui.explain_with_progress(expl_key[0], loaded, *expl_key[1:])  # the key: what it comes from
        mask_key = (p, q, mode, ties, seed, tuple(mask_layers))
        view = view_ui.cached_analyse(expl_key, mask_key, loaded, expl)
    except UserError as e:
        right.error(str(e))
        return
    with right:
        top_of_results(source, text, expl, view, method, backend, expl_key, mask_key)
    rest_of_results(text, pair, gold, expl, view, cfg, expl_key, mask_key, mask_layers)


def top_of_results(source, text, expl, view, method, backend, expl_key, mask_key):
    warning = st.empty()
    if expl.truncated:
        warning.warning(f"The text is longer than this model's maximum of {loaded.max_length} tokens: it was cut "
                        f"to the first {loaded.max_length} tokens.")
    view_ui.prediction(expl, view, regression)
    one_head(expl_key, mask_key, expl, view, method, backend)


def rest_of_results(text, pair, gold, expl, view, cfg, expl_key, mask_key, mask_layers):
    """Every element whose presence depends on the settings is held in a placeholder or container of its own, so
    that the elements after it keep their place in the page: Streamlit knows an element by its place, and one that
    moves (e.g. after the idle-row note, there with GA but not with AA) is drawn anew, the grid's 0.5 MB included,
    instead of updated."""
    with st.empty():
        view_ui.idle_note(view)
    took = expl.attribution.seconds
    st.caption(f"Attributed in {f'{took:.1f} s' if took >= 1 else f'{took * 1000:.0f} ms'} (warm) on the "
               f"**{expl.attribution.path}** "
               f"path ({expl.attribution.backend} backend); later changes of p, q, the seed or the head reuse it. "
               "The path is how a batch is run (padded, packed, by length, per example); every path gives the same "
               "numbers up to rounding.")
    every_head(expl_key, mask_key, expl, view)
    st.subheader("What the mask does")
    view_ui.what_the_mask_does(view, regression, expl.cfg.method, c.untrained)
    st.subheader("Native vs Captum")
    with st.container():
        view_ui.cross_check(expl_key, loaded, expl, int(st.session_state.get("ex_layer", 0)),
                            int(st.session_state.get("ex_head", 0)))
    with st.container():
        passes(cfg, expl)
    exports(expl, view, cfg, text, pair, gold, mask_layers)


def passes(cfg, expl) -> None:
    if cfg.method != "rd" and st.toggle("Eval- vs train-mode attribution pass", key="ex_passes", help="Jaccard "
                                        "overlap of the candidate regions of our eval-mode pass and of train-mode "
                                        "passes (dropout on, as the reference code), and of two train-mode passes."):
        o = explore.pass_overlap(loaded.model, expl.batch, replace(cfg, backend="native", layers=None), draws=2)
        st.caption(o.sentence())


@st.fragment
def one_head(expl_key, mask_key, expl, view, method: str, backend: str):
    """One head's two maps; choosing another layer or head reruns only this."""
    mask, summary = view.mask, view.summary
    h1, h2 = st.columns(2)
    layer = h1.selectbox("Layer", list(range(L)), key="ex_layer", **ui.KEPT, format_func=lambda l: f"layer {l}",
                         help="Which layer's head to show.", label_visibility="collapsed")
    head = h2.selectbox("Head", list(range(H)), key="ex_head", **ui.KEPT, format_func=lambda h: f"head {h}",
                        help="Which head of that layer to show.", label_visibility="collapsed")
    row = summary[(summary["layer"] == layer) & (summary["head"] == head)].iloc[0]
    rho = row["spearman"]
    rho_text = "n/a" if rho != rho else f"{rho:+.2f}"
    n = int(expl.key_mask.sum())
    acting = "" if int(row["acting_rows"]) == n else (
        f" (of the {int(row['acting_rows'])} of {n} rows that can act: **{row['acting_dropped_share']:.1%}** "
        f"dropped, region **{row['acting_region_share']:.1%}**)")
    spearman = (f"Spearman ρ of attention and attribution over the real positions: **{rho_text}** · dropped in this "
               f"head: **{row['dropped_share']:.1%}** of the positions · candidate region: **{row['region_share']:.1%}**"
               + acting + ("" if layer in mask.masked_layers else " · (this layer is not masked)"))
    title = (f"layer {layer}, head {head} · {view_ui.method_name(method)} · c = "
             f"{'score' if regression else expl.class_name(int(expl.target))}")
    fig = view_ui.head_figure(expl_key, mask_key, layer, head, title, expl, mask)
    st.plotly_chart(fig, key="ex_fig_head")
    st.caption(spearman)
    st.caption("Rows are query tokens, columns key tokens. On the attribution map the black outline is the candidate "
               f"discard region ({mask.mode} p = {mask.p:.2f} of each row) and the orange × are the positions dropped "
               f"with probability q = {mask.q:.2f} (seed {mask.seed}). Hover a cell on either map to read both values.")
    st.download_button("This head's figure (HTML)", data=lambda: fig.to_html(include_plotlyjs=True),
                       file_name=f"addrop-layer{layer}-head{head}.html", mime="text/html", icon=":material/download:",
                       key="ex_dl_html", help="The head figure above as a standalone, interactive HTML page.")


def every_head(expl_key, mask_key, expl, view):
    st.subheader("Every layer and head")
    g1, g2 = st.columns([2, 3], vertical_alignment="center")
    value = g1.segmented_control("Tiles show", ["attribution", "attention", "mask"], key="ex_grid_value",
                                 persist_state=SS, help="attribution and attention are scaled per tile (each head's "
                                 "largest value is full colour); mask shows kept, candidate and dropped positions.")
    value = value or "attribution"
    rho = {"aa": "1 by construction: AA's attribution is the attention itself",
           "rd": "near 0 by construction: RD's scores are random"}.get(expl.cfg.method,
                                                                       "low or negative: the head's attention is not "
                                                                       "what drives the prediction")
    g2.caption("Above each tile: ρ, the Spearman rank correlation of attention and attribution over the real "
               f"positions ({rho}); on the mask tiles, also the share dropped in the rows that can act.")
    fig = view_ui.grid_figure(expl_key, mask_key if value == "mask" else None, value, expl, view)
    st.plotly_chart(fig, key="ex_fig_grid")


def exports(expl, view, cfg, text, pair, gold, mask_layers):
    st.subheader("Export")
    settings = dict(model=c.model_name, device=c.device, text=text, pair=pair or None, gold=gold,
                    attribution=cfg, mask_layers=list(mask_layers), layer=int(st.session_state.get("ex_layer", 0)),
                    head=int(st.session_state.get("ex_head", 0)), tokens=expl.tokens, truncated=expl.truncated)
    x2, x3, x4 = st.columns(3)
    x2.download_button("Tensors (NPZ)", data=lambda: explore.to_npz_bytes(expl, view.mask, view.random_dropped),
                       file_name="addrop-maps.npz", mime="application/octet-stream", icon=":material/download:",
                       key="ex_dl_npz", help="numpy.load it: tokens, attention and attribution [L, H, T, T], region, "
                                             "dropped, random_dropped, key_mask, logits.")
    x3.download_button("Tensors (CSV)", data=lambda: explore.to_csv_text(expl, view.mask), file_name="addrop-maps.csv",
                       mime="text/csv", icon=":material/download:", key="ex_dl_csv",
                       help="One row per layer, head, query and key over the real tokens.")
    x4.download_button("Settings (JSON)", data=lambda: explore.settings_json(**settings),
                       file_name="addrop-settings.json", mime="application/json", icon=":material/download:",
                       key="ex_dl_json", help="Everything needed to recompute this view.")


results()
