import json
import os
import re
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import pandas as pd
import pytest
import torch

from addrop.errors import UserError
from addrop.engine.runs import RunWriter, atomic_write_json, atomic_write_text, list_runs, load_run, load_weights, metrics_frame, read_metrics, runs_table, safe_child, safe_run_id

CFG = {"task": "demo", "model": "tiny", "strategy": "addrop", "seed": 0,
       "attribution": {"method": "ga", "p": 0.3, "q": 0.3}}


# ------------------------------------------------------------------------------------------------ names

@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", "..", "", "   ", "a\\b", "x\x00y", ".hidden",
                                 "C:evil", "a..b", "x" * 81, "semi;colon"])
def test_safe_run_id_rejects(bad):
    with pytest.raises(UserError) as e:
        safe_run_id(bad)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("good", ["run1", "sst2-addrop_p0.3", "A.b-c_d", "x" * 80])
def test_safe_run_id_accepts(good):
    assert safe_run_id(good) == good


def test_safe_run_id_spaces_and_generated():
    assert safe_run_id("  my run  1 ") == "my-run-1"
    rid = safe_run_id(None)
    assert re.fullmatch(r"run-\d{8}-\d{6}-[0-9a-f]{4}", rid)
    assert safe_run_id(None, prefix="prior").startswith("prior-")
    assert len(safe_run_id(None, prefix="p" * 80)) <= 80


