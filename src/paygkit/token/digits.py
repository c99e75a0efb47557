"""Token text: what people type, and the restricted (keys 1-4) digit form."""

from __future__ import annotations

import re
from dataclasses import dataclass

from paygkit.token.errors import TokenFormatError

STANDARD_DIGITS = 9
EXTENDED_DIGITS = 12
RESTRICTED_STANDARD_DIGITS = 15
RESTRICTED_EXTENDED_DIGITS = 20

# Digits, optionally split into groups by single spaces or dashes, as tokens
# are printed on receipts and read out by SMS ("123 456 789", "123-456-789").
_TYPED_TOKEN = re.compile(r"[0-9]+(?:[ \-][0-9]+)*")


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token's digits and the number they stand for."""

    digits: str
    value: int
    extended: bool


def to_restricted(value: int, digit_count: int) -> str:
    """Write a value two bits per digit, most significant first, as digits 1-4."""
    bits = 2 * digit_count
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{value} does not fit in {digit_count} restricted digits")
    return "".join(str(((value >> shift) & 0b11) + 1) for shift in range(bits - 2, -1, -2))


def from_restricted(digits: str) -> int:
    """The value of a string of digits 1-4 (two bits each)."""
    value = 0
    for digit in digits:
        if digit not in "1234":
            raise ValueError(f"{digit!r} is not a restricted digit (1-4)")
        value = value << 2 | (ord(digit) - ord("1"))
    return value


def format_token(value: int, *, extended: bool, restricted: bool) -> str:
    """The digits of a token value, zero-padded or in restricted form."""
    width = EXTENDED_DIGITS if extended else STANDARD_DIGITS
    if restricted:
        return to_restricted(
            value, RESTRICTED_EXTENDED_DIGITS if extended else RESTRICTED_STANDARD_DIGITS
        )
    return f"{value:0{width}d}"


def typed_digits(text: str) -> str:
    """The digits of a token as typed, separators removed; TokenFormatError if it is not one.

    Only the characters are checked here; the length depends on the device.
    """
    if not isinstance(text, str):
        raise TokenFormatError(
            f"a token must be given as text, not {type(text).__name__}, "
            "so that its leading zeros are kept"
        )
    if text.isascii() and text.isdigit():
        return str(text)  # the usual token: plain digits, which every check below passes
    if text != text.strip():
        raise TokenFormatError("the token starts or ends with a space; remove it")
    if not text:
        raise TokenFormatError("the token is empty; type its digits")
    if not _TYPED_TOKEN.fullmatch(text):
        if text.startswith(("-", "+")):
            raise TokenFormatError("a token has no sign; type only its digits")
        raise TokenFormatError(
            "a token contains only digits, optionally grouped with single spaces or "
            "dashes (e.g. 123 456 789)"
        )
    return text.replace(" ", "").replace("-", "")


def parse_token(text: str, *, restricted: bool) -> ParsedToken:
    """Read a token as a person typed it; raise TokenFormatError if it is not one.

    A token that is well formed but wrong for the device is not an error here:
    decoding reports it as INVALID.
    """
    digits = typed_digits(text)
    if restricted:
        expected = (RESTRICTED_STANDARD_DIGITS, RESTRICTED_EXTENDED_DIGITS)
        bad = sorted(set(digits) - set("1234"))
        if bad:
            raise TokenFormatError(
                f"this device uses restricted digits (keys 1-4), but the token contains "
                f"{', '.join(bad)}; check the token was made for restricted digit mode"
            )
    else:
        expected = (STANDARD_DIGITS, EXTENDED_DIGITS)
    if len(digits) not in expected:
        raise TokenFormatError(
            f"the token has {len(digits)} digits; this device takes {expected[0]} digits "
            f"(or {expected[1]} for an extended token); check for a missing or extra digit"
        )
    extended = len(digits) == expected[1]
    value = from_restricted(digits) if restricted else int(digits)
    return ParsedToken(digits=digits, value=value, extended=extended)
