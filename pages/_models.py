"""The sidebar's model list (pages/_common.py draws it): the trained default, the untrained models (so labelled),
every checkpoint kept under the runs folder, and "other". Until the user picks one, the choice follows the data.
"""
from __future__ import annotations

import streamlit as st

from addrop.config import PRIOR_STRATEGIES
from addrop.engine.models import BUILTIN, MODEL_LABELS, TINY, TRAINED_MODELS, model_choice_label
from addrop.engine.weights import RUN_PREFIX
from addrop.errors import counted

OTHER_MODEL = "other (Hugging Face id or folder)"
UNTRAINED = BUILTIN  # heads (and for the tiny models, everything) untrained: engine.models' built-in models


def model_label(choice: str, checkpoints: dict) -> str:
    if choice in checkpoints:
        return "run: " + checkpoints[choice]["label"]
    if choice == "minilm":
        return "minilm (untrained head)"
    if choice in TINY:
        return model_choice_label(choice)  # the tiny models' label, one copy for every picker
    if choice in TRAINED_MODELS:
        return f"{choice} (trained)"  # short enough for the picker; its caption says on what
    return choice


@st.cache_data(ttl=5, show_spinner=False)
def checkpoints(root: str) -> dict:
    """The runs folder's kept checkpoints by reference (engine.weights.list_checkpoints), re-read every 5 s."""
    from addrop.engine.weights import list_checkpoints

    return {c["ref"]: c for c in list_checkpoints(root)}


def fits(checkpoint: dict, spec) -> bool:
    """Whether a kept checkpoint was trained on the chosen data (the same task, as many labels); any, before data
    is chosen."""
    return spec is None or (checkpoint.get("task") == spec.name and checkpoint.get("num_labels") == spec.num_labels)


def default_model_for(spec, found: dict) -> str:
    """A trained model for the chosen data when there is one: the shipped one for the demo task, else the newest
    checkpoint trained on the same task with as many labels, but none of a prior experiment's runs (its drop-* runs
    trained with the masks of a contrast, and all four are sized for the contrast, often a few dozen examples: the
    experiment's, not models to explain; they stay in the list); else minilm with its untrained head."""
    if spec is not None and spec.name == "demo":
        return TRAINED_MODELS[0]
    for ref, c in found.items():
        if spec is not None and fits(c, spec) and c.get("strategy") not in PRIOR_STRATEGIES:
            return ref
    return "minilm"


def use_model(choice: str) -> None:
    """Switch the sidebar to `choice` on the next run (a page's "train a model" button calls this); the list of
    checkpoints is re-read so that a new one is in it."""
    checkpoints.clear()
    st.session_state["model_next"] = choice


def model_caption(name: str, checkpoint: dict | None = None) -> str:
    """One line on what a model name stands for (the app's sidebar): the labels above, a shipped model's dev
    accuracy, or a checkpoint's run (`checkpoint`: its list entry, whose whole label the picker may cut short)."""
    if name in TRAINED_MODELS:
        from addrop.engine.weights import trained_info

        info = trained_info(name)
        acc = info.get("dev_accuracy")
        return MODEL_LABELS[name] + (f"; dev accuracy {acc:.3f}" if isinstance(acc, float) else "")
    if name.startswith(RUN_PREFIX):
        what = "the weights a run kept (Runs page), in its base model"
        return f"{checkpoint['label']}: {what}" if checkpoint and checkpoint.get("label") else what
    return MODEL_LABELS.get(name, "")


def model_controls(c, root, pinned: str | None) -> None:
    """The model list: the trained default, the untrained ones (so labelled), every kept checkpoint, other. Until
    the user picks one, the choice follows the data (`default_model_for`). Checkpoints trained on other data are
    left out of the list (their head's classes mean nothing here); run:PATH under "other" still loads one."""
    kept = checkpoints(str(root))
    found = {ref: ck for ref, ck in kept.items() if fits(ck, c.spec)}
    choices = list(TRAINED_MODELS) + list(BUILTIN) + list(found) + [OTHER_MODEL]
    if "model_next" in st.session_state:  # a page switched the model (e.g. after training one)
        st.session_state["model_choice"] = st.session_state.pop("model_next")
        st.session_state["model_auto"] = False
    if "model_auto" not in st.session_state:  # a model set before the first run (a link, a test) is a choice
        st.session_state["model_auto"] = "model_choice" not in st.session_state
    if st.session_state["model_auto"]:
        want = pinned or default_model_for(c.spec, found)
        if want in choices:
            st.session_state["model_choice"] = want
        else:
            st.session_state["model_choice"] = OTHER_MODEL
            st.session_state["model_custom"] = want
    chosen = st.session_state.get("model_choice")
    if chosen not in choices:  # typed as run:PATH elsewhere, deleted since, or a stale value: keep it as typed
        st.session_state["model_choice"] = OTHER_MODEL
        st.session_state["model_custom"] = chosen if isinstance(chosen, str) else ""
    choice = st.selectbox("Model", choices, key="model_choice", format_func=lambda x: model_label(x, found),
                          on_change=lambda: st.session_state.__setitem__("model_auto", False),
                          help="minilm-demo: the embedded encoder fine-tuned on the demo set (the default for the "
                               "demo data). minilm: the same encoder with an untrained head. The tiny models "
                               "have random weights: instant, for trying the controls. run: the weights a run "
                               "kept (train one on the explorer page). Other: a Hugging Face id (needs the "
                               "internet) or a local folder with config.json.")
    if choice == OTHER_MODEL:
        name = st.text_input("Hugging Face id or local folder", key="model_custom",
                             placeholder="e.g. prajjwal1/bert-tiny, /path/to/model or run:runs/my-run",
                             help="BERT, RoBERTa, ELECTRA, DistilBERT, ALBERT or CamemBERT families. A new "
                                  "classification head is added for the chosen data.")
    else:
        name = choice
        st.caption(model_caption(choice, found.get(choice)))
    if len(kept) > len(found):
        other = len(kept) - len(found)
        st.caption(f"{counted(other, 'kept checkpoint')} trained on other data "
                   f"{'are' if other != 1 else 'is'} not listed; to use one anyway, pick other and type run:PATH.")
    c.model_name = (name or "").strip()


def deleted_run(name: str) -> str | None:
    """The folder of a run:PATH model that no longer exists, else None (not a run, or a reference that does not
    parse: loading it says why)."""
    from addrop.engine.weights import parse_run_ref
    from addrop.errors import UserError

    if not name.startswith(RUN_PREFIX):
        return None
    try:
        folder, _ = parse_run_ref(name)
    except UserError:
        return None
    return None if folder.expanduser().exists() else str(folder)


