"""Errors of the token layer.

Every error says what is wrong and how to fix it, and never contains a key.
They subclass ValueError so callers written against the reference library,
which raises ValueError, keep working.
"""


class TokenError(ValueError):
    """Base class of every input error raised by paygkit.token."""


class TokenFormatError(TokenError):
    """The text given as a token is not one (letters, wrong length, bad digits)."""


class ParameterError(TokenError):
    """A device parameter or a generation request is out of range."""
