"""The sidebar's choices in the address (pages/_url.py): a new session (a reload, a shared link) opens the data, model
and device the address names, the address follows the sidebar, and an address the sidebar cannot use is said."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from pages._models import OTHER_MODEL
from tests.test_app import ROOT as _ROOT
from tests.test_app import _app, _errors, _ok, env  # noqa: F401 (env: the autouse fixture)


def _open(page: str | None = None, **params) -> AppTest:
    """A new session whose address carries `params`, as a reload or a link starts one."""
    return _app(page, params)


def _said(at: AppTest) -> list[str]:
    """The sidebar's warnings about the address (not the untrained-head one)."""
    return [w.value for w in at.sidebar.warning if w.icon == ":material/link_off:"]


def test_a_new_session_opens_what_the_address_names(env, glue_dir):
    folder = str(glue_dir)
    at = _open(source="glue", glue=folder, task="MRPC", model="tiny-roberta")
    _ok(at)
    assert at.sidebar.selectbox(key="data_source").value == "glue"
    assert at.sidebar.text_input(key="data_dir").value == folder
    assert at.sidebar.selectbox(key="data_task").value == "mrpc"  # any case, as the list has it
    assert at.sidebar.selectbox(key="model_choice").value == "tiny-roberta"
    assert any(c.value.startswith("**mrpc**") for c in at.sidebar.caption)
    assert not _said(at)
    # the address now says it as the sidebar does, and keeps saying it on another page
    assert at.query_params["task"] == "mrpc" and at.query_params["model"] == "tiny-roberta"
    at.switch_page("pages/prior.py")
    at.run()
    _ok(at)
    assert at.query_params.get("source") == "glue" and at.query_params.get("task") == "mrpc"
    assert at.sidebar.selectbox(key="model_choice").value == "tiny-roberta"


def test_the_address_follows_the_sidebar_and_leaves_out_defaults(env):
    at = _open()
    _ok(at)
    assert not at.query_params  # the demo data and a model that follows the data: nothing to say
    at.sidebar.selectbox(key="model_choice").set_value("tiny-roberta").run()
    _ok(at)
    assert at.query_params == {"model": "tiny-roberta"}
    at.sidebar.selectbox(key="data_source").set_value("glue").run()
    at.sidebar.selectbox(key="data_task").set_value("sst-2").run()
    _ok(at)
    # the default GLUE folder is left out; the task is always said with its source
    assert at.query_params == {"model": "tiny-roberta", "source": "glue", "task": "sst-2"}
    at.sidebar.selectbox(key="data_source").set_value("demo").run()
    _ok(at)
    assert at.query_params == {"model": "tiny-roberta"}
    # a model typed under "other" goes in the address as typed, and comes back as typed in a new session
    at.sidebar.selectbox(key="model_choice").set_value(OTHER_MODEL).run()
    at.sidebar.text_input(key="model_custom").input("tiny-bert").run()
    _ok(at)
    assert at.query_params["model"] == "tiny-bert"
    again = _open(**at.query_params)
    _ok(again)
    assert again.sidebar.selectbox(key="model_choice").value == "tiny-bert"


def test_an_address_the_sidebar_cannot_use_is_said_and_changes_nothing_else(env):
    at = _open(source="nowhere", task="NOPE", device="tpu", model="tiny-roberta", glue="  ")
    _ok(at)
    said = _said(at)
    assert len(said) == 1, said
    for part in ("source 'nowhere': not one of demo, glue, hf, csv", "task 'NOPE'", "device 'tpu'", "glue: empty"):
        assert part in said[0], said
    assert at.sidebar.selectbox(key="data_source").value == "demo"
    assert at.sidebar.selectbox(key="model_choice").value == "tiny-roberta"  # what it got right is kept
    assert not _errors(at)
    assert at.query_params == {"model": "tiny-roberta"}  # the rest is gone from the address
    at.run()
    assert not _said(at)  # said once, on the run that read the address


def test_a_model_the_address_names_that_does_not_load_is_an_error_in_the_sidebar(env):
    at = _open(model="no/such-model-anywhere")
    _ok(at)
    assert at.sidebar.selectbox(key="model_choice").value == OTHER_MODEL
    assert at.sidebar.text_input(key="model_custom").value == "no/such-model-anywhere"
    assert at.sidebar.error and "no/such-model-anywhere" in at.sidebar.error[0].value


def test_a_page_s_settings_are_in_its_address_too(env):
    """A training page's and the explorer's settings are bound to the address (pages/_fields.py KEPT): a link or a
    reload opens them; one a widget cannot take is dropped, a number out of range is said, and nothing else moves."""
    at = AppTest.from_file(str(_ROOT / "app.py"), default_timeout=180)
    for k, v in dict(pr_rate="0.5", pr_epochs="5", pr_layers=["layer 1"], pr_precision="bogus").items():
        at.query_params[k] = v
    at.switch_page("pages/prior.py")
    at.run()
    _ok(at)
    assert at.slider(key="pr_rate").value == 0.5 and at.number_input(key="pr_epochs").value == 5
    assert at.multiselect(key="pr_layers").value == [1]
    assert at.selectbox(key="pr_precision").value == "auto"  # not an option: the default
    assert any("4 runs × 5 epochs" in c.value for c in at.caption)
    bad = AppTest.from_file(str(_ROOT / "app.py"), default_timeout=180)
    bad.query_params["pr_train"] = "100000"
    bad.switch_page("pages/prior.py")
    bad.run()
    assert any("Training examples: between 1 and" in e.value for e in bad.error)  # said, Start disabled
    assert bad.button(key="pr_start").disabled
    ex = AppTest.from_file(str(_ROOT / "app.py"), default_timeout=180)
    for k, v in dict(ex_p="0.6", ex_q="0.2", ex_seed="7").items():
        ex.query_params[k] = v
    ex.switch_page("pages/explorer.py")
    ex.run()
    _ok(ex)
    assert (ex.slider(key="ex_p").value, ex.slider(key="ex_q").value, ex.number_input(key="ex_seed").value) == \
        (0.6, 0.2, 7)
