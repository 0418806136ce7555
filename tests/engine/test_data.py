"""Tests for addrop/engine/data/: loaders (GLUE folder, demo, CSV), subsets, describe."""
from __future__ import annotations

import io
from collections import Counter

import pytest

from addrop.engine import data as D
from addrop.errors import UserError
from addrop.engine.tasks import Split


# ---------------------------------------------------------------------------------------------- GLUE
OFFICIAL = {"mrpc": (3668, 408), "sst-2": (67349, 872), "cola": (8551, 1043), "sts-b": (5749, 1500)}


@pytest.mark.parametrize("task", list(OFFICIAL))
def test_glue_counts(glue_dir, task):
    spec, train, dev = D.load_glue(task, glue_dir)
    assert (len(train), len(dev)) == OFFICIAL[task]
    assert spec.name == task
    assert all(isinstance(t, str) and t for t in train.texts[:50])
    assert (train.pairs is not None) == spec.has_pairs


def test_glue_label_balance(glue_dir):
    _, tr, dv = D.load_glue("mrpc", glue_dir)
    assert Counter(tr.labels) == {1: 2474, 0: 1194} and Counter(dv.labels) == {1: 279, 0: 129}
    assert tr.texts[0].startswith("Amrozi accused his brother")  # the BOM and header were handled
    _, tr, dv = D.load_glue("SST-2", glue_dir)
    assert Counter(tr.labels) == {0: 29780, 1: 37569} and Counter(dv.labels) == {0: 428, 1: 444}
    _, tr, dv = D.load_glue("cola", glue_dir)
    assert Counter(tr.labels) == {1: 6023, 0: 2528} and Counter(dv.labels) == {1: 721, 0: 322}
    spec, tr, dv = D.load_glue("stsb", glue_dir)
    assert spec.is_regression and tr.is_regression
    assert all(isinstance(v, float) and 0.0 <= v <= 5.0 for v in tr.labels + dv.labels)
    assert tr.pairs is not None and tr.texts[0] == "A plane is taking off."


def test_glue_env_var(glue_dir, monkeypatch):
    monkeypatch.setenv(D.GLUE_ENV, str(glue_dir))
    spec, tr, _ = D.load_data("mrpc")
    assert spec.name == "mrpc" and len(tr) == 3668


def _no_glue_beside(monkeypatch, tmp_path):
    """Neither ADDROP_GLUE_DIR nor shared/data/glue beside the project (a user's machine without the files)."""
    from addrop.engine.data import glue

    monkeypatch.delenv(D.GLUE_ENV, raising=False)
    monkeypatch.setattr(glue, "_PROJECT", tmp_path / "elsewhere" / "project")


def test_glue_errors(tmp_path, monkeypatch):
    _no_glue_beside(monkeypatch, tmp_path)
    with pytest.raises(UserError, match="ADDROP_GLUE_DIR"):
        D.load_glue("mrpc")
    with pytest.raises(UserError, match="does not exist"):
        D.load_glue("mrpc", tmp_path / "nope")
    with pytest.raises(UserError, match=r"missing .*MRPC.*train\.tsv"):
        D.load_glue("mrpc", tmp_path)
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(UserError, match=r"dev\.tsv line 2: label 'maybe'"):
        D.load_glue("rte", tmp_path)
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\n")
    with pytest.raises(UserError, match=r"dev\.tsv line 2 has 3 columns, expected 4"):
        D.load_glue("rte", tmp_path)
    (tmp_path / "RTE" / "dev.tsv").write_text("idx\tpremise\thypothesis\tlabel\n")
    with pytest.raises(UserError, match="no column 'sentence1'"):
        D.load_glue("rte", tmp_path)


def test_glue_string_labels_and_skips(tmp_path):
    (tmp_path / "RTE").mkdir()
    for f in ("train.tsv", "dev.tsv"):
        (tmp_path / "RTE" / f).write_text(
            'index\tsentence1\tsentence2\tlabel\n0\tHe said "hi.\tx\tnot_entailment\n1\tc\td\tentailment\n')
    spec, tr, _ = D.load_glue("rte", tmp_path)
    assert tr.labels == [1, 0] and tr.texts[0] == 'He said "hi.' and tr.pairs == ["x", "d"]
    # MNLI: malformed rows and rows without a gold label are skipped with a counted warning
    (tmp_path / "mnli").mkdir()  # found case-insensitively
    head = "\t".join(["index"] + [f"c{i}" for i in range(7)] + ["sentence1", "sentence2", "gold_label"])
    good = "\t".join(["0"] + ["x"] * 7 + ["premise", "hypothesis", "neutral"])
    nogold = "\t".join(["1"] + ["x"] * 7 + ["p", "h", "-"])
    (tmp_path / "mnli" / "train.tsv").write_text(f"{head}\n{good}\n{nogold}\nbroken\trow\n")
    (tmp_path / "mnli" / "dev_matched.tsv").write_text(f"{head}\n{good}\n")
    with pytest.warns(UserWarning, match="skipped 2"):
        spec, tr, dv = D.load_glue("mnli", tmp_path)
    assert tr.labels == [1] and dv.texts == ["premise"] and dv.pairs == ["hypothesis"]


