"""The one error type a person is meant to read.

`UserError` carries a message a user can act on. The CLI prints it on one line and exits 2; the app shows
it with `st.error`. Any other exception is a bug in addrop-studio and may show a traceback.
"""


class UserError(Exception):
    """Bad input or an unusable environment, explained in one line."""


class UnsupportedModelError(UserError):
    """The model does not route its attention through transformers' AttentionInterface."""
