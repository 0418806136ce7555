"""The start-here example: a sentence whose prediction flips under the AD-DROP mask but not under a random mask,
found once per model and data and loaded into the explorer's widgets."""
from __future__ import annotations

import streamlit as st

from addrop.errors import UserError
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
    if case.found:
        note = (f"**Start-here example.** Under the AD-DROP mask (p = {START_P}, q = {START_Q}, all layers) the "
                f"prediction flips from **{case.before}** to **{case.after_addrop}**; under a random mask that "
                f"drops exactly as many positions in every row it stays **{case.after_random}**. The head shown "
                f"(layer {case.layer}, head {case.head}) has strong attribution.")
    else:
        note = (f"**Start-here example.** Among the {case.searched} sentences searched, none flipped under the "
                f"AD-DROP mask alone; this one is where the AD-DROP mask lowers the prediction's margin the most "
                f"compared with a random mask of the same size ({case.margin_change_addrop:+.3f} vs "
                f"{case.margin_change_random:+.3f}).")
    st.session_state["ex_note"] = note
    st.session_state["ex_note_for"] = case.text
    return True
