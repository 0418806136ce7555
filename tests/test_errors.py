"""Text a person reads (addrop/errors.py): one-line errors, counted nouns and listed items."""
from addrop.errors import UserError, counted, listed, one_line


def test_counted_agrees_with_its_number():
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert counted(1, "kept checkpoint") == "1 kept checkpoint"
    assert counted(3, "kept checkpoint") == "3 kept checkpoints"
    assert counted(2, "child", "children") == "2 children" and counted(1, "child", "children") == "1 child"


def test_listed_joins_as_a_sentence_does():
    assert [listed(x) for x in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]
    assert listed(n for n in (1, 2)) == "1 and 2"


def test_one_line_keeps_a_user_error_and_names_any_other():
    assert one_line(UserError("bad\n  input")) == "bad input"
    assert one_line(ValueError("x")) == "ValueError: x" and one_line(KeyError()) == "KeyError"
