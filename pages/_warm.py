"""What a fresh server does before its first visitor arrives. `streamlit run app.py` serves app.py as an `st.App`
whose lifespan starts `preload` in a thread: importing torch and transformers, loading the default model into the
shared cache and its first (cold) attribution pass then overlap with the browser loading the page, instead of
following it (docs/performance.md: the first attribution after a start). A visitor who arrives first waits on the
same cache entry (st.cache_resource computes a key once); any error is left for the visitor's own run to show."""
from __future__ import annotations

import threading
from contextlib import asynccontextmanager


def preload() -> None:
    try:
        from pages import _common as ui  # first: it sets the OpenMP wait policy before torch loads
        from addrop.engine.models import TRAINED_MODELS, resolve_device
        from pages import _explorer_view as view_ui  # plotly and the explorer's library

        name, device = ui.pinned_model() or TRAINED_MODELS[0], str(resolve_device("auto"))
        loaded = ui.cached_model(name, device, 2)  # the key the sidebar uses for the demo data (two labels)
        view_ui.warm_up((name, device, 2), loaded, "ga")
    except Exception:  # noqa: BLE001 - the visitor's run does the same work and shows the error where it belongs
        pass


@asynccontextmanager
async def lifespan(app):
    from pages import _compat

    _compat.leave_pages_folder_mode_at_start()
    threading.Thread(target=preload, name="addrop-preload", daemon=True).start()
    yield