def test_safe_child(tmp_path):
    assert safe_child(tmp_path, "a.html") == (tmp_path / "a.html").resolve()
    assert safe_child(tmp_path, "grp/r1") == (tmp_path / "grp" / "r1").resolve()
    for bad, match in [("../x", "points outside"), ("/etc/passwd", "not an absolute path"), ("..", "points outside"),
                       (".", "points outside"), ("", "empty"), ("a/../../b", "points outside"), ("x\x00", "NUL")]:
        with pytest.raises(UserError, match=match):
            safe_child(tmp_path, bad)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(UserError, match="points outside"):
        safe_child(tmp_path, "link/file")


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    atomic_write_json(tmp_path / "b.json", {"x": 1, "t": (1, 2), "path": tmp_path})
    atomic_write_text(tmp_path / "a.txt", "again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]
    assert (tmp_path / "a.txt").read_text() == "again"
    assert json.loads((tmp_path / "b.json").read_text())["t"] == [1, 2]


def test_atomic_write_failure_cleans_up(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "d", "x")  # os.replace onto a folder fails after the temp file exists
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


# ---------------------------------------------------------------------------------------------- writer

def _status(path):
    return json.loads((path / "status.json").read_text())


def test_writer_lifecycle_finished(tmp_path):
    w = RunWriter(tmp_path, "r1", CFG)
    st = _status(w.path)
    assert st["status"] == "running" and st["pid"] == os.getpid() and st["host"] == socket.gethostname()
    assert load_run(w.path).status == "running"
    w.log_epoch({"epoch": 1, "train_loss": 0.9, "dev_loss": 0.8, "dev_accuracy": 0.5})
    w.log_epoch({"epoch": 2, "train_loss": 0.7, "dev_loss": 0.6, "dev_accuracy": 0.75})
    w.finish("finished", summary={"best_dev_accuracy": 0.75})
    r = load_run(w.path)
    assert r.id == "r1" and r.status == "finished" and r.config == CFG
    assert [m["epoch"] for m in r.metrics] == [1, 2]
    assert r.summary == {"best_dev_accuracy": 0.75} and r.started and r.updated
    assert not any(p.name.endswith(".tmp") for p in w.path.iterdir())


def test_writer_exists(tmp_path):
    RunWriter(tmp_path, "r1", CFG).finish()
    with pytest.raises(UserError, match="already exists"):
        RunWriter(tmp_path, "r1", CFG)
    RunWriter(tmp_path, "r1", CFG, exist_ok=True).finish("stopped")
    assert load_run(tmp_path / "r1").status == "stopped"


def test_writer_rejects_bad_id(tmp_path):
    with pytest.raises(UserError, match="not a path"):
        RunWriter(tmp_path, "../escape", CFG)
    assert not (tmp_path.parent / "escape").exists()


def test_writer_context_manager(tmp_path):
    with RunWriter(tmp_path, "ok", CFG) as w:
        w.log_epoch({"epoch": 1})
    assert load_run(tmp_path / "ok").status == "finished"

    with RunWriter(tmp_path, "stopped", CFG) as w:
        w.finish("stopped", reason="stop requested")
    r = load_run(tmp_path / "stopped")
    assert r.status == "stopped" and r.reason == "stop requested"

    with pytest.raises(UserError, match="no column 'label'"):
        with RunWriter(tmp_path, "bad-input", CFG):
            raise UserError("the CSV has no column 'label'\n(seen: text)")
    r = load_run(tmp_path / "bad-input")
    assert r.status == "failed" and r.reason == "the CSV has no column 'label' (seen: text)"

    with pytest.raises(ZeroDivisionError, match="division by zero"):
        with RunWriter(tmp_path, "bug", CFG):
            1 / 0
    r = load_run(tmp_path / "bug")
    assert r.status == "failed" and r.reason.startswith("ZeroDivisionError:")


def test_finish_validates_status(tmp_path):
    w = RunWriter(tmp_path, "r", CFG)
    with pytest.raises(ValueError, match="final status must be one of"):
        w.finish("done")


def test_trailing_partial_line_ignored(tmp_path):
    w = RunWriter(tmp_path, "r", CFG)
    w.log_epoch({"epoch": 1, "train_loss": 1.0})
    with open(w.path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_lo')
    r = load_run(w.path)
    assert [m["epoch"] for m in r.metrics] == [1]
    # resuming onto the cut file starts the next record on a fresh line
    w2 = RunWriter(tmp_path, "r", CFG, exist_ok=True)
    w2.log_epoch({"epoch": 2, "train_loss": 0.5})
    assert [m["epoch"] for m in read_metrics(w.path / "metrics.jsonl")] == [1, 2]


def test_metrics_garbage_lines_skipped(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"epoch": 1}\nnot json\n[1, 2]\n\n\xff\xfe\n{"epoch": 2}')
    assert [m["epoch"] for m in read_metrics(p)] == [1, 2]  # a complete final object without newline is kept
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_corrupt_and_partial_folders_still_list(tmp_path):
    RunWriter(tmp_path, "good", CFG).finish()
    bad = tmp_path / "badcfg"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "status.json").write_text(json.dumps({"status": "finished"}))
    nostatus = tmp_path / "nostatus"
    nostatus.mkdir()
    (nostatus / "config.json").write_text(json.dumps(CFG))
    badstatus = tmp_path / "badstatus"
    badstatus.mkdir()
    (badstatus / "config.json").write_text(json.dumps(CFG))
    (badstatus / "status.json").write_text('{"status": "runn')
    (tmp_path / "empty-dir").mkdir()  # a folder being created: not a run, not an error
    (tmp_path / "stray.txt").write_text("x")

    runs = {r.id: r for r in list_runs(tmp_path)}
    assert set(runs) == {"good", "badcfg", "nostatus", "badstatus"}
    assert runs["good"].status == "finished"
    assert runs["badcfg"].status == "corrupt" and "config.json" in runs["badcfg"].reason
    assert runs["nostatus"].status == "unknown" and "status.json" in runs["nostatus"].reason
    assert runs["badstatus"].status == "corrupt"
    table = runs_table(list(runs.values()))
    assert len(table) == 4


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_incomplete_detection(tmp_path):
    w = RunWriter(tmp_path, "crashed", CFG)
    w.log_epoch({"epoch": 1})
    st = _status(w.path)
    st["pid"] = _dead_pid()
    atomic_write_json(w.path / "status.json", st)
    r = load_run(w.path)
    assert r.status == "incomplete" and "1 epoch" in r.reason

    # another host: alive while recently updated, incomplete once stale
    st["host"] = "some-other-host"
    st["updated"] = datetime.now().astimezone().isoformat(timespec="seconds")
    atomic_write_json(w.path / "status.json", st)
    assert load_run(w.path).status == "running"
    st["updated"] = (datetime.now().astimezone() - timedelta(hours=2)).isoformat(timespec="seconds")
    atomic_write_json(w.path / "status.json", st)
    assert load_run(w.path).status == "incomplete"

    # a finished run with a dead pid stays finished
    w2 = RunWriter(tmp_path, "done", CFG)
    w2.finish()
    st2 = _status(w2.path)
    st2["pid"] = _dead_pid()
    atomic_write_json(w2.path / "status.json", st2)
    assert load_run(w2.path).status == "finished"


def test_weights_round_trip(tmp_path):
    lin = torch.nn.Linear(3, 2)
    emb = torch.nn.Embedding(4, 3)
    sd = {"lin.weight": lin.weight, "lin.bias": lin.bias, "emb.weight": emb.weight,
          "tied.weight": emb.weight,  # a shared tensor, as tied embeddings are
          "view": lin.weight.t()}  # non-contiguous
    w = RunWriter(tmp_path, "w", CFG)
    path = w.save_weights(sd)
    w.finish()
    assert path.name == "model.safetensors" and load_run(w.path).has_weights
    for src in (w.path, path):
        got = load_weights(src)
        assert set(got) == set(sd)
        for k, v in sd.items():
            assert torch.equal(got[k], v.detach())
    assert not any(p.name.endswith(".tmp") for p in w.path.iterdir())


def test_load_weights_errors(tmp_path):
    with pytest.raises(UserError, match="no saved weights"):
        load_weights(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="safetensors"):
        load_weights(tmp_path / "model.bin")
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="unreadable"):
        load_weights(tmp_path / "model.safetensors")


