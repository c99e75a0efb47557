"""The value types of the protocol: token types, device parameters and results."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from paygkit.token.chain import derive_starting_code
from paygkit.token.errors import ParameterError
from paygkit.token.keys import parse_key

if TYPE_CHECKING:
    from fractions import Fraction  # imported where used: it is slow to import

MAX_STARTING_CODE = 999_999_999
MAX_ACTIVATION_UNITS = 995
EXTENDED_MAX_UNITS = 999_999
DISABLE_PAYG_VALUE = 998
COUNTER_SYNC_VALUE = 999
# Generating at counts near 2^31 would take hours and no device gets there;
# the bound only keeps a typo from looking like a hang.  The one home of the
# highest count: devices, the factory and the server import it.
MAX_COUNT = 2**31 - 1
RESERVED_VALUES = frozenset({996, 997})


class TokenType(enum.Enum):
    """What a token does, or what decoding found."""

    ADD_TIME = "add_time"
    SET_TIME = "set_time"
    DISABLE_PAYG = "disable_payg"
    COUNTER_SYNC = "counter_sync"
    ALREADY_USED = "already_used"
    INVALID = "invalid"

    @property
    def label(self) -> str:
        """The name people use: "Add Time", "Disable PAYG", "Already used"..."""
        return _LABELS[self]

    # Answered from each member's own flags (set below): these are asked on
    # every token, and a lookup of the members through the class is slow.
    _carries_value: bool
    _is_generated: bool

    @property
    def carries_value(self) -> bool:
        """Add Time and Set Time carry a number of time units; the others do not."""
        return self._carries_value

    @property
    def is_generated(self) -> bool:
        """The four types a generator can make (the others are decode outcomes)."""
        return self._is_generated


for _member in TokenType:
    _member._carries_value = _member in (TokenType.ADD_TIME, TokenType.SET_TIME)
    _member._is_generated = _member not in (TokenType.ALREADY_USED, TokenType.INVALID)
del _member


_LABELS = {
    TokenType.ADD_TIME: "Add Time",
    TokenType.SET_TIME: "Set Time",
    TokenType.DISABLE_PAYG: "Disable PAYG",
    TokenType.COUNTER_SYNC: "Counter Sync",
    TokenType.ALREADY_USED: "Already used",
    TokenType.INVALID: "Invalid",
}


def check_int(name: str, value: object, low: int, high: int, hint: str) -> int:
    """`value` if it is an int (not a bool) in low..high, else a ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{name} must be an integer, not {type(value).__name__}; {hint}")
    if not low <= value <= high:
        raise ParameterError(f"{name} must be between {low} and {high}, got {value}; {hint}")
    return value


@dataclass(frozen=True, slots=True)
class DecodeWindows:
    """How far from its last count a device looks for a token.

    The defaults are those of the v2.3 reference: tokens up to 64 counts ahead,
    Counter Sync tokens up to 100 ahead, and Add Time tokens up to 16 counts
    behind the last count when they were never entered (unordered entry).
    """

    forward: int = 64
    counter_sync: int = 100
    unordered: int = 16

    def __post_init__(self) -> None:
        hint = "decode windows are small counts of tokens"
        check_int("forward window", self.forward, 1, 10_000, hint)
        check_int("counter sync window", self.counter_sync, 1, 10_000, hint)
        check_int("unordered window", self.unordered, 0, 10_000, hint)


@dataclass(frozen=True, slots=True)
class DeviceParams:
    """Everything the token maths needs to know about one device.

    Build it with `DeviceParams.create(...)`, which accepts the key in hex and
    derives the starting code from the key when none is given.
    """

    key: bytes = field(repr=False)
    starting_code: int
    time_divider: int = 1
    restricted_digits: bool = False
    windows: DecodeWindows = field(default_factory=DecodeWindows)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != 16:
            raise ParameterError(
                "the key must be 16 bytes; use DeviceParams.create(key=<32 hex characters>)"
            )
        check_int(
            "the starting code",
            self.starting_code,
            0,
            MAX_STARTING_CODE,
            "it is the 9-digit Starting Code of the device list",
        )
        check_int(
            "the time divider",
            self.time_divider,
            1,
            255,
            "it is the number of value units per day (1 = days, 24 = hours)",
        )
        if not isinstance(self.restricted_digits, bool):
            raise ParameterError("restricted_digits must be True or False")
        if not isinstance(self.windows, DecodeWindows):
            raise ParameterError("windows must be a DecodeWindows")

    @classmethod
    def create(
        cls,
        key: str | bytes,
        starting_code: int | None = None,
        *,
        time_divider: int = 1,
        restricted_digits: bool = False,
        windows: DecodeWindows | None = None,
    ) -> DeviceParams:
        """Parameters from the values of a device list row."""
        raw_key = parse_key(key)
        if starting_code is None:
            starting_code = derive_starting_code(raw_key)
        return cls(
            key=raw_key,
            starting_code=starting_code,
            time_divider=time_divider,
            restricted_digits=restricted_digits,
            windows=windows if windows is not None else DecodeWindows(),
        )


@dataclass(frozen=True, slots=True)
class GeneratedToken:
    """A token made for a device, with the count the server must now store."""

    token_type: TokenType
    units: int | None
    count: int
    digits: str
    extended: bool
    restricted: bool
    time_divider: int = 1

    @property
    def days(self) -> Fraction | None:
        """The time carried, in days (units / time divider); None for Disable/Sync."""
        from fractions import Fraction

        return None if self.units is None else Fraction(self.units, self.time_divider)

    @property
    def grouped(self) -> str:
        """The token in groups of three digits, as it is read out or sent by SMS."""
        return group_digits(self.digits)

    def __str__(self) -> str:
        return self.digits


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What a device concludes from a token, and its counter state afterwards.

    `count` is the chain position the token matched (also for ALREADY_USED,
    which helps support staff); `last_count` and `used_counts` are the state
    to store: unchanged unless the token was accepted.
    """

    token_type: TokenType
    units: int | None
    count: int | None
    last_count: int
    used_counts: tuple[int, ...]
    extended: bool
    time_divider: int = 1

    @property
    def accepted(self) -> bool:
        return self.token_type.is_generated

    @property
    def days(self) -> Fraction | None:
        """The time carried, in days; None unless an Add Time or Set Time was accepted."""
        from fractions import Fraction

        return None if self.units is None else Fraction(self.units, self.time_divider)


def group_digits(digits: str, size: int = 3) -> str:
    """'123456789' -> '123 456 789'."""
    return " ".join(digits[i : i + size] for i in range(0, len(digits), size))
