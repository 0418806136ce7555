"""Number fields of the pages that train: ranges checked and reported here (`Numbers`), run sizes kept within the
data loaded (`clamp_sizes`), and initial widget values (`defaults`). Imported through pages._common as ui.*."""
from __future__ import annotations

import streamlit as st


# A setting's widget: its value kept for the session (across page switches) and in the page's address, so that a
# reload, a bookmark or a shared link opens the same settings (the sidebar's choices: pages/_url.py). An address
# value the widget cannot take is dropped by Streamlit; a number out of range is said by Numbers.
KEPT = {"persist_state": "session", "bind": "query-params"}


class Numbers:
    """Number fields whose range is checked here instead of by the browser. A number_input's own min/max refuse a
    typed value outside them with nothing but a red mark, and a form holding one submits nothing, so pressing Start
    did nothing and said nothing. Here every typed number is taken, and one out of range is reported (`problems`:
    show them and keep Start disabled)."""

    def __init__(self):
        self.problems: list[str] = []

    def field(self, where, label: str, lo, hi, key: str, **kw):
        if isinstance(lo, int) and isinstance(hi, int):
            kw.setdefault("step", 1)  # an int field (without bounds or a step, Streamlit makes it a float one)
        value = where.number_input(label, key=key, **kw)
        if value is None or not lo <= value <= hi:
            show = lambda v: "empty" if v is None else f"{int(v):,}" if float(v).is_integer() else f"{v:g}"
            self.problems.append(f"{label}: between {show(lo)} and {show(hi)}, not {show(value)}.")
        return value

    def run_size(self, prefix: str, n_train: int, n_dev: int, epochs_help: str, batch_help: str) -> tuple:
        """The four fields a training page's settings start with, in a row: training and dev examples (seeded
        subsets of `n_train` and `n_dev`), epochs, batch size; keys `<prefix>_train`, ... Their values."""
        a, b, d, e = st.columns(4)
        return (self.field(a, "Training examples", 1, n_train, step=8, key=f"{prefix}_train", **KEPT,
                           help=f"A seeded random subset of the {n_train:,} training examples."),
                self.field(b, "Dev examples", 1, n_dev, step=10, key=f"{prefix}_dev", **KEPT,
                           help=f"A seeded random subset of the {n_dev:,} dev examples."),
                self.field(d, "Epochs", 1, 50, key=f"{prefix}_epochs", **KEPT, help=epochs_help),
                self.field(e, "Batch size", 1, 256, key=f"{prefix}_batch", **KEPT, help=batch_help))

    def report(self) -> bool:
        """Each problem as st.error; True when there is none."""
        for msg in self.problems:
            st.error(msg, icon=":material/error:")
        return not self.problems


def clamp_sizes(prefix: str, n_train: int, n_dev: int) -> None:
    """Bring the page's training and dev example counts (`{prefix}_train`, `{prefix}_dev`) within the data loaded
    now when that data has changed: another dataset in the sidebar may hold fewer examples than the fields kept
    from the last one. A number typed for this data stays as typed: out of range, `Numbers` says so."""
    now, seen = (n_train, n_dev), f"{prefix}_sizes_for"
    if st.session_state.get(seen) == now:
        return
    st.session_state[seen] = now
    for k, n in ((f"{prefix}_train", n_train), (f"{prefix}_dev", n_dev)):
        v = st.session_state.get(k)
        if isinstance(v, (int, float)):
            st.session_state[k] = max(1, min(int(v), n))


def defaults(**values) -> None:
    """Initial values of keyed widgets (set once; widgets then read them from st.session_state, so they are not
    also given a value= argument, which Streamlit would warn about)."""
    for k, v in values.items():
        if k not in st.session_state:
            st.session_state[k] = v
