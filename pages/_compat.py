"""One Streamlit behaviour this app works around, kept in this one place.

Streamlit still has its first multipage mode: when a `pages/` folder sits beside the main script, the class flag
`PagesManager.uses_pages_directory` starts true and a run then executes the page file named by the URL on its own,
without app.py. The first `st.navigation` call (app.py makes one on every run) switches it off for good. So a
fresh server whose first request opens a page URL (/prior) runs that page alone once, and `AppTest` resets the flag
before every run. There is no public setting for it (Streamlit 1.67); keeping `pages/` is this project's layout.

It can go when `streamlit.runtime.pages_manager.PagesManager` no longer has `uses_pages_directory` (the old mode is
gone) or when a run consults `st.navigation` first; tests/test_app.py fails loudly if the flag disappears.
"""
from __future__ import annotations

import streamlit as st


def _manager():
    from streamlit.runtime.pages_manager import PagesManager  # a private module: see the docstring

    return PagesManager


def leave_pages_folder_mode(sidebar_ran: bool = True) -> None:
    """A page run in the old mode (no app.py): switch the server to st.navigation and rerun through app.py. Two
    sessions arriving together at a fresh server race: the second may run a page alone in the old mode after the
    first has already switched the flag off, so a page run without the sidebar (`sidebar_ran` False) reruns too,
    once per session."""
    manager = _manager()
    if manager.uses_pages_directory:
        manager.uses_pages_directory = False
        st.rerun()
    if not sidebar_ran and not st.session_state.get("_compat_reran"):
        st.session_state["_compat_reran"] = True
        st.rerun()


def leave_pages_folder_mode_at_start() -> None:
    """The server's start (pages/_warm.py): navigation mode before the first run, so a first request for a page URL
    runs through app.py at once instead of running the page alone and rerunning."""
    _manager().uses_pages_directory = False


def patch_for_apptest(monkeypatch) -> None:
    """For AppTest, which resets the flag before every run: keep it off after each PagesManager is made."""
    manager = _manager()
    assert hasattr(manager, "uses_pages_directory"), "Streamlit dropped its pages/-folder mode: remove pages/_compat.py"
    init = manager.__init__

    def init_navigation_mode(self, *a, **k):
        init(self, *a, **k)
        manager.uses_pages_directory = False

    monkeypatch.setattr(manager, "__init__", init_navigation_mode)
