"""The one error type a person is meant to read, and a count a person reads (`counted`).

`UserError` carries a message a user can act on. The CLI prints it on one line and exits 2; the app shows
it with `st.error`. Any other exception is a bug in addrop-studio and may show a traceback. `ArgumentParser`
reports a wrong command-line argument the same way, in one line.
"""
import argparse


class UserError(Exception):
    """Bad input or an unusable environment, explained in one line."""


class UnsupportedModelError(UserError):
    """The model does not route its attention through transformers' AttentionInterface."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for people: a UserError's own message, anything else prefixed by its type."""
    msg = " ".join(str(exc).split())
    if not isinstance(exc, UserError):
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return (msg or type(exc).__name__)[:1000]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with its noun in the number it takes: counted(1, "epoch") -> "1 epoch", counted(3, "epoch") -> "3 epochs"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def listed(items) -> str:
    """Items in a sentence: listed(["a"]) -> "a", listed(["a", "b", "c"]) -> "a, b and c" ("" for none)."""
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a wrong or missing argument is reported in one line with a pointer to
    --help, like every other error of the commands, instead of after the whole usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n(see: {self.prog} --help)\n")
