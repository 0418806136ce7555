"""Data that misleads instead of failing: missing and huge labels, a regression task read from a CSV, a file with
another separator, text of invisible characters, the upload cap. Checks in engine/data/table.py (load_csv,
check_separator, display_name), engine/data/__init__.py (load_data) and engine/tasks.py (is_blank)."""
from __future__ import annotations

import pytest

from addrop.engine import data as D
from addrop.engine.batching import encode_example
from addrop.engine.data.table import UPLOADS_DIR, display_name
from addrop.engine.tasks import is_blank
from addrop.errors import UserError


def _csv(tmp_path, labels, name="d.csv", texts=None):
    texts = texts or [f"sentence number {i}" for i in range(len(labels))]
    p = tmp_path / name
    p.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in zip(texts, labels)), encoding="utf-8")
    return p


def _error(fn, match):
    with pytest.raises(UserError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("bad", ["NaN", "nan", "NA", "null", "inf", "-Infinity"])
def test_missing_or_non_finite_labels_are_not_a_class(tmp_path, bad):
    p = _csv(tmp_path, ["0", "1"] * 5 + [bad])
    _error(lambda: D.load_csv(p), rf"1 rows have a missing or non-finite 'label' such as '{bad}' \(first at line 12\)")


def test_empty_and_invisible_labels_are_empty(tmp_path):
    p = _csv(tmp_path, ["0", "1"] * 5 + ["\u200b"])
    _error(lambda: D.load_csv(p), r"1 rows have an empty 'label' \(first at line 12\)")


def test_a_huge_integer_label_is_not_a_class(tmp_path):
    p = _csv(tmp_path, ["0", "1"] * 5 + ["1e30"])
    msg = _error(lambda: D.load_csv(p), r"line 12: label '1e30' is not a class")
    assert "regression" in msg


def test_a_regression_task_from_a_csv_is_regression(tmp_path):
    """--task sts-b --csv: the scores are a regression target, scored by Pearson/Spearman, even when every
    score happens to be a whole number."""
    p = _csv(tmp_path, ["0", "1", "2", "3", "4", "5"] * 3)
    spec, train, dev = D.load_data("sts-b", "auto", csv=p)
    assert spec.is_regression and spec.num_labels == 1 and spec.primary_metric == "pearson"
    assert all(isinstance(y, float) for y in train.labels + dev.labels)
    spec, _, _ = D.load_data("sst-2", "auto", csv=_csv(tmp_path, ["0", "1"] * 6, name="c.csv"))
    assert not spec.is_regression and spec.num_labels == 2


@pytest.mark.parametrize("sep", [";", "|", "\t"])
def test_another_separator_is_named_not_read_as_one_column(tmp_path, sep):
    rows = "".join(f"sentence {i}{sep}{i % 2}\n" for i in range(40))
    p = tmp_path / "semi.csv"
    p.write_text(f"text{sep}label\n" + rows)
    msg = _error(lambda: D.load_csv(p), "it looks separated by")
    assert "one column" in msg


def test_the_label_column_cannot_be_the_text_column(tmp_path):
    p = _csv(tmp_path, ["0", "1"] * 5)
    _error(lambda: D.load_csv(p, text_col="text", label_col="text"), "also a text column")


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d", "\ufeff \u2060", "\u00ad", " \t"])
def test_invisible_text_is_empty(tmp_path, text, load):
    assert is_blank(text) and not is_blank("a\u200b")
    p = _csv(tmp_path, ["0", "1"] * 5, texts=[f"s{i}" for i in range(9)] + [text])
    _error(lambda: D.load_csv(p), r"1 rows have an empty 'text' \(first at line 11\)")
    _error(lambda: encode_example(load("tiny-bert"), text), "the text is empty")


def test_the_size_cap_is_said_as_the_readme_says(tmp_path):
    p = tmp_path / "big.csv"
    p.write_bytes(b"text,label\n" + b"x,1\n" * (D.DEFAULT_MAX_BYTES // 4 + 10))
    msg = _error(lambda: D.load_csv(p), "larger than the 20 MB limit")
    assert "21" not in msg.replace(str(p), "")  # the limit (20 MiB) said as the README says it, not as 21 MB; the
    # file's own path may hold a 21 (pytest's numbered folders: pytest-210 made this fail once)


def test_messages_name_the_uploaded_file_not_the_server_copy(tmp_path):
    up = tmp_path / UPLOADS_DIR / "0123456789ab"
    up.mkdir(parents=True)
    p = up / "my-reviews.csv"
    p.write_text("text;label\n" + "".join(f"s{i};{i % 2}\n" for i in range(40)))
    assert display_name(p) == "the uploaded file my-reviews.csv"
    msg = _error(lambda: D.load_csv(p), "the uploaded file my-reviews.csv has one column")
    assert UPLOADS_DIR not in msg and "0123456789ab" not in msg


def test_a_label_column_of_free_text_is_named_as_such(tmp_path):
    """It used to say 'too few rows: class "note 0 from reviewer" has 1 in train'."""
    p = _csv(tmp_path, [f"note {i} from reviewer" for i in range(40)])
    with pytest.raises(UserError, match=r"the label column 'label' has 40 different values in 40 rows, such as "
                                        r"'note 0 from reviewer': it holds text, not classes"):
        D.load_csv(p)
    D.load_csv(_csv(tmp_path, ["pos", "neg", "neutral"] * 10, name="three.csv"))  # a few named classes: fine


def test_an_unclosed_quote_names_its_line(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("text,label\n" + "".join(f"row {i},1\n" for i in range(5)) + '"broken row,0\nrow x,1\n')
    with pytest.raises(UserError, match=r"q.csv line 7: a quote \(\"\) opens a text that is never closed"):
        D.load_csv(p)
    assert p.read_text().splitlines()[6].startswith('"broken')  # line 7 is the one with the quote