def test_load_data_routing(monkeypatch, tmp_path):
    _no_glue_beside(monkeypatch, tmp_path)
    with pytest.raises(UserError, match="--data-dir.*ADDROP_GLUE_DIR.*'hf'"):
        D.load_data("sst2")
    # shared/data/glue beside the project is the default, as in the app and the benchmark
    from addrop.engine.data import glue

    beside = tmp_path / "shared" / "data" / "glue"
    beside.mkdir(parents=True)
    monkeypatch.setattr(glue, "_PROJECT", tmp_path / "project")
    assert D.default_glue_dir() == beside
    with pytest.raises(UserError, match=r"missing .*SST-2.*train\.tsv"):  # read from there
        D.load_data("sst2")
    with pytest.raises(UserError, match="unknown data source"):
        D.load_data("demo", source="web")
    with pytest.raises(UserError, match="needs a file"):
        D.load_data("csv")
    assert D.load_data("demo")[0].name == "demo"
    # the demo set is not in a GLUE folder: said, not silently loaded instead
    with pytest.raises(UserError, match="task demo is not in a GLUE folder: name a GLUE task .* or use source 'demo'"):
        D.load_data("demo", source="glue")
    with pytest.raises(UserError, match="source demo only provides task demo"):
        D.load_data("sst-2", source="demo")


def test_load_hf_without_datasets(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "datasets":
            raise ImportError("no datasets")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UserError, match="pip install datasets"):
        D.load_data("sst2", source="hf")


def test_load_hf_offline(monkeypatch):
    import sys
    import types

    mod = types.ModuleType("datasets")

    def load_dataset(*a, **k):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)\nmore")

    mod.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", mod)
    with pytest.raises(UserError, match=r"could not load nyu-mll/glue/mrpc.*ConnectionError.*Couldn't reach") as e:
        D.load_hf("mrpc")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- demo
