"""Run folders built by an attacker or a careless user: links out of the runs folder, a FIFO, values out of range,
JSON nested 100,000 levels deep. The reader (addrop/engine/runs/files.py read_regular, reader.py) reads only
plain files inside the folder, never hangs and never raises; the tables and the pages built on it keep working."""
from __future__ import annotations

import json
import os
import threading

import pytest

from addrop.engine.runs import (NotAFile, is_plain_file, list_runs, load_run, metrics_frame, read_json, read_regular,
                                runs_table)
from addrop.engine.runs.names import parse_time

SECRET = "TOP-SECRET-OUTSIDE-THE-RUNS-FOLDER"


def _run(folder, config=None, status=None, metrics=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config if config is not None else {"strategy": "vanilla"}))
    (folder / "status.json").write_text(json.dumps(status or {"status": "finished"}))
    if metrics is not None:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return folder


def _everything_shown(records) -> str:
    """All a page could show or offer for download from these records."""
    return repr([(r.config, r.metrics, r.reason, r.status) for r in records]) + runs_table(records).to_csv() \
        + metrics_frame(records).to_csv()


def test_links_to_files_outside_the_runs_folder_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"strategy": SECRET, "seed": 1}))
    (outside / "secret.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 0.5, "note": SECRET}) + "\n")
    (outside / "secret.html").write_text(f"<html>{SECRET}</html>")
    root = tmp_path / "runs"
    run = _run(root / "grp" / "r1", metrics=[{"epoch": 1, "train_loss": 0.1}])
    for name, target in (("config.json", "secret.json"), ("metrics.jsonl", "secret.jsonl")):
        (run / name).unlink()
        (run / name).symlink_to(outside / target)
    (root / "grp" / "curves.html").symlink_to(outside / "secret.html")
    (root / "linked-run").symlink_to(run)  # a whole run folder by link: not listed twice, not followed

    recs = list_runs(root)
    assert [r.id for r in recs] == ["r1"]
    (rec,) = recs
    assert rec.status == "corrupt" and "symbolic link" in rec.reason
    assert rec.metrics == [] and rec.config == {}
    assert SECRET not in _everything_shown(recs)
    assert not is_plain_file(root / "grp" / "curves.html")  # the Runs page offers no download of it
    with pytest.raises(NotAFile, match="symbolic link"):
        read_regular(root / "grp" / "curves.html")


def test_a_fifo_named_metrics_jsonl_never_hangs_the_reader(tmp_path):
    run = _run(tmp_path / "runs" / "r1")
    os.mkfifo(run / "metrics.jsonl")
    os.mkfifo(run / "config.json.fifo")
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(recs=list_runs(tmp_path / "runs")), daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "list_runs blocked on a FIFO"
    (rec,) = out["recs"]
    assert rec.metrics == [] and rec.status == "finished"
    (run / "config.json").unlink()
    os.mkfifo(run / "config.json")
    assert read_json(run / "config.json")[1] == "config.json not read: it is not a plain file"
    assert load_run(run).status == "corrupt"


def test_values_out_of_range_are_read_as_unknown_not_raised(tmp_path):
    root = tmp_path / "runs"
    deep = "[" * 100_000 + "]" * 100_000
    _run(root / "a", status={"status": "running", "pid": 2**70, "started": "0001-01-01T00:00:00",
                             "updated": "0001-01-01T00:00:00+00:00", "host": None})
    a = root / "a"
    (a / "config.json").write_text('{"strategy": "vanilla", "deep": ' + deep + "}")
    (a / "metrics.jsonl").write_text(
        json.dumps({"epoch": "one", "train_loss": 1.0}) + "\n"
        + json.dumps({"epoch": 2, "train_loss": "high", "dev_accuracy": None, "dev_f1": 0.5, "seconds": 10**400}) + "\n"
        + "[" * 50_000 + "\n" + json.dumps({"epoch": 10**30}) + "\n")
    _run(root / "b", status={"status": "running", "pid": -5, "started": "9999-99-99"})
    _run(root / "c", status={"status": "finished", "pid": True, "started": 10**400})

    recs = {r.id: r for r in list_runs(root)}
    a, b = recs["a"], recs["b"]
    assert a.status == "corrupt" and "nested deeper" in a.reason  # the config is refused, not walked
    assert a.pid is None and a.started == "0001-01-01T00:00:00" and parse_time(a.started) is None
    assert a.metrics == [{"epoch": 2, "dev_f1": 0.5}]  # the string epoch, the nesting and epoch 10^30 are skipped
    assert b.pid is None and b.status in ("running", "incomplete")
    assert recs["c"].pid is None
    table = runs_table(list(recs.values()))
    assert len(table) == 3
    frame = metrics_frame(list(recs.values()))
    assert frame["epoch"].tolist() == [2]


def test_a_pid_no_process_can_have_makes_a_running_run_incomplete(tmp_path):
    import socket

    run = _run(tmp_path / "r", status={"status": "running", "pid": 2**40, "host": socket.gethostname()})
    rec = load_run(run)
    assert rec.status == "incomplete" and "no process can have" in rec.reason


def test_pages_show_hostile_run_folders_without_an_exception(tmp_path, monkeypatch):
    """The Runs, Prior and AD-DROP vs vanilla pages list such folders and show nothing from outside."""
    from streamlit.testing.v1 import AppTest

    from pages import _compat

    _compat.patch_for_apptest(monkeypatch)
    outside = tmp_path / "secret.html"
    outside.write_text(SECRET)
    root = tmp_path / "runs"
    g = root / "compare-x"
    _run(g / "vanilla-s0", config={"strategy": "vanilla", "seed": 0, "deep": json.loads("[" * 60 + "]" * 60)},
         status={"status": "running", "pid": 2**70, "started": "0001-01-01T00:00:00"},
         metrics=[{"epoch": "x"}, {"epoch": 1, "train_loss": 0.5, "dev_loss": 0.4, "dev_accuracy": 0.5,
                                    "seconds": 1.0, "addrop_epoch": False}])
    run = _run(g / "addrop-s0", config={"strategy": "addrop", "seed": 0}, metrics=[])
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(outside)
    (g / "curves.html").symlink_to(outside)
    monkeypatch.setenv("ADDROP_RUNS_DIR", str(root))
    monkeypatch.setenv("ADDROP_DEFAULT_MODEL", "tiny-bert")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(str(os.path.join(os.path.dirname(__file__), "..", "..", "app.py")), default_timeout=180)
    at.run()
    for page in ("pages/runs.py", "pages/prior.py", "pages/compare.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        shown = " ".join(str(getattr(e, "value", "")) for e in at.main)
        assert SECRET not in shown, page
