"""What a fresh server does before its first visitor arrives. `streamlit run app.py` serves app.py as an `st.App`
whose lifespan starts `preload` in a thread: importing torch and transformers, loading the default model into the
shared cache and its first (cold) attribution pass then overlap with the browser loading the page, instead of
following it (docs/performance.md: the first attribution after a start). A visitor who arrives first waits on the
same cache entry (st.cache_resource computes a key once); any error is left for the visitor's own run to show."""
from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

THREAD = "addrop-preload"


def _not_from_preload(record: logging.LogRecord) -> bool:
    """Streamlit warns of a missing ScriptRunContext whenever a cached function runs outside a session: expected
    here, so the preload thread's warnings are left out of the server's log."""
    return record.threadName != THREAD


def preload() -> None:
    try:
        from pages import _common as ui  # first: it sets the OpenMP wait policy before torch loads
        from addrop.engine.data.demo import load_demo
        from addrop.engine.models import resolve_device
        from pages import _explorer_view as view_ui  # plotly and the explorer's library

        spec = load_demo()[0]  # the data a session starts with, so the model and key the sidebar will ask for
        name, device = ui.pinned_model() or ui.default_model_for(spec, {}), str(resolve_device("auto"))
        loaded = ui.cached_model(name, device, spec.num_labels)
        view_ui.warm_up((name, device, spec.num_labels), loaded, "ga")
    except Exception:  # noqa: BLE001 - the visitor's run does the same work and shows the error where it belongs
        pass


@asynccontextmanager
async def lifespan(app):
    from pages import _compat

    _compat.leave_pages_folder_mode_at_start()
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_not_from_preload)
    threading.Thread(target=preload, name=THREAD, daemon=True).start()
    yield
