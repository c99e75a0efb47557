"""The command lines of the device protocol (docs/device-protocol.md, section 3).

A host writes the setup lines with `SetupCommand.format` / `format_reference`
and a device reads them with `SetupCommand.parse` / `parse_reference`, so the
two cannot drift apart.  The readers raise `CommandError`, which the device
answers as an `ERR` line; their messages never repeat a key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from paygkit.device.serial_number import check_serial_number, serial_problem
from paygkit.device.wire import ErrorCode
from paygkit.token import (
    MAX_COUNT,
    MAX_STARTING_CODE,
    SECONDS_PER_DAY,
    TokenError,
    hide_keys,
    parse_key,
)

MAX_ADVANCE_DAYS = 3650
MAX_ADVANCE_SECONDS = MAX_ADVANCE_DAYS * SECONDS_PER_DAY
# The simulated RTC stays below 2100-01-01 so that stored times never overflow.
MAX_RTC = 4_102_444_800
MAX_KEYPAD_TIMEOUT = 3600
KEYPAD_KEYS = frozenset("*#0123456789")

HELP_LINES = (
    "HELLO",
    "HELP",
    "SETUP serial=<serial> code=<starting code> key=<32 hex> [divider=<1-255>] "
    "[restricted=0|1] [test=<digits>] [count=<n>]",
    "#<serial>;<9-digit starting code>;<32 hex key>",
    "KEYS <keys: * # 0-9>",
    "TOKEN <digits>",
    "STATUS",
    "ADVANCE <seconds | <n>s | <n>m | <n>h | <n>d>  (simulator)",
    "CLOCK [<rtc> | +<duration> | -<duration>]  (simulator)",
    "CONFIG [waiting=on|off] [tamper=lock|report] [keypad_timeout=<seconds>]  (simulator)",
    "POWER [ON|OFF]  (simulator)",
    "RESET  (simulator)",
    "WIPE  (simulator)",
    "QUIT",
)

_CODE = re.compile(r"[0-9]{1,9}")
_REFERENCE_CODE = re.compile(r"[0-9]{9}")
_NUMBER = re.compile(r"[0-9]{1,12}")
_TEST_CODE = re.compile(r"[0-9]{1,20}")
_DURATION = re.compile(r"([0-9]{1,12})([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": SECONDS_PER_DAY}
_WORD = re.compile(r"[A-Za-z_]{1,20}")
_TRUE = frozenset({"1", "on", "yes", "true"})
_FALSE = frozenset({"0", "off", "no", "false"})


class CommandError(Exception):
    """Ends a command with an ERR line; the message must not contain a key."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def command_word(line: str) -> str:
    """The command a line gives, upper case (`SETUP` for the reference `#` form)."""
    if line.startswith("#"):
        return "SETUP"
    return line.split(maxsplit=1)[0].upper() if line.strip() else ""


def quoted_word(word: str) -> str:
    """A word of the input for an error message, only if it cannot be a secret."""
    return f" '{word}'" if _WORD.fullmatch(word) else ""


def read_flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CommandError(ErrorCode.BAD_ARGUMENT, f"{name} must be 0 or 1 (or on/off)")


def read_number(name: str, value: str, low: int, high: int) -> int:
    if not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, f"{name} must be a whole number from {low} to {high}"
        )
    return int(value)


def read_duration(text: str, *, what: str = "the duration") -> int:
    """'90' -> 90, '2h' -> 7200, '3d' -> 259200."""
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT,
            f"{what} must be seconds or a number with a unit s, m, h or d (e.g. 90, 2h, 3d)",
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_ADVANCE_SECONDS:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT,
            f"{what} is at most {MAX_ADVANCE_DAYS} days; move the clock in steps",
        )
    return seconds


def read_arguments(
    command: str, words: Iterable[str], allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> dict[str, str]:
    """The `name=value` arguments of a command, names lower case."""
    values: dict[str, str] = {}
    for word in words:
        name, separator, value = word.partition("=")
        name = name.lower()
        if not separator or not name:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                f"{command} takes name=value arguments ({', '.join(allowed)}); "
                "a word without '=' was given",
            )
        if name not in allowed:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                f"unknown argument{quoted_word(name)} for {command}; it takes {', '.join(allowed)}",
            )
        if name in values:
            raise CommandError(ErrorCode.BAD_ARGUMENT, f"{name} is given twice; give it once")
        if not value:
            raise CommandError(ErrorCode.BAD_ARGUMENT, f"{name}= needs a value")
        values[name] = value
    missing = [name for name in required if name not in values]
    if missing:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, f"{command} needs {', '.join(f'{m}=' for m in missing)}"
        )
    return values


