"""The explorer's results, drawn from one explanation and one mask draw: the prediction, one head, every head,
what the mask does, the native/Captum cross-check and the exports. Everything derived is cached per settings
(attribution, mask draw, figures), so moving a slider redraws without recomputing what it does not change, and
the sections that change with the mask or the shown head run as fragments (only they rerun)."""
from __future__ import annotations

import streamlit as st

from addrop.config import CAPTUM_METHODS, METHOD_LABELS
from addrop.errors import UserError
from addrop.studio import explore, plots

SS = "session"  # widget values survive page switches


def explain_with_progress(model_key: tuple, loaded, text: str, pair: str | None, cfg_items: tuple, gold,
                          label_names: tuple):
    """`cached_explain` under a spinner that shows the seconds so far and, for a long input, about how long it
    will take, scaled from the last attribution this session made with the same method (cost grows about as
    T^1.2 with the length T: docs/performance.md's length sweep)."""
    cfg = dict(cfg_items)
    how = (cfg["method"], cfg.get("backend"), cfg.get("steps"))
    last = st.session_state.setdefault("ex_timings", {}).get(how)
    hint = ""
    if last is not None:
        n = len(loaded.tokenizer(text, pair, truncation=True, max_length=loaded.max_length)["input_ids"])
        guess = last[1] * (n / max(last[0], 1)) ** 1.2
        if guess >= 3.0:
            hint = (f" About {guess:.0f} s for {n} tokens, judging by the last {cfg['method'].upper()} attribution "
                    f"here ({last[1]:.1f} s for {last[0]} tokens).")
    with st.spinner("Computing attention and attribution…" + hint, show_time=True):
        expl = cached_explain(model_key, loaded, text, pair, cfg_items, gold, label_names)
    st.session_state["ex_timings"][how] = (len(expl.tokens), float(expl.attribution.seconds))
    return expl


@st.cache_resource(show_spinner=False, max_entries=12)
def cached_explain(model_key: tuple, _loaded, text: str, pair: str | None, cfg_items: tuple, gold,
                   label_names: tuple):
    from addrop.config import AttributionConfig

    warm_up(model_key, _loaded, dict(cfg_items)["method"])
    return explore.explain(_loaded, text, pair, AttributionConfig(**dict(cfg_items)), gold=gold,
                           label_names=label_names)


@st.cache_resource(show_spinner=False, max_entries=16)
def warm_up(model_key: tuple, _loaded, method: str) -> bool:
    """One short attribution per model and method before the first real one, so the time the page shows is a
    warm one (the first pass of a process pays for kernel set-up and allocation)."""
    from addrop.config import AttributionConfig

    explore.explain(_loaded, "warm up", cfg=AttributionConfig(method=method, steps=2))
    return True


@st.cache_resource(show_spinner="Drawing the mask…", max_entries=32)
def cached_analyse(expl_key: tuple, mask_key: tuple, _loaded, _expl):
    p, q, mode, ties, seed, layers = mask_key
    return explore.analyse(_loaded, _expl, p, q, mode, ties=ties, seed=seed, layers=list(layers))


@st.cache_resource(show_spinner="Attributing with the other backend…", max_entries=4)
def cached_compare(expl_key: tuple, _loaded, _expl):
    return explore.compare_backends(_loaded, _expl)


@st.cache_resource(show_spinner=False, max_entries=24)
def head_figure(expl_key: tuple, mask_key: tuple, layer: int, head: int, title: str, _expl, _mask):
    li = _expl.layers.index(layer)
    fig = plots.attention_attribution(
        _expl.tokens, _expl.attention[li, head], _expl.scores[li, head], _mask.region[li, head],
        _mask.dropped[li, head], key_mask=_expl.key_mask[0], title=title, method=_expl.cfg.method,
        steps=_expl.cfg.steps, mode=_mask.mode, height=int(min(620, max(400, 230 + 11 * len(_expl.tokens)))))
    return _revision(fig, (expl_key, mask_key, layer, head, title))


def _revision(fig, key):
    """Plotly.react redraws data arrays only when datarevision changes: a rerun that sends the same figure again
    (a fragment rerun for another slider) then costs the browser next to nothing."""
    return fig.update_layout(datarevision=str(hash(key)), uirevision="explorer")


