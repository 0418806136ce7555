"""The app given hostile input: each a one-line st.error, never an exception box (see tests/test_app.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    from pages import _compat

    _compat.patch_for_apptest(monkeypatch)
    monkeypatch.setenv("ADDROP_DEFAULT_MODEL", "tiny-bert")
    monkeypatch.setenv("ADDROP_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "runs"


def _app(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_an_upload_with_another_separator_names_it_and_the_users_file(env):
    at = _app(data_source="csv")
    rows = "".join(f"sentence {i};{i % 2}\n" for i in range(40))
    at.sidebar.file_uploader[0].set_value(("my reviews.csv", ("text;label\n" + rows).encode(), "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errs = _errors(at)
    assert any("separated by ';'" in e and "my-reviews.csv" in e for e in errs), errs
    assert not any(".uploads" in e or "too few rows" in e for e in errs), errs


@pytest.mark.parametrize("label,value,error,folder", [
    ("p values", "0.1:inf:0.1", "finite numbers", "sweep-demo-tiny-bert"),
    # a misspelt task used to start a job that failed in its first cell while the page showed "0/10 runs finished"
    ("Task", "sst2typo", "unknown task 'sst2typo'", "sweep-sst2typo-tiny-bert"),
])
def test_sweep_form_with_bad_input_is_an_error_box_and_starts_nothing(env, label, value, error, folder):
    from addrop.studio.jobs import default_runner

    at = _app()
    at.switch_page("pages/sweeps.py")
    at.run()
    next(t for t in at.text_input if t.label == label).set_value(value)
    next(b for b in at.button if b.key == "sw_start" or b.label == "Start sweep").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(error in e for e in _errors(at)), _errors(at)
    assert default_runner().current() is None
    assert not (env / folder).exists()


def test_explorer_text_of_invisible_characters_is_empty():
    at = _app()
    at.switch_page("pages/explorer.py")
    at.run()
    at.text_area(key="ex_text").set_value("\u200b\u200c\u200d\u2060")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("text is empty" in e for e in _errors(at)), _errors(at)