def test_list_runs_recursive_group(tmp_path):
    RunWriter(tmp_path, "top", CFG).finish()
    group = tmp_path / "prior-1"
    for s in ("none", "drop-random", "drop-low", "drop-high"):
        w = RunWriter(group, s, {**CFG, "strategy": s})
        w.log_epoch({"epoch": 1, "train_loss": 0.5, "dev": {"accuracy": 0.6}})
        w.finish()
    (group / "curves.html").write_text("<html></html>")
    runs = list_runs(tmp_path)
    assert len(runs) == 5
    assert {r.group for r in runs} == {None, "prior-1"}
    assert runs[0].id == "top"  # oldest first
    assert [r.id for r in list_runs(tmp_path, recursive=False)] == ["top"]
    assert len(list_runs(group)) == 4
    assert list_runs(tmp_path / "missing") == []


def test_runs_table_columns(tmp_path):
    w = RunWriter(tmp_path, "a", CFG)
    w.log_epoch({"epoch": 1, "train_loss": 0.9, "dev_loss": 0.8, "dev_accuracy": 0.5})
    w.log_epoch({"epoch": 2, "train_loss": 0.7, "dev_loss": 0.6, "dev_accuracy": 0.75, "dev_f1": 0.7})
    w.finish()
    RunWriter(tmp_path, "b", {**CFG, "strategy": "vanilla"}).finish()
    RunWriter(tmp_path, "c", {**CFG, "strategy": "drop-low"}).finish()
    df = runs_table(list_runs(tmp_path))
    for col in ("id", "strategy", "status", "epochs", "train_loss", "dev_loss", "dev_accuracy", "dev_f1"):
        assert col in df.columns
    row = df.set_index("id").loc["a"]
    assert row["epochs"] == 2 and row["train_loss"] == 0.7 and row["dev_accuracy"] == 0.75
    assert row["status"] == "finished" and row["strategy"] == "addrop" and row["method"] == "ga"
    rowb = df.set_index("id").loc["b"]
    assert rowb["epochs"] == 0 and pd.isna(rowb["method"])
    rowc = df.set_index("id").loc["c"]  # prior experiment: gold GA, fixed rate p, no q
    assert rowc["method"] == "ga (gold)" and rowc["p"] == CFG["attribution"]["p"] and pd.isna(rowc["q"])
    assert list(runs_table([]).columns)[:3] == ["id", "group", "task"]
    mf = metrics_frame(list_runs(tmp_path))
    assert len(mf) == 2 and set(mf["run"]) == {"a"}
