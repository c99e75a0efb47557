"""How the console writes times, durations, token digits and the services' messages."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from paygkit.server.models import Device
from paygkit.token import duration_text, group_digits

TYPE_NAMES = {
    "add_time": "Add time",
    "set_time": "Set time",
    "disable_payg": "Disable PAYG",
    "counter_sync": "Counter sync",
}

# The services word their messages for any caller; the decode window is a word of the
# token protocol that the console's users need not know.
_PLAIN_WORDING = [
    (
        re.compile(r"(\d+) counts left in its decode window of (\d+)"),
        r"only \1 more counts before the device refuses tokens (it takes tokens at most \2"
        " counts past the last count it showed)",
    ),
]


def plain(text: object) -> str:
    """A service's message in the words of the console's users (see _PLAIN_WORDING)."""
    words = str(text)
    for pattern, replacement in _PLAIN_WORDING:
        words = pattern.sub(replacement, words)
    return words


def _as_time(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def when(value: str | dt.datetime | None) -> str:
    """`2030-01-08 12:00 UTC` (seconds shown only when not zero)."""
    moment = _as_time(value)
    if moment is None:
        return "-"
    shape = "%Y-%m-%d %H:%M UTC" if moment.second == 0 else "%Y-%m-%d %H:%M:%S UTC"
    return moment.strftime(shape)


def token_groups(digits: str) -> list[str]:
    """A token's digits in groups of three, each its own element on the page."""
    return group_digits("".join(ch for ch in digits if ch.isdigit())).split()


def _span(delta: dt.timedelta) -> str:
    """Days and hours, or hours and minutes: the page is read at a glance."""
    seconds = int(delta.total_seconds())
    unit = 3600 if seconds >= 86400 else 60
    # Rounded down like a countdown, but never "no time" while some is left.
    return duration_text(max(60, seconds - seconds % unit), parts=2)


def device_status(device: Device, now: dt.datetime) -> dict[str, Any]:
    """What the device page says of the device's time."""
    if not device.payg_enabled:
        return {"state": "unlocked", "label": "PAYG disabled: unlocked for good", "left": None}
    until = device.active_until
    if until is None:
        return {"state": "locked", "label": "No time issued yet", "left": None}
    if until > now:
        return {"state": "active", "label": "Active", "left": f"{_span(until - now)} left"}
    return {"state": "locked", "label": "Locked", "left": f"expired {_span(now - until)} ago"}
