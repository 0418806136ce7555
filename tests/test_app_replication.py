"""The replication page through AppTest: it says how to start a study where there is none, and shows the report
computed from a tiny study's records (the same tables as `replicate --report`, and its figures)."""
from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from addrop.experiments.replication.notes import SHORT_LABELS, cross_tuning_notes, intervals_note
from addrop.experiments.replication.plan import ReplicationPlan
from addrop.experiments.replication.report import markdown, study_report
from addrop.experiments.replication.runner import run_study
from tests.experiments.test_replication import TINY, scramble

from tests.test_app import env  # noqa: E402,F401 (the app's environment fixture)

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/replication.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_replication_page_shows_the_report_of_the_records(env):
    runs = env
    at = _page()  # no study of one's own: the project's committed study opens
    assert at.text_input(key="rp_folder").value.endswith("docs/replication-runs")
    assert any("This project's study" in c.value for c in at.caption)
    said = [i.value for i in at.info if i.value.startswith("**The answer.**")]  # the study is complete
    assert len(said) == 1 and "no clear difference in any setting (cola, mrpc, sts-b, sst-2-16, sst-2-64)" in said[0]
    shipped = study_report(at.text_input(key="rp_folder").value)
    assert intervals_note(shipped) in said[0]  # every interval that excludes 0 (an ablation's too), out of how many
    on_page = [i.value for i in at.info] + [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert sum(t.count(intervals_note(shipped)) for t in on_page) == 1  # in the answer, not again under the table
    for d in shipped["paired"]:
        named = f"{d['arm']} on {d['setting']} at {SHORT_LABELS[d['which']]}, "
        assert (named in said[0]) == (d["low"] is not None and (d["low"] > 0 or d["high"] < 0))
    notes = cross_tuning_notes(shipped)
    assert notes and all(n in [c.value for c in at.caption] for n in notes)  # under the Figure 4 scatter
    at.text_input(key="rp_folder").set_value(str(runs / "nothing-here")).run()
    assert any("No replication study" in i.value for i in at.info)
    study = runs / "replication"
    run_study(ReplicationPlan(json.loads(json.dumps(TINY)), device="cpu"), study)
    scramble(study)
    at = _page()
    shown = " ".join(m.value for m in at.markdown)
    rep = study_report(study)
    d = next(x for x in rep["paired"] if x["arm"] == "AD-DROP (GA)" and x["which"] == "best")
    assert d["mean"] != 0 and f"{d['mean']:+.4f}" in shown
    assert markdown(rep, page=True).split("\n", 1)[1].strip() in shown  # the same tables as report.md
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # main bars, paired differences, ablation bars, the cross-tuning scatter
    notes = cross_tuning_notes(rep)
    assert len(notes) == 1 and notes[0] in [c.value for c in at.caption]
    assert notes[0] not in shown and notes[0] in markdown(rep)  # once on the page (under the chart), in report.md
