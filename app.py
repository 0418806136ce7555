"""addrop-studio: the Streamlit app. Run with `streamlit run app.py`.

The entry script: it draws the shared sidebar (model, device, data; see pages/_common.py) and hands over to the
page chosen in the navigation. Pages live in pages/ and stay thin: inputs, one library call, drawing.

`streamlit run app.py` first imports this file and finds `app`, an st.App serving this same file as the script:
its lifespan (pages/_warm.py) loads the default model while the first visitor's browser is still loading the page.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `streamlit run` from another folder, or AppTest
    sys.path.insert(0, str(HERE))

if __name__ != "__main__":  # imported by `streamlit run app.py` to serve it: an st.App that warms up at start
    from pages._warm import lifespan  # noqa: E402

    app = st.App(__file__, lifespan=lifespan)
else:  # each run of a session (Streamlit runs the script as __main__)
    from pages import _common as ui  # noqa: E402

    st.set_page_config(page_title="AD-DROP studio", page_icon=":material/blur_on:", layout="wide")

    PAGES = [
        st.Page("pages/home.py", title="Start here", icon=":material/school:", default=True),
        st.Page("pages/explorer.py", title="Attribution explorer", icon=":material/grid_on:"),
        st.Page("pages/prior.py", title="Prior experiment", icon=":material/science:"),
        st.Page("pages/compare.py", title="AD-DROP vs vanilla", icon=":material/compare_arrows:"),
    ]
    if (HERE / "pages" / "sweeps.py").is_file():
        PAGES.append(st.Page("pages/sweeps.py", title="Sweeps", icon=":material/tune:"))
    PAGES += [st.Page("pages/replication.py", title="Replication study", icon=":material/fact_check:"),
              st.Page("pages/training.py", title="Across training", icon=":material/timeline:"),
              st.Page("pages/faithfulness.py", title="Deletion curves", icon=":material/trending_down:"),
              st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:")]

    page = st.navigation(PAGES)
    # the pages that fine-tune a new head themselves: the sidebar model's own head does not matter there
    ui.sidebar(fine_tunes=page.title in ("Prior experiment", "AD-DROP vs vanilla", "Sweeps"))
    page.run()
