"""The start-here example: the dev sentence where the AD-DROP mask moves the prediction most beyond a random mask
of the same size, found once per model and data (on the trained default when the data is the demo) and loaded
into the explorer's widgets."""
from __future__ import annotations

import streamlit as st

from addrop.errors import UserError
from addrop.studio.explore.start import MEANINGFUL
from pages._common import Ctx, show_error

START_P, START_Q, START_SEED = 0.3, 0.3, 0


@st.cache_resource(show_spinner="Searching a few example sentences for one that shows the idea…", max_entries=8)
def flip_case(model_key: tuple, _loaded, texts: tuple, pairs: tuple | None, golds: tuple, label_names: tuple,
              p: float = START_P, q: float = START_Q, seed: int = START_SEED, limit: int = 30):
    """explore.find_flip over the first `limit` examples, cached per model and data."""
    from addrop.config import AttributionConfig
    from addrop.studio.explore import find_flip

    return find_flip(_loaded, texts, pairs, golds, AttributionConfig(method="ga"), p=p, q=q, seed=seed,
                     limit=limit, label_names=label_names)


def load_start_example(c: Ctx) -> bool:
    """Find the start-here example for the current model and data and preset the explorer's widgets with it.
    Returns False (after showing why) when there is nothing to show."""
    loaded = c.need_model()
    if c.spec is not None and not c.spec.is_regression:
        split = c.dev
        names = c.label_names
    else:
        from addrop.engine.data import load_demo

        spec, _, split = load_demo()
        names = spec.label_names
        if c.spec is not None and c.num_labels != spec.num_labels:
            st.warning("The start-here example needs a classification task; choose the demo data or another "
                       "classification task in the sidebar.")
            return False
    n = min(30, len(split))
    try:
        case = flip_case(c.model_key, loaded, tuple(split.texts[:n]),
                         tuple(split.pairs[:n]) if split.pairs is not None else None,
                         tuple(split.labels[:n]), tuple(names))
    except UserError as e:
        show_error(e)
        return False
    if case is None:
        st.warning("No example to show for this model and data.")
        return False
    st.session_state.update({
        "ex_source": "Type your own", "ex_text": case.text, "ex_pair": case.pair or "", "ex_method": "ga",
        "ex_backend": "native", "ex_target": "predicted", "ex_p": START_P, "ex_q": START_Q, "ex_mode": "high",
        "ex_ties": "paper",
        "ex_seed": START_SEED, "ex_layer": case.layer, "ex_head": case.head,
        "ex_mask_layers": list(range(loaded.num_layers)),
    })
    shift = case.prob_random - case.prob_addrop
    if case.found:
        flip = f"; the prediction flips to **{case.after_addrop}**" if case.flips else ""
        note = (f"**Start-here example** (the dev sentence, of {case.searched} searched, where the AD-DROP mask moves "
                f"the prediction most). Under the AD-DROP mask (p = {START_P}, q = {START_Q}, all layers) the "
                f"probability of **{case.before}** goes from {case.prob_before:.3f} to {case.prob_addrop:.3f}"
                f"{flip}; under a random mask that drops as many positions in every row it is "
                f"{case.prob_random:.3f}. One sentence shows the idea, not a rule: the *Deletion curves* page "
                f"measures it over the dev set.")
    else:
        note = (f"**Start-here example.** Among the {case.searched} dev sentences searched, no AD-DROP mask lowers "
                f"the predicted probability by {MEANINGFUL} or more beyond a random mask of the same size (the "
                f"largest difference is {shift:+.3f}, on this sentence: {case.prob_before:.3f} → "
                f"{case.prob_addrop:.3f} under AD-DROP, {case.prob_random:.3f} under random); so there is no "
                f"telling example to show for this model.")
    st.session_state["ex_note"] = note
    st.session_state["ex_note_for"] = case.text
    return True
