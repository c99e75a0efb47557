"""Days, units and durations, and the one way each is written for people.

Value units are days times the device's time divider (SPEC 2.3).  Every
message, page, report and answer that shows days or a length of time uses
these functions, so the same amount reads the same everywhere.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from paygkit.token.errors import ParameterError

# decimal and fractions are imported where used: together they are a tenth
# of the import time of paygkit.token, and most callers never need them.
if TYPE_CHECKING:
    from decimal import Decimal
    from fractions import Fraction

    Days = int | float | Decimal | Fraction

SECONDS_PER_DAY = 86_400

_PARTS = ((SECONDS_PER_DAY, "day"), (3600, "h"), (60, "min"), (1, "s"))


def days_to_units(days: Days, time_divider: int) -> int:
    """Days to value units (days x divider), rounded half to even like the reference."""
    if type(days) is int and days >= 0:
        return days * time_divider
    from decimal import Decimal
    from fractions import Fraction

    if isinstance(days, bool) or not isinstance(days, int | float | Decimal | Fraction):
        raise ParameterError(f"days must be a number, not {type(days).__name__}")
    if isinstance(days, float | Decimal) and not math.isfinite(days):
        raise ParameterError(f"days must be a finite number, got {days}")
    if days < 0:
        raise ParameterError(
            f"days must not be negative, got {days}; to remove time, use a Set Time token"
        )
    if isinstance(days, int):
        return days * time_divider
    if isinstance(days, float):
        # The reference multiplies in floating point before rounding, and so
        # must a float here: 5.58 days at divider 175 is 976.5 units as a
        # float product (976), but just above 976.5 from the exact binary
        # value of 5.58 (977).  Decimal and Fraction input stays exact.
        product = days * time_divider
        if math.isfinite(product):
            return round(product)
    return round(Fraction(days) * time_divider)


def units_to_days(units: int, time_divider: int) -> Fraction:
    from fractions import Fraction

    return Fraction(units, time_divider)


def plural(amount: int | str, word: str) -> str:
    """'1 day', '2 days', '1.0 unit'."""
    return f"{amount} {word}" if str(amount) in ("1", "1.0") else f"{amount} {word}s"


def number_text(value: Fraction | int, places: int = 3) -> str:
    """A number as a short decimal ("1.2"), with "about" when it is not exact in `places`."""
    from decimal import Decimal
    from fractions import Fraction

    value = Fraction(value)
    shown = format(
        (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(10) ** -places),
        "f",
    )
    shown = shown.rstrip("0").rstrip(".") if "." in shown else shown
    return shown if Fraction(Decimal(shown)) == value else f"about {shown}"


def days_number(days: Fraction | int) -> str:
    """Days as a plain number for data (JSON, CSV): '7', '0.25', '0.333333' (six places)."""
    from decimal import Decimal
    from fractions import Fraction

    days = Fraction(days)
    if days.denominator == 1:
        return str(days.numerator)
    text = format(Decimal(days.numerator) / Decimal(days.denominator), ".6f")
    return text.rstrip("0").rstrip(".")


def days_text(days: Fraction | int) -> str:
    """Days for people: '1 day', '7 days', '0.25 days', 'about 0.333 days'."""
    from fractions import Fraction

    return plural(number_text(Fraction(days)), "day")


def duration_text(seconds: int, *, parts: int = 4, round_up_to: int = 1) -> str:
    """A length of time: '1 day 12 h', '8 min 14 s', '2 days 3 h', 'no time'.

    At most `parts` units are shown, the largest ones (a person reads the size
    at a glance; the rest is dropped); `round_up_to` rounds the seconds up
    first, e.g. 60 for whole minutes where a person must wait at least as long
    as said.
    """
    seconds = -(-max(seconds, 0) // round_up_to) * round_up_to
    if seconds == 0:
        return "no time"
    # Seconds only where they matter: next to days they are noise (and they
    # come from dividers that do not divide a day evenly).
    with_days = seconds >= SECONDS_PER_DAY
    shown: list[str] = []
    for size, name in _PARTS:
        amount, seconds = divmod(seconds, size)
        if name == "s" and with_days:
            break
        if amount and len(shown) < parts:
            shown.append(plural(amount, name) if name == "day" else f"{amount} {name}")
    return " ".join(shown)


def units_duration_text(units: int, time_divider: int) -> str:
    """What `units` are worth as time: "6 h", "1 day 12 h", "8 min 14 s"."""
    from fractions import Fraction

    return duration_text(round(Fraction(units * SECONDS_PER_DAY, time_divider)), parts=3)


def countdown_text(seconds: int) -> str:
    """A fixed-width clock for a live countdown: '2d 03h 04m 05s', '4m 05s', '0s'."""
    days, rest = divmod(max(seconds, 0), SECONDS_PER_DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m {secs:02d}s"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