@st.cache_resource(show_spinner=False, max_entries=12)
def grid_figure(expl_key: tuple, mask_key: tuple | None, value: str, _expl, _view):
    """The small multiples; the attention and attribution tiles do not depend on the mask (mask_key None), so
    moving p, q or the seed leaves them as they are (and the browser need not redraw them)."""
    summary = _view.summary
    if value == "mask":
        maps = _view.mask.region.float().cpu().numpy() + _view.mask.dropped.float().cpu().numpy()
        summary = summary.assign(dropped_share=summary["acting_dropped_share"])
    else:
        maps = _expl.scores if value == "attribution" else _expl.attention
        summary = summary.drop(columns=[c for c in summary.columns if "share" in c])
    fig = plots.head_grid(maps, key_mask=_expl.key_mask[0], summary=summary, layers=_expl.layers,
                          tokens=_expl.tokens, value=value, method=_expl.cfg.method)
    return _revision(fig, (expl_key, mask_key, value))


NO_CHANGE = 5e-5  # a change that rounds to 0.0000 has no direction: no arrow


def _change(d: float) -> str:
    return "no change (±0.0000)" if abs(d) < NO_CHANGE else f"{d:+.4f} vs no mask"  # short: the column is narrow


def _arrow(d: float) -> str:
    return "off" if abs(d) < NO_CHANGE else "auto"


def prediction(expl, view, regression: bool) -> None:
    """The prediction without a mask and what each mask does to p(c), with the drops that can act."""
    effect, counts = view.effect, view.counts
    st.html("<style>[data-testid='stMetricValue'] { font-size: 1.6rem; }</style>")
    before, after_ad, after_rd = (effect.row(k) for k in explore.CONDITIONS)
    n_real = int(expl.key_mask.sum())
    name = explore.mask_name(expl.cfg.method, view.mask.mode)  # "AD-DROP" only for AD-DROP's own region
    r1, r2 = st.columns(3), st.columns(3)
    m = [r1[0], r1[1], r2[0], r2[1], r1[2], r2[2]]  # row 1: prediction, c, tokens; row 2: AD-DROP, random, drops
    if regression:
        m[0].metric("Predicted score", f"{before['score']:.3f}", help="The regression output without any mask.")
        m[1].metric("Attributed", "the score itself" if expl.gold is None else "− squared error",
                    help="For regression, F is the negative squared error against the gold score, or the output.")
        for col, row, which in ((m[2], after_ad, name), (m[3], after_rd, "random")):
            d = row["score"] - before["score"]
            col.metric(f"Score, {which} mask", f"{row['score']:.3f}", delta=_change(d), delta_color="off",
                       delta_arrow=_arrow(d), help="The change is against no mask.")
    else:
        c = effect.target_name
        m[0].metric("Prediction", before["prediction"], help="The class the model predicts without any mask.")
        m[1].metric("Attributed class c", expl.class_name(int(expl.target)),
                    help=f"The class whose logit F_c is differentiated; p({c}) = {before['p_c']:.4f} without a mask.")
        for col, row, which in ((m[2], after_ad, name), (m[3], after_rd, "random")):
            d = row["p_c"] - before["p_c"]
            col.metric(f"p(c), {which} mask", f"{row['p_c']:.4f}", delta=_change(d), delta_color="off",
                       delta_arrow=_arrow(d), help=f"p({c}) under the {which} mask; the change is against no mask "
                                               f"({before['p_c']:.4f}).")
    m[4].metric("Tokens", n_real, help="Real tokens (with [CLS] and [SEP]); the maps are n × n.")
    m[5].metric("Positions dropped", f"{counts.acting:,}",
                delta=f"{counts.acting_share:.1%}, rows that act",
                delta_color="off", delta_arrow="off",
                help="Dropped (query, key) positions in the masked layers and all heads, in the rows that can act "
                     "on the output (attribution not the same for every key): the share is of those rows' "
                     "positions. The table under 'What the mask does' counts every row.")


def idle_note(view) -> None:
    """Said plainly, not only in a tooltip: the drops in rows that cannot act, and the share with them."""
    counts = view.counts
    if counts.idle:
        why = ("A random region draws candidates in these rows as in any other (ties play no part in it), so their "
               "drops have no effect." if view.mask.mode == "random" else
               "The paper's tie rule makes such a row a candidate as a whole, so up to q of it is dropped, for no "
               "effect. *Ties: strict* leaves these rows alone.")
        st.caption(
            f"**{counts.idle:,} more positions are dropped in rows that cannot act**: their attribution is the same "
            "for every key (with GA or IGA, every top-layer row but [CLS], which never reaches the output). "
            f"{why} Counted with them, {counts.share:.1%} of the masked positions are dropped, against "
            f"{counts.acting_share:.1%} in the rows that act. (Neither "
            f"share need be p × q = {view.mask.p * view.mask.q:.1%}: a row's candidate region is n − int(n(1 − p)) "
            "of its n keys, which on a short row is more than p of them, and its drops are coins.)")


