"""The command line given hostile or careless arguments: one line `error: ...`, exit 2, nothing written, nothing
lost; every argument checked before any work (and before torch is imported, so argument errors answer at once)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from addrop.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "tiny-bert", "--device", "cpu"]
SMALL = ["--epochs", "1", "--train-size", "16", "--dev-size", "8", "--batch-size", "8"]


def _one_error(capsys, argv, match):
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (argv, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def a_file(tmp_path) -> Path:
    f = tmp_path / "a-file"
    f.write_text("keep me")
    return f


# ---------------------------------------------------------------------------------------------- output paths

def test_attribute_creates_a_missing_out_folder(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "a.npz"
    assert main(["attribute", *TINY, "--text", "a fine film", "--out", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize("cmd", [
    ["attribute", *TINY, "--text", "a fine film", "--out", "{f}/a.npz"],
    ["bench", *TINY, "--quick", "--out", "{f}/b.json"],
    ["train", *TINY, *SMALL, "--out", "{f}"],
    ["train", *TINY, *SMALL, "--out", "{f}/runs"],
    ["compare", *TINY, *SMALL, "--seeds", "0", "--out", "{f}"],
    ["prior", *TINY, *SMALL, "--out", "{f}/x"],
    ["sweep", *TINY, *SMALL, "--p", "0.1", "--q", "0.1", "--out", "{f}"],
])
def test_out_through_a_file_is_refused_before_any_work(tmp_path, capsys, a_file, monkeypatch, cmd):
    import addrop.experiments.bench.measure as measure

    monkeypatch.setattr(measure, "run_bench", lambda *a, **k: pytest.fail("the benchmark ran"))
    argv = [c.replace("{f}", str(a_file)) for c in cmd]
    _one_error(capsys, argv, "a-file")
    assert a_file.read_text() == "keep me" and _files(tmp_path) == ["a-file"]


def test_attribute_out_on_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "d.npz").mkdir()
    _one_error(capsys, ["attribute", *TINY, "--text", "x", "--out", str(tmp_path / "d.npz")], "is a folder")


def test_bench_result_goes_into_a_missing_folder(tmp_path, capsys, monkeypatch):
    """The benchmark's record is never lost at the end: the folder of --out is made when it is written."""
    import addrop.experiments.bench.measure as measure
    import addrop.experiments.bench.report as report

    monkeypatch.setattr(measure, "run_bench", lambda *a, **k: {"seconds": 1.0, "fake": True})
    monkeypatch.setattr(report, "format_table", lambda rec: "table")
    out = tmp_path / "nodir" / "b.json"
    assert main(["bench", *TINY, "--quick", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["fake"] is True


def test_bench_show_of_a_record_with_nulls(tmp_path, capsys):
    rec = json.loads((ROOT / "docs" / "bench-minilm-cpu-2t.json").read_text())

    def nulls(v):
        return {k: nulls(x) for k, x in v.items()} if isinstance(v, dict) else None

    path = tmp_path / "nulls.json"
    path.write_text(json.dumps(nulls(rec)))
    code = main(["bench", "--show", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert (code == 0 and "n/a" in out) or (code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1)
    os.mkfifo(tmp_path / "fifo.json")  # never opened for reading (that would block)
    _one_error(capsys, ["bench", "--show", str(tmp_path / "fifo.json")], "not a plain file")


# ----------------------------------------------------------------------------------------- numbers and sizes

@pytest.mark.parametrize("extra,match", [
    (["--num-labels", "0"], "--num-labels must be an integer from 1"),
    (["--seed", str(2**64)], "seed must be an integer from 0 to"),
    (["--device", "xpu"], "unknown device 'xpu'"),
    (["--device", "meta"], "device 'meta' holds no data"),
    (["--method", "iga", "--steps", str(10**8)], "IGA steps 100000000 is more than 1000"),
    (["--text", "\u200b\u200c\u2060\ufeff"], "the text is empty"),
])
def test_attribute_numbers_out_of_range(tmp_path, capsys, extra, match):
    out = tmp_path / "a.npz"
    argv = ["attribute", "--model", "tiny-bert", "--text", "a fine film", "--out", str(out), *extra]
    _one_error(capsys, argv, match)
    assert not out.exists()


def test_meta_device_is_not_reported_as_an_unsupported_model(capsys, tmp_path):
    out = _one_error(capsys, ["attribute", "--model", "tiny-bert", "--text", "x", "--device", "meta", "--out",
                              str(tmp_path / "a.npz")], "meta")
    assert "route its attention" not in out


def test_max_length_beyond_the_model_is_capped_and_said(tmp_path, capsys):
    assert main(["train", *TINY, *SMALL, "--max-length", "1000", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "note: max length 1000 is more than this model takes: capped to 512 tokens" in err
    (cfg,) = [json.loads(p.read_text()) for p in tmp_path.glob("*/config.json")]
    assert cfg["max_length"] == 512


def test_runs_go_where_the_app_reads_them_without_out(tmp_path, monkeypatch):
    monkeypatch.setenv("ADDROP_RUNS_DIR", str(tmp_path / "r"))
    assert main(["train", *TINY, *SMALL, "--name", "here"]) == 0
    assert (tmp_path / "r" / "here" / "status.json").is_file()


def test_keep_best_without_save_weights_says_nothing_is_written(tmp_path, capsys):
    assert main(["train", *TINY, *SMALL, "--keep-best", "--out", str(tmp_path)]) == 0
    assert "without --save-weights no weights are written" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/*.safetensors"))


def test_a_fixed_target_class_is_given_with_label(tmp_path, capsys):
    small = [a if a != "1" else "2" for a in SMALL]  # two epochs: cross-tuning masks the second
    assert main(["train", *TINY, *small, "--strategy", "addrop", "--target", "label", "--label", "1",
                 "--out", str(tmp_path)]) == 0
    (cfg,) = [json.loads(p.read_text()) for p in tmp_path.glob("*/config.json")]
    assert cfg["attribution"]["target"] == "label" and cfg["attribution"]["label"] == 1
    from addrop.engine.hf_trainer import ADDropConfig
    from addrop.errors import UserError

    with pytest.raises(UserError, match="ADDropConfig attributes target 'pseudo' .* or 'gold'"):
        ADDropConfig(target="label")


# --------------------------------------------------------------------------------- validated before the work

@pytest.mark.parametrize("cmd,match", [
    (["compare", "--seeds", "0,0"], "the seeds must differ"),
    (["compare", "--layers", "9"], "layer 9 is out of range: this model has 2 layers"),
    (["prior", "--layers", "9"], "layer 9 is out of range: this model has 2 layers"),
    (["sweep", "--layers", "9", "--p", "0.1", "--q", "0.1"], "layer 9 is out of range"),
    (["sweep", "--metric", "bleu", "--p", "0.1", "--q", "0.1"], "unknown --metric 'bleu'"),
    (["sweep", "--p", "0.1:inf:0.1"], "must be finite numbers"),
    (["sweep", "--p", "nan"], "finite number"),
    (["sweep", "--p", "0.001:0.999:0.001", "--q", "0.001:0.999:0.001"], "pass --max-cells 998002"),
    (["sweep", "--seeds", "0:100000000"], "use at most 10000"),
    (["compare", "--seeds", f"0,{2**64}"], "64 bits"),
])
def test_nothing_is_trained_or_written_before_a_bad_setting_is_found(tmp_path, capsys, monkeypatch, cmd, match):
    import addrop.engine.training as training

    monkeypatch.setattr(training, "_loop", lambda *a, **k: pytest.fail("a run was trained"))
    out = tmp_path / "runs"
    argv = [cmd[0], *TINY, *SMALL, *cmd[1:], "--out", str(out)]
    _one_error(capsys, argv, match)
    assert _files(out) == []


def test_argument_errors_answer_before_torch_is_imported(tmp_path):
    """Each bad argument is refused by the config dataclasses and the path checks alone: torch (seconds to import)
    is never loaded, so the answer comes at once."""
    script = (
        "import sys, time\n"
        "from addrop.cli import main\n"
        "argvs = [['sweep', '--p', '0.1:inf:0.1'], ['attribute', '--text', 'x', '--out', 'a.npz', '--p', '2'],\n"
        "         ['attribute', '--text', 'x', '--out', 'a.npz', '--device', 'xpu'],\n"
        "         ['bench', '--out', 'b.txt'], ['compare', '--seeds', '0,0'], ['train', '--epochs', '0'],\n"
        "         ['prior', '--rate', '1.5'], ['sweep', '--seeds', '5:1']]\n"
        "for argv in argvs:\n"
        "    t = time.perf_counter()\n"
        "    rc = main(argv)\n"
        "    print(rc, round(time.perf_counter() - t, 3), 'torch' in sys.modules, flush=True)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert len(rows) == 8 and all(r[0] == "2" for r in rows), (done.stdout, done.stderr)
    assert all(r[2] == "False" for r in rows), done.stdout  # torch never imported
    assert all(float(r[1]) < 1.0 for r in rows), done.stdout
    assert len(done.stderr.strip().splitlines()) == 8 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, want", [
    (["train", "--method", "xyz"], "python -m addrop train: error: argument --method/--attribution: invalid choice"),
    (["prior", "--bogus", "1"], "python -m addrop prior: error: unrecognized arguments: --bogus 1"),
    ([], "python -m addrop: error: the following arguments are required: command"),
])
def test_a_wrong_argument_is_one_line_and_a_pointer_to_help(capsys, argv, want):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(want) and "usage:" not in err, err
    assert err.splitlines()[1].startswith("(see: python -m addrop") and err.rstrip().endswith("--help)")
    assert len(err.splitlines()) == 2


def test_help_still_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0 and "usage: python -m addrop train" in capsys.readouterr().out
