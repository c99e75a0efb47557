"""What a serial number is: the one grammar of the factory, the device and the server.

A serial is 1 to 32 characters: letters, digits and `. _ : + -`, starting with
a letter or a digit (e.g. SLT220000001).  32 is what the device's storage
holds (docs/storage-layout.md); the characters are those that travel unchanged
through a URL path, a CSV cell, a shell argument, an HTML page and the device
protocol's `#serial;code;key` line.  Every reader of a serial (device list,
device protocol, host, server API, console, import) asks this module, so a
device list one of them accepts is accepted by all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SERIAL_MAX_LENGTH = 32
SERIAL_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._:+\-]{{0,{SERIAL_MAX_LENGTH - 1}}}"
SERIAL_RULE = (
    f"1 to {SERIAL_MAX_LENGTH} letters, digits and . _ : + - "
    "starting with a letter or digit (e.g. SLT220000001)"
)

_SERIAL = re.compile(SERIAL_PATTERN)


class SerialNumberError(ValueError):
    """A serial number outside the grammar; the message says the rule."""


def serial_problem(value: object) -> str | None:
    """None for a valid serial, else what is wrong with it (never repeating it)."""
    if not isinstance(value, str):
        return f"the serial number must be text, not {type(value).__name__}"
    if not value:
        return "the serial number is empty; use " + SERIAL_RULE
    if len(value) > SERIAL_MAX_LENGTH:
        return (
            f"the serial number is {len(value)} characters long, the most a device holds "
            f"is {SERIAL_MAX_LENGTH}; use " + SERIAL_RULE
        )
    if not _SERIAL.fullmatch(value):
        return "the serial number must be " + SERIAL_RULE
    return None


def is_serial_number(value: object) -> bool:
    return isinstance(value, str) and _SERIAL.fullmatch(value) is not None


def check_serial_number(value: object) -> str:
    """`value` when it is a valid serial, else SerialNumberError saying the rule."""
    problem = serial_problem(value)
    if problem is not None:
        raise SerialNumberError(problem)
    assert isinstance(value, str)
    return value


def serial_matches(typed: str, serials: Iterable[str]) -> list[str]:
    """The serials `typed` names: itself when listed, else those equal to it but for case.

    A serial is its exact text (SLT1 and slt1 may be two devices), but a person types
    or scans it in either case: the exact serial wins, and a case-blind match is taken
    only when it is the only one (more: ask for the case).
    """
    typed = typed.strip()
    listed = list(serials)
    if typed in listed:
        return [typed]
    folded = typed.upper()
    return list(dict.fromkeys(serial for serial in listed if serial.upper() == folded))
