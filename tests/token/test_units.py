"""The one way days, durations and keys are written for people (token.units, token.keys)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygkit.token import (
    HIDDEN,
    days_number,
    days_text,
    duration_text,
    hide_keys,
    number_text,
    units_duration_text,
)


@pytest.mark.parametrize(
    ("seconds", "kwargs", "text"),
    [
        (0, {}, "no time"),
        (-5, {}, "no time"),
        (45, {}, "45 s"),
        (8 * 60 + 14, {}, "8 min 14 s"),
        (36 * 3600, {}, "1 day 12 h"),
        (2 * 86_400, {}, "2 days"),
        # Seconds are not shown next to days.
        (86_400 + 57 * 60 + 36, {}, "1 day 57 min"),
        (90_061, {"parts": 2}, "1 day 1 h"),
        (3601, {"parts": 2}, "1 h 1 s"),
        (61, {"round_up_to": 60}, "2 min"),
        (2 * 86_400 + 1, {"parts": 2, "round_up_to": 60}, "2 days 1 min"),
    ],
)
def test_duration_text(seconds: int, kwargs: dict[str, int], text: str) -> None:
    assert duration_text(seconds, **kwargs) == text


def test_units_as_time() -> None:
    assert units_duration_text(1, 4) == "6 h"
    assert units_duration_text(26, 25) == "1 day 57 min"
    assert units_duration_text(0, 7) == "no time"


def test_days() -> None:
    assert days_text(1) == "1 day"
    assert days_text(7) == "7 days"
    assert days_text(Fraction(1, 4)) == "0.25 days"
    assert days_text(Fraction(1, 3)) == "about 0.333 days"
    assert days_number(Fraction(1, 3)) == "0.333333"
    assert days_number(Fraction(1, 4)) == "0.25"
    assert days_number(30) == "30"
    assert number_text(Fraction(6, 5)) == "1.2"


@given(st.binary(min_size=16, max_size=16), st.text(max_size=20), st.text(max_size=20))
def test_a_key_never_survives_hiding(key: bytes, before: str, after: str) -> None:
    for written in (key.hex(), key.hex().upper()):
        if written.isdigit():
            continue  # digits alone are tokens and counts, never hidden
        shown = hide_keys(before + written + after)
        assert written not in shown
        assert HIDDEN in shown


def test_digits_are_left_alone() -> None:
    assert hide_keys("token 123456789012345678 count 42") == "token 123456789012345678 count 42"
