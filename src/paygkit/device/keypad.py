"""Keypad entry: a token typed key by key, as a customer types it.

`*` starts a token (again, if one was being typed), digits follow and `#`
ends it; `#` with nothing typed, also right after `*`, asks for the status.
Digits typed before a `*` are ignored, as the reference firmware ignores them;
a restricted keypad (keys 1-4) ignores keys 0 and 5-9; digits beyond the
longest token are ignored.  A gap longer than the keypad timeout between two
presses drops the partial token.  The gap is measured on the tick source, not
the RTC, which a customer may tamper with.

`Keypad` only collects keys: it says what a press asks for (`TokenTyped`,
`StatusAsked`) or what the display shows for it (`KeyShown`), and the
firmware acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from paygkit.token import RESTRICTED_EXTENDED_DIGITS

KEYS = frozenset("*#0123456789")
RESTRICTED_KEYS = frozenset("1234")
MAX_TYPED_DIGITS = RESTRICTED_EXTENDED_DIGITS  # the longest token (20 digits)
TIMED_OUT_TEXT = "Entry timed out"
START_HINT = "Press * to start a token"
TOO_MANY_DIGITS_TEXT = f"At most {MAX_TYPED_DIGITS} digits"


def typing_text(typing: str) -> str:
    """The display while a token is typed: '*' and the digits so far."""
    return f"*{typing}"


def key_not_used_text(key: str) -> str:
    return f"Key {key} not used: keys 1-4 only"


@dataclass(frozen=True, slots=True)
class TokenTyped:
    """'#' ended a token: enter these digits."""

    digits: str


@dataclass(frozen=True, slots=True)
class StatusAsked:
    """'#' with nothing typed: show the status."""


@dataclass(frozen=True, slots=True)
class KeyShown:
    """Any other key: what the display shows (the digits so far, or a hint)."""

    text: str


KeyPress = TokenTyped | StatusAsked | KeyShown


def check_key(key: object) -> str:
    """`key` when it is a key of the keypad, else ValueError."""
    if not isinstance(key, str) or key not in KEYS:
        raise ValueError(f"a keypad key is one of * # 0-9, got {key!r}")
    return key


class Keypad:
    """The token being typed, between '*' and '#'."""

    def __init__(self, timeout_seconds: int) -> None:
        self._timeout = timeout_seconds
        self._typing: str | None = None  # None: no token is being typed
        self._last_press = 0

    @property
    def typing(self) -> str:
        """The digits typed so far of a token not yet ended ('' if none)."""
        return self._typing or ""

    def clear(self) -> None:
        self._typing = None

    def time_out(self, t: int) -> str | None:
        """Drop a partial token left longer than the timeout; the display text if it was."""
        if self._typing is None or t - self._last_press <= self._timeout:
            return None
        self._typing = None
        return TIMED_OUT_TEXT

    def press(self, key: str, t: int, *, restricted: bool) -> KeyPress:
        """One key, pressed at tick `t`.  Call `time_out(t)` first."""
        check_key(key)
        self._last_press = t
        if key == "*":
            self._typing = ""
            return KeyShown(typing_text(""))
        if key == "#":
            typed, self._typing = self._typing, None
            return TokenTyped(typed) if typed else StatusAsked()
        if self._typing is None:
            return KeyShown(START_HINT)
        if restricted and key not in RESTRICTED_KEYS:
            return KeyShown(key_not_used_text(key))
        if len(self._typing) >= MAX_TYPED_DIGITS:
            return KeyShown(TOO_MANY_DIGITS_TEXT)
        self._typing += key
        return KeyShown(typing_text(self._typing))
