"""The sidebar's data, model and device in the page's address (`?source=glue&task=mrpc&model=minilm`), so that a
reload, a bookmark or a shared link opens the same choices.

A reload starts a new Streamlit session, with every widget at its default, and Streamlit clears the address's query
parameters on every page switch. So the first run of a session copies the address into the sidebar's widget state
(`restore`, before the widgets are drawn), and every run writes the sidebar's choices back (`keep`, after them),
leaving out those at their defaults. A value the address gets wrong is left out and said (`restore` returns what
to say); nothing else changes. A CSV file is not in the address: after a reload, it is uploaded again. The pages'
own settings are bound to the address by Streamlit itself (`bind="query-params"`, pages/_fields.py KEPT).
"""
from __future__ import annotations

import streamlit as st

from addrop.engine.data import SOURCE_LABELS
from addrop.engine.tasks import GLUE_TASKS

READ = "url_read"  # session_state: this session has read its address
LONGEST = 1000  # characters: a longer value is no folder or model name anyone typed


def restore(devices: list[str]) -> list[str]:
    """On a session's first run only: the address's source, glue, task, model and device into the sidebar's
    widget state. Returns a sentence for each value left out."""
    if st.session_state.get(READ):
        return []
    st.session_state[READ] = True
    q = st.query_params
    said = []

    def one(key: str, allowed=None) -> str | None:
        value = q.get(key)
        if value is None:
            return None
        value = value.strip()
        if not value or len(value) > LONGEST:
            said.append(f"{key}: {'empty' if not value else f'over {LONGEST:,} characters'}")
            return None
        if allowed is None:
            return value
        match = {a.lower(): a for a in allowed}.get(value.lower())
        if match is None:
            said.append(f"{key} '{value}': not one of {', '.join(allowed)}")
        return match

    for key, widget, allowed in (("source", "data_source", list(SOURCE_LABELS)), ("glue", "data_dir", None),
                                 ("task", "data_task", list(GLUE_TASKS)), ("device", "device", devices)):
        value = one(key, allowed)
        if value is not None:
            st.session_state[widget] = value
    model = one("model")
    if model is not None:  # the model picker keeps a name it does not list as typed (pages/_models.py)
        st.session_state["model_choice"] = model
    return [f"This page's address asked for what the sidebar cannot use, left at the default: {'; '.join(said)}."] \
        if said else []


def wanted(model: str | None, glue_default: str) -> dict[str, str]:
    """The address parameters for the sidebar's present choices: those not at their defaults. `model`: the model's
    name when the user chose it, None while it follows the data."""
    s = st.session_state
    source = s.get("data_source", "demo")
    out = {}
    if source != "demo":
        out["source"] = source
    if source == "glue" and s.get("data_dir", "").strip() and s["data_dir"].strip() != glue_default:
        out["glue"] = s["data_dir"].strip()
    if source in ("glue", "hf") and s.get("data_task"):
        out["task"] = s["data_task"]
    if model:
        out["model"] = model
    if s.get("device", "auto") != "auto":
        out["device"] = s["device"]
    return out


def keep(want: dict[str, str]) -> None:
    """Write `want` to the address; parameters of ours it lacks are removed, any others are left alone."""
    q = st.query_params
    for key in ("source", "glue", "task", "model", "device"):
        if key in want:
            if q.get(key) != want[key]:
                q[key] = want[key]
        elif key in q:
            del q[key]