def _read_serial(value: str) -> str:
    problem = serial_problem(value)
    if problem is not None:
        raise CommandError(ErrorCode.BAD_ARGUMENT, problem)
    return value


def _read_key(value: str) -> bytes:
    try:
        return parse_key(value)
    except TokenError as error:
        raise CommandError(ErrorCode.BAD_ARGUMENT, hide_keys(str(error))) from None


@dataclasses.dataclass(frozen=True, slots=True)
class SetupCommand:
    """A factory setup: `SETUP serial=... code=... key=...` or the reference `#serial;code;key`."""

    serial: str
    starting_code: int
    key: bytes = dataclasses.field(repr=False)
    time_divider: int = 1
    restricted_digits: bool = False
    test_code: str | None = None
    count: int = 1

    def check(self) -> None:
        """ValueError unless a device could take this setup (checked before sending it)."""
        check_serial_number(self.serial)
        code = self.starting_code
        if isinstance(code, bool) or not 0 <= code <= MAX_STARTING_CODE:
            raise ValueError(
                f"the starting code must be a whole number from 0 to {MAX_STARTING_CODE}"
            )
        if not isinstance(self.key, bytes | bytearray) or len(self.key) != 16:
            raise ValueError("the key must be 16 bytes")
        if self.test_code and not self.test_code.isdigit():
            raise ValueError("the test code must be digits only")

    def format(self) -> str:
        """The SETUP line a host sends (every setting spelled out)."""
        self.check()
        line = (
            f"SETUP serial={self.serial} code={self.starting_code:09d} key={self.key.hex()} "
            f"divider={self.time_divider} restricted={int(self.restricted_digits)}"
        )
        if self.test_code:
            line += f" test={self.test_code}"
        return line + f" count={self.count}"

    def format_reference(self) -> str:
        """The reference firmware's setup line (its defaults for everything else)."""
        self.check()
        return f"#{self.serial};{self.starting_code:09d};{self.key.hex()}"

    @classmethod
    def parse(cls, rest: str) -> SetupCommand:
        """The arguments of a SETUP line (the text after the command word)."""
        args = read_arguments(
            "SETUP",
            rest.split(),
            ("serial", "code", "key", "divider", "restricted", "test", "count"),
            ("serial", "code", "key"),
        )
        if not _CODE.fullmatch(args["code"]):
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                f"code must be the starting code: up to 9 digits (0-{MAX_STARTING_CODE})",
            )
        test_code = args.get("test")
        if test_code is not None and not _TEST_CODE.fullmatch(test_code):
            raise CommandError(ErrorCode.BAD_ARGUMENT, "test must be the test code: 1 to 20 digits")
        return cls(
            serial=_read_serial(args["serial"]),
            starting_code=int(args["code"]),
            key=_read_key(args["key"]),
            time_divider=read_number("divider", args.get("divider", "1"), 1, 255),
            restricted_digits=read_flag("restricted", args.get("restricted", "0")),
            test_code=test_code,
            count=read_number("count", args.get("count", "1"), 0, MAX_COUNT),
        )

    @classmethod
    def parse_reference(cls, line: str) -> SetupCommand:
        """The reference setup line `#serial;code;key`, the `#` included."""
        fields = line[1:].split(";")
        usage = "the reference setup line is #<serial>;<9-digit starting code>;<32 hex key>"
        if len(fields) != 3:
            hint = "; to press the # key, send KEYS #" if line == "#" else ""
            raise CommandError(
                ErrorCode.BAD_ARGUMENT, f"{usage}, with 3 fields separated by ';'{hint}"
            )
        serial, code, key = fields
        if not _REFERENCE_CODE.fullmatch(code):
            raise CommandError(
                ErrorCode.BAD_ARGUMENT, f"{usage}: the starting code must be exactly 9 digits"
            )
        return cls(serial=_read_serial(serial), starting_code=int(code), key=_read_key(key))