def what_the_mask_does(view, regression: bool, method: str = "ga", untrained: bool = False) -> None:
    effect = view.effect
    name = explore.mask_name(method, view.mask.mode)
    e1, e2 = st.columns([3, 2], gap="large")
    with e1:
        frame = effect.frame()
        frame["condition"] = frame["condition"].replace("AD-DROP mask", f"{name} mask")
        show = ["condition", "drops", "prediction"] + ([] if regression else ["p_c", "attributed_logit"]) + ["loss"]
        # a static table (three rows): the canvas-drawn st.dataframe was the last thing each redraw waited for
        names = {"condition": "condition", "drops": "positions dropped (all rows)", "prediction": "prediction",
                 "p_c": f"p({effect.target_name})", "attributed_logit": "logit F_c", "loss": "loss"}
        st.table(frame[show].rename(columns=names).set_index("condition").style.format(
            {names[k]: "{:.4f}" for k in ("p_c", "attributed_logit", "loss") if k in show} | {names["drops"]: "{:,}"}))
        st.caption(f"Positions dropped: summed over the masked layers and heads. Loss: against {effect.reference}."
                   + ("" if regression else f" p({effect.target_name}) and F_c: the probability and the logit of the "
                                            "attributed class c."))
        with st.empty():  # the slot stays, so the elements after it keep their place (explorer.rest_of_results)
            if untrained:  # said where the numbers are, not only in the sidebar
                st.warning("This model's classification head is untrained: its predictions sit near chance, so what "
                           "the masks do to them says little. Pick a model trained on this data in the sidebar "
                           "(minilm-demo for the demo data), or train one with *Train a model for this data*.")
        st.markdown(explore.effect_sentences(effect, method, view.mask.mode))
        st.page_link("pages/faithfulness.py", label="Deletion curves: the same question over the dev set",
                     icon=":material/trending_down:")
    with e2:
        st.plotly_chart(plots.mask_effect(frame, target_name=effect.target_name or "score"), key="ex_fig_effect")


def cross_check(expl_key: tuple, loaded, expl, layer: int, head: int) -> None:
    if expl.cfg.method not in CAPTUM_METHODS:
        st.caption("Captum computes GA and IGA only; choose one of them to cross-check the two backends.")
        return
    asked = st.session_state.get("ex_cmp_for") == expl_key
    if not asked and st.button("Cross-check with the other backend", key="ex_cmp", icon=":material/compare:",
                               help="Attribute the same example with the other backend too and compare the scores "
                                    "(Captum's IGA takes several seconds; the result is kept for these settings)."):
        st.session_state["ex_cmp_for"] = asked = expl_key
    if not asked:
        return
    try:
        cmp = cached_compare(expl_key, loaded, expl)
    except UserError as e:
        st.error(str(e))
        return
    k = st.columns(4)
    k[0].metric("Largest relative difference", f"{cmp.max_rel_diff:.2e}",
                help="max |captum − native| / max |native| over every layer, head and real position.")
    k[1].metric("Largest absolute difference", f"{cmp.max_abs_diff:.2e}")
    k[2].metric("Native time", f"{cmp.native_seconds * 1000:.0f} ms", help="All layers, this example (warm).")
    k[3].metric("Captum time", f"{cmp.captum_seconds * 1000:.0f} ms", help="All layers, this example.")
    li = expl.layers.index(layer)
    if cmp.max_abs_diff == 0:
        st.success("The two backends give exactly the same scores for this example: the difference map is zero "
                   "everywhere.")
    else:
        st.plotly_chart(plots.backend_diff(expl.tokens, cmp.native.scores[li, 0, head], cmp.captum.scores[li, 0, head],
                                           key_mask=expl.key_mask[0], title=f"captum − native, layer {layer}, head {head}"),
                        key="ex_fig_diff")
        st.caption("Differences at the level of float rounding (relative ~1e-6) mean the backends agree.")


def method_name(method: str) -> str:
    return METHOD_LABELS[method].split(":")[0]
