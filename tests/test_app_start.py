"""The server's start: `streamlit run app.py` serves app.py as an st.App whose lifespan preloads the default model
(pages/_warm.py), while each session still runs app.py as a script (tests/test_app.py). The real server is
started by tests/test_browser.py."""
from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_app_py_imported_is_an_st_app_and_run_is_a_script():
    from streamlit.starlette import App
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "app.py")  # what `streamlit run app.py` decides with
    assert found.is_asgi_app and found.app_name == "app"
    spec = importlib.util.spec_from_file_location("app_as_module", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imported, not run: no page is drawn, only the App is made
    assert isinstance(module.app, App)
    assert not hasattr(module, "page")


def test_preload_fills_the_cache_the_sidebar_reads(monkeypatch):
    monkeypatch.setenv("ADDROP_DEFAULT_MODEL", "tiny-bert")
    import addrop.engine.models as models
    from pages import _common as ui
    from pages import _warm

    loads = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    ui.cached_model.clear()
    _warm.preload()
    assert len(loads) == 1
    device = str(models.resolve_device("auto"))
    ui.cached_model("tiny-bert", device, 2)  # what the sidebar asks for on the demo data: already there
    assert len(loads) == 1 and loads[0][:2] == ("tiny-bert", device)
    ui.cached_model.clear()


def test_preload_keeps_quiet_on_errors(monkeypatch):
    from pages import _common as ui
    from pages import _warm

    monkeypatch.setenv("ADDROP_DEFAULT_MODEL", "no-such-model-anywhere")
    _warm.preload()  # the visitor's own run reports the problem, in the sidebar
    ui.cached_model.clear()


def test_lifespan_starts_the_preload_and_navigation_mode(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    from pages import _warm

    started = []
    monkeypatch.setattr(_warm, "preload", lambda: started.append(True))
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)

    async def enter_and_leave():
        async with _warm.lifespan(None):
            pass

    asyncio.run(enter_and_leave())
    for _ in range(50):
        if started:
            break
        time.sleep(0.01)
    assert started == [True]
    assert PagesManager.uses_pages_directory is False