def test_demo():
    spec, tr, dv = D.load_demo()
    assert spec.name == "demo" and spec.num_labels == 2 and tr.pairs is None
    assert len(tr) >= 300 and len(dv) >= 100
    for s in (tr, dv):
        c = Counter(s.labels)
        assert set(c) == {0, 1} and c[0] == c[1]
        assert len(set(s.texts)) == len(s)
        assert all(4 <= len(t.split()) <= 30 for t in s.texts)
    assert not set(tr.texts) & set(dv.texts)
    d = D.describe(spec, tr, dv)
    assert d["train"]["classes"] == {"negative": len(tr) // 2, "positive": len(tr) // 2}


# ---------------------------------------------------------------------------------------------- CSV
def _write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def _rows(n_per_class=10, classes=("neg", "pos")):
    lines = ["text,label"]
    for c in classes:
        lines += [f"a {c} sentence number {i},{c}" for i in range(n_per_class)]
    return "\n".join(lines) + "\n"


def test_csv_round_trip(tmp_path):
    p = _write(tmp_path, "d.csv", _rows(10))
    spec, tr, dv = D.load_csv(p, dev_fraction=0.2, seed=1)
    assert spec.label_names == ("neg", "pos") and spec.num_labels == 2 and not spec.is_regression
    assert len(tr) == 16 and len(dv) == 4 and Counter(dv.labels) == {0: 2, 1: 2}  # stratified
    assert sorted(tr.texts + dv.texts) == sorted(f"a {c} sentence number {i}" for c in ("neg", "pos")
                                                 for i in range(10))
    for s in (tr, dv):
        assert all(("pos" in t) == (y == 1) for t, y in zip(s.texts, s.labels))
    # seeded: the same seed gives the same split, another seed another one
    assert D.load_csv(p, seed=1)[2].texts == dv.texts
    assert D.load_csv(p, seed=2)[2].texts != dv.texts


def test_csv_buffer_tsv_and_pairs(tmp_path):
    text = "premise\thypothesis\tlabel\n" + "".join(f'p "{i}\th{i}\t{i % 2}\n' for i in range(12))
    buf = io.BytesIO(text.encode())
    buf.name = "upload.tsv"
    spec, tr, dv = D.load_csv(buf, text_col="premise", pair_col="hypothesis", label_col="label")
    assert spec.has_pairs and tr.pairs is not None and len(tr) + len(dv) == 12
    assert any(t.startswith('p "') for t in tr.texts)  # TSV: quotes are literal
    # sniffed from content when there is no extension
    spec2, tr2, _ = D.load_csv(text.encode(), text_col="premise", pair_col="hypothesis")
    assert len(tr2) == len(tr) and spec2.label_names == ("0", "1")


def test_csv_string_labels_sorted_and_given(tmp_path):
    p = _write(tmp_path, "d.csv", _rows(5, classes=("zebra", "apple", "mango")))
    spec, tr, dv = D.load_csv(p)
    assert spec.label_names == ("apple", "mango", "zebra") and spec.num_labels == 3
    for s in (tr, dv):
        assert all(spec.label_names[y] in t for t, y in zip(s.texts, s.labels))
    spec, tr, _ = D.load_csv(p, labels=["zebra", "mango", "apple", "kiwi"])
    assert spec.label_names == ("zebra", "mango", "apple", "kiwi") and spec.num_labels == 4
    with pytest.raises(UserError, match=r"label 'zebra' is not one of apple, mango"):
        D.load_csv(p, labels=["apple", "mango"])


def test_csv_integer_labels_mapped(tmp_path):
    p = _write(tmp_path, "stars.csv", "text,label\n" + "".join(f"t{i},{1 + i % 3}\n" for i in range(15)))
    spec, tr, dv = D.load_csv(p)
    assert spec.label_names == ("1", "2", "3") and set(tr.labels) == {0, 1, 2}
    assert not spec.is_regression


def test_csv_regression(tmp_path):
    p = _write(tmp_path, "r.csv", "text,score\n" + "".join(f"t{i},{i / 4}\n" for i in range(20)))
    spec, tr, dv = D.load_csv(p, label_col="score")
    assert spec.is_regression and spec.num_labels == 1 and spec.primary_metric == "pearson"
    assert all(isinstance(v, float) for v in tr.labels) and len(dv) == 4
    p2 = _write(tmp_path, "r2.csv", "text,score\n" + "".join(f"t{i},{i % 5}\n" for i in range(20)))
    assert not D.load_csv(p2, label_col="score")[0].is_regression
    assert D.load_csv(p2, label_col="score", regression=True)[0].is_regression
    p3 = _write(tmp_path, "r3.csv", "text,score\na,1.5\nb,x\nc,2\n")
    with pytest.raises(UserError, match="regression needs numeric labels.*'x'"):
        D.load_csv(p3, label_col="score", regression=True)


def test_csv_split_column(tmp_path):
    rows = ["text,label,split"] + [f"t{i},{i % 2},{'dev' if i >= 8 else 'train'}" for i in range(10)]
    p = _write(tmp_path, "s.csv", "\n".join(rows))
    _, tr, dv = D.load_csv(p)
    assert tr.texts == [f"t{i}" for i in range(8)] and dv.texts == ["t8", "t9"]
    p = _write(tmp_path, "s2.csv", "\n".join(rows[:-1] + ["t9,1,test"]))
    with pytest.raises(UserError, match="line 11: split 'test' must be train or dev"):
        D.load_csv(p)


@pytest.mark.parametrize("content,kwargs,match", [
    ("", {}, "is empty"),
    ("   \n", {}, "is empty"),
    ("text,label\n", {}, "no rows"),
    (b"text,label\n\xff\xfe bad,1\n", {}, "not UTF-8"),
    ("sentence,y\na,1\n", {}, r"no column 'text'; its columns are: sentence, y"),
    ("text,label\na,1\n,0\nb,1\n", {}, r"empty 'text' \(first at line 3\)"),
    ("text,label\na,1\nb,\n", {}, r"empty 'label'"),
    ("text,label\na,1\nb,1\nc,1\n", {}, "only one class"),
    ("text,label\na,1\nb,0\nc,1\n", {}, r"too few rows: class '0' has 1 in train"),
    ("text,label\na,1\nb,0\nc,1\nd,0\n", {}, r"too few rows: 4 train and 0 dev"),
    ("text,label\na,1\nb,0\nc,1\nd,0\n", {"labels": [0]}, r"label '1' is not one of 0"),
    ("text,label\na,1\nb,2\n", {"dev_fraction": 1.5}, "dev fraction"),
    ("text,label\n" + "x,1\n" * 100, {"max_bytes": 50}, "larger than"),
    ("text,label\na,x\nb,y\nc,x\nd,y\n", {}, "too few rows"),
    ("text,label\na, b,1\nc, d,0\n", {}, "more fields than the header"),
    ("text,label\na,1\nc, d,0\n", {}, r"could not be parsed as CSV.*Expected 2 fields in line 3"),
])
def test_csv_errors(tmp_path, content, kwargs, match):
    p = _write(tmp_path, "bad.csv", content)
    with pytest.raises(UserError, match=match) as e:
        D.load_csv(p, **kwargs)
    assert "\n" not in str(e.value)


def test_csv_too_few_for_dev(tmp_path):
    p = _write(tmp_path, "f.csv", "text,label,split\na,1,train\nb,0,train\nc,1,train\nd,0,train\n")
    with pytest.raises(UserError, match="0 dev"):
        D.load_csv(p)
    with pytest.raises(UserError, match="does not exist"):
        D.load_csv(tmp_path / "missing.csv")


def test_load_data_csv(tmp_path):
    p = _write(tmp_path, "d.csv", _rows(6).replace("text,label", "review,stars"))
    spec, tr, dv = D.load_data("csv", csv=p, text_col="review", label_col="stars")
    assert spec.name == "csv" and len(tr) + len(dv) == 12


# ---------------------------------------------------------------------------------------------- subsets
def _split(n=40, classes=2):
    return Split([f"t{i}" for i in range(n)], None, [i % classes for i in range(n)])


def test_subset():
    s = _split()
    assert D.subset(s, 100, 0) is s and D.subset(s, None, 0) is s
    a, b, c = D.subset(s, 10, 3), D.subset(s, 10, 3), D.subset(s, 10, 4)
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 10
    assert a.texts == sorted(a.texts, key=lambda t: int(t[1:]))  # file order kept
    with pytest.raises(UserError, match="subset size must be >= 1"):
        D.subset(s, 0, 0)


def test_k_shot():
    s = _split(40, 3)
    a = D.k_shot(s, 4, seed=1)
    assert Counter(a.labels) == {0: 4, 1: 4, 2: 4}
    assert D.k_shot(s, 4, seed=1).texts == a.texts and D.k_shot(s, 4, seed=2).texts != a.texts
    assert Counter(D.k_shot(s, 4, seed=1, label_names=["a", "b", "c"]).labels) == {0: 4, 1: 4, 2: 4}
    with pytest.raises(UserError, match=r"class 1 has only 13 .*shots <= 13"):
        D.k_shot(s, 14)
    with pytest.raises(UserError, match="regression"):
        D.k_shot(Split(["a", "b"], None, [0.5, 1.0]), 1)


def test_k_shot_missing_class():
    s = _split(10, 2)
    with pytest.raises(UserError, match="class 'c' has only 0"):
        D.k_shot(s, 1, label_names=["a", "b", "c"])


def test_hold_out_is_seeded_disjoint_and_complete():
    split = Split([f"t{i}" for i in range(20)], None, [i % 2 for i in range(20)])
    rest, held = D.hold_out(split, 5, seed=3)
    assert len(held) == 5 and len(rest) == 15 and not set(held.texts) & set(rest.texts)
    assert sorted(held.texts + rest.texts) == sorted(split.texts)
    assert D.hold_out(split, 5, seed=3)[1].texts == held.texts != D.hold_out(split, 5, seed=4)[1].texts
    with pytest.raises(UserError, match="hold out"):
        D.hold_out(split, 20)


def test_has_task_says_which_tasks_a_glue_folder_holds(tmp_path):
    from addrop.engine.data import has_task

    (tmp_path / "MRPC").mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / "MRPC" / name).write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
    (tmp_path / "CoLA").mkdir()
    (tmp_path / "CoLA" / "train.tsv").write_text("")  # no dev file: not loadable
    assert has_task(tmp_path, "mrpc") and not has_task(tmp_path, "cola") and not has_task(tmp_path, "rte")
    assert not has_task(tmp_path / "nowhere", "mrpc") and not has_task(tmp_path, "demo")
