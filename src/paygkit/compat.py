"""A drop-in for the token API of the openpaygo reference library (0.6.3).

Code written against the reference migrates by changing one import::

    from paygkit.compat import TokenType, decode_token, generate_token

The keyword arguments, defaults and return tuples are those of openpaygo
0.6.3, so stored device state (last count, used-count lists) and server
counts carry over unchanged.  The tokens are bit-identical.  Where the
reference is wrong, this module is not:

- Exactly once (SPEC 3.1): a Counter Sync token is accepted only above the
  device's count, and a device's count never goes down.  The reference also
  accepts a Counter Sync up to 64 counts behind and moves the count back,
  which lets a customer who kept one old Counter Sync token enter the same
  Add Time tokens again and again (Sync @3, Add 30 days @4, Add 30 days @6,
  repeated: 240 days for 60 paid after four rounds).  Such a Counter Sync is
  ALREADY_USED here.  Tokens from reference servers are unaffected: they only
  sync forward.  The reset token (Counter Sync at count 0) is refused unless
  ``accept_reset_token=True``.
- ``starting_code=0`` is a real starting code; only ``None`` means "derive it
  from the key" (the reference also derives for 0, making the wrong tokens).
- Add/Set Time without a value raises a ValueError that says so (the
  reference crashes with a TypeError).
- An extended token cannot carry 998 or 999, the Disable PAYG and Counter
  Sync values (the reference makes such a token, which devices then read as
  Disable PAYG or Counter Sync).
- Decoding returns Disable PAYG (998) and Counter Sync (999) as those types at
  either count parity and with the raw value, never divided; the reference
  calls them Add Time at even counts and divides the value.
- The updated used counts are always a list; the reference returns None for an
  empty history and then crashes on the next decode.  Counts below zero, which
  the reference records after an early Set Time, are left out.
- An extended token that matches nothing is INVALID; the reference raises
  UnboundLocalError.
- Token text with a sign, surrounding spaces or other characters is refused;
  the reference passes it to ``int()``, which takes ``-12345678`` and
  ``" 123456789"``.  Dropped leading zeros are still accepted, as are single
  spaces or dashes between digit groups ("123 456 789").
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable

from paygkit.token import (
    COUNTER_SYNC_VALUE,
    DISABLE_PAYG_VALUE,
    EXTENDED_DIGITS,
    RESTRICTED_EXTENDED_DIGITS,
    RESTRICTED_STANDARD_DIGITS,
    STANDARD_DIGITS,
    DeviceParams,
    GeneratedToken,
    ParameterError,
    TokenFormatError,
    decode,
    parse_key,
    typed_digits,
)
from paygkit.token import TokenType as CoreTokenType
from paygkit.token.coding import UnitsMaker, generate_units, units_maker

__all__ = [
    "OpenPAYGOTokenDecoder",
    "OpenPAYGOTokenEncoder",
    "TokenType",
    "decode_token",
    "generate_token",
]

_HEX_KEY_LENGTH = 32


class TokenType(enum.IntEnum):
    """The reference's token type numbers; members are plain ints to existing code."""

    ADD_TIME = 1
    SET_TIME = 2
    DISABLE_PAYG = 3
    COUNTER_SYNC = 4
    INVALID = 10
    ALREADY_USED = 11


_TO_CORE = {
    TokenType.ADD_TIME: CoreTokenType.ADD_TIME,
    TokenType.SET_TIME: CoreTokenType.SET_TIME,
    TokenType.DISABLE_PAYG: CoreTokenType.DISABLE_PAYG,
    TokenType.COUNTER_SYNC: CoreTokenType.COUNTER_SYNC,
}
_FROM_CORE = {core: compat for compat, core in _TO_CORE.items()} | {
    CoreTokenType.INVALID: TokenType.INVALID,
    CoreTokenType.ALREADY_USED: TokenType.ALREADY_USED,
}

# The usual token_type arguments by their numbers (members are looked up by their value).
_CORE_BY_NUMBER = {int(compat): core for compat, core in _TO_CORE.items()}
_VALUE_TYPES = (CoreTokenType.ADD_TIME, CoreTokenType.SET_TIME)
# Read once: a member read through its enum class costs a fifth of a token.
_ADD_TIME = TokenType.ADD_TIME
_CORE_ADD_TIME = CoreTokenType.ADD_TIME

DecodedValue = int | float | None
"""Add/Set Time: units / value_divider (a float, or the int 0); Disable/Sync: 998/999."""


def _load_key(secret_key: str | bytes) -> bytes:
    """The 16 key bytes; like the reference, hex may also come as ASCII bytes.

    No message repeats the key: even a mistyped key is mostly the secret.
    """
    if isinstance(secret_key, bytes | bytearray) and len(secret_key) == _HEX_KEY_LENGTH:
        try:
            text = bytes(secret_key).decode("ascii")
        except UnicodeDecodeError:
            raise ParameterError(
                "the secret key must be 32 hexadecimal characters; it contains other bytes"
            ) from None
        return parse_key(text)
    return parse_key(secret_key)


def _device(
    secret_key: str | bytes, starting_code: int | None, restricted_digit_set: bool
) -> DeviceParams:
    # Parsing the key and checking the parameters cost more than the token
    # itself, and callers repeat the same few devices: well-typed arguments
    # are looked up in a small cache (the parameters are immutable).  Exact
    # types only, so that no two accepted arguments are equal keys (1 == 1.0
    # == True) and nothing refused is ever cached.
    if (
        type(restricted_digit_set) is bool
        and (type(starting_code) is int or starting_code is None)
        and type(secret_key) in _KEY_TYPES
    ):
        arguments = (secret_key, starting_code, restricted_digit_set)
        device = _DEVICES.get(arguments)
        if device is None:
            device = _new_device(secret_key, starting_code, restricted_digit_set)
            if len(_DEVICES) >= _DEVICE_CACHE_SIZE:
                _DEVICES.clear()  # a crude bound, but safe with threads calling at once
            _DEVICES[arguments] = device
        return device
    return _new_device(secret_key, starting_code, restricted_digit_set)


_KEY_TYPES = (str, bytes)
# Bounded, since a server sees many devices; each entry holds one device's key.
_DEVICE_CACHE_SIZE = 256
_DEVICES: dict[tuple[str | bytes, int | None, bool], DeviceParams] = {}


def _new_device(
    secret_key: str | bytes, starting_code: int | None, restricted_digit_set: bool
) -> DeviceParams:
    # 0/1 as well, as read from the Restricted Digit Mode column of a device list.
    if restricted_digit_set not in (False, True) or not isinstance(restricted_digit_set, int):
        raise ParameterError("restricted_digit_set must be True or False (or 1 or 0)")
    # The divider is applied here, not by the core: the reference allows any
    # positive number (0.5, 1.5, ...), the core only whole units per day.
    return DeviceParams.create(
        _load_key(secret_key),
        starting_code,
        time_divider=1,
        restricted_digits=bool(restricted_digit_set),
    )


def _check_divider(value_divider: float) -> float:
    if isinstance(value_divider, bool) or not isinstance(value_divider, int | float):
        raise ParameterError(f"value_divider must be a number, not {type(value_divider).__name__}")
    if not math.isfinite(value_divider) or value_divider <= 0:
        raise ParameterError(
            f"value_divider must be a positive number (value units per day), got {value_divider}"
        )
    return value_divider


def _token_type(token_type: int) -> TokenType:
    if isinstance(token_type, bool) or not isinstance(token_type, int):
        raise ParameterError(
            f"token_type must be a TokenType number, not {type(token_type).__name__}"
        )
    refusal = (
        f"cannot generate a token of type {token_type}; use TokenType.ADD_TIME, "
        "SET_TIME, DISABLE_PAYG or COUNTER_SYNC"
    )
    try:
        member = TokenType(token_type)
    except ValueError:
        raise ParameterError(refusal) from None
    if member not in _TO_CORE:
        raise ParameterError(refusal)
    return member


def _units(value: float | None, value_divider: float, token_type: TokenType) -> int | None:
    """The units a token carries, rounded exactly as the reference rounds them."""
    if token_type not in (TokenType.ADD_TIME, TokenType.SET_TIME):
        # The reference only refuses a truthy value here, so 0 and None pass.
        if value:
            raise ParameterError(f"a {token_type.name} token carries no value; leave value out")
        return None
    if value is None:
        raise ParameterError(
            f"a {token_type.name} token needs a value (the time to give, in days "
            "unless value_divider says otherwise)"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"value must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ParameterError(f"value must be a finite number, got {value}")
    return int(round(value * value_divider, 0))


def _core_request(
    value: float | None, token_type: int, value_divider: float
) -> tuple[CoreTokenType, int | None]:
    """The core's token type and the units, checked as the reference's arguments."""
    # A member's hash is a Python call (it hashes its name): look up its number instead.
    given = type(token_type)
    core_type = _CORE_BY_NUMBER.get(int(token_type)) if given is int or given is TokenType else None
    if (
        core_type is not None
        and type(value_divider) is int
        and value_divider > 0
        and (type(value) is int if core_type in _VALUE_TYPES else value is None)
    ):
        # Whole numbers and a known type: what the checks below conclude, without their cost.
        return core_type, value * value_divider if type(value) is int else None
    kind = _token_type(token_type)
    divider = _check_divider(value_divider)
    return _TO_CORE[kind], _units(value, divider, kind)


def _bind_units_maker(
    device: DeviceParams,
    count: int,
    token_type: CoreTokenType,
    units: int | None,
    extended: bool,
) -> GeneratedToken | None:
    # On the first call, not at import: importing must not choose the backend.
    global _make_units
    _make_units = units_maker()
    return _make_units(device, count, token_type, units, extended)


_make_units: UnitsMaker = _bind_units_maker


def generate_token(
    secret_key: str | bytes,
    count: int,
    value: float | None = None,
    token_type: int = TokenType.ADD_TIME,
    starting_code: int | None = None,
    value_divider: float = 1,
    restricted_digit_set: bool = False,
    extended_token: bool = False,
) -> tuple[int, str]:
    """Make a token, as ``openpaygo.generate_token``: returns (new count, token digits).

    `count` is the last count issued to the device; store the returned count.
    Add/Set Time carry ``round(value * value_divider)`` units (0..995, or
    0..999 999 for an extended token, except 998 and 999).
    """
    units: int | None
    if (
        token_type is _ADD_TIME
        and type(value) is int
        and type(value_divider) is int
        and value_divider > 0
    ):
        # The commonest call (Add Time, whole numbers) in line: the general
        # path's call and lookups cost half a token.  round() of a whole
        # number is itself.
        core_type = _CORE_ADD_TIME
        units = value * value_divider
    else:
        core_type, units = _core_request(value, token_type, value_divider)
    # _device's cache lookup for the commonest arguments, without its call.
    if type(secret_key) is str and type(starting_code) is int and restricted_digit_set is False:
        device = _DEVICES.get((secret_key, starting_code, False)) or _device(
            secret_key, starting_code, False
        )
    else:
        device = _device(secret_key, starting_code, restricted_digit_set)
    made = _make_units(device, count, core_type, units, extended_token)
    if made is None:
        made = generate_units(device, count, core_type, units, extended_token)
    return made.count, made.digits


def _token_digits(token: str, restricted: bool) -> str:
    """The token's full digits, its length class decided as the reference decides it.

    The reference reads a token with ``int()``, so one whose leading zeros were
    lost (a spreadsheet, an SMS gateway) still decodes; padding gives the
    same number ('1' is the zero of the restricted digits).
    """
    digits = typed_digits(token)
    if restricted:
        standard, extended, zero = RESTRICTED_STANDARD_DIGITS, RESTRICTED_EXTENDED_DIGITS, "1"
    else:
        standard, extended, zero = STANDARD_DIGITS, EXTENDED_DIGITS, "0"
    if len(digits) > extended:
        raise TokenFormatError(
            f"the token has {len(digits)} digits; a token has at most {standard} digits "
            f"(or {extended} for an extended token); check for an extra digit"
        )
    return digits.rjust(standard if len(digits) <= standard else extended, zero)


def decode_token(
    token: str,
    secret_key: str | bytes,
    count: int,
    used_counts: Iterable[int] | None = None,
    starting_code: int | None = None,
    value_divider: float = 1,
    restricted_digit_set: bool = False,
    *,
    accept_reset_token: bool = False,
) -> tuple[DecodedValue, TokenType, int | None, list[int] | None]:
    """Decode a token, as ``openpaygo.decode_token``: (value, type, count, used counts).

    `count` is the device's last count and `used_counts` its used-count list
    (None for a device that has none yet).  An accepted token gives the
    token's count and the new used-count list to store; the device's new last
    count is the larger of its last count and the token's count (only the
    reset token, where accepted, takes it back to 0).  An already used or
    invalid token gives ``(None, type, None, None)``.
    """
    divider = _check_divider(value_divider)
    device = _device(secret_key, starting_code, restricted_digit_set)
    result = decode(
        device,
        _token_digits(token, restricted_digit_set),
        last_count=count,
        used_counts=() if used_counts is None else used_counts,
        accept_reset_token=accept_reset_token,
    )
    kind = _FROM_CORE[result.token_type]
    if not result.accepted:
        return None, kind, None, None
    value: DecodedValue
    if kind is TokenType.DISABLE_PAYG:
        value = DISABLE_PAYG_VALUE
    elif kind is TokenType.COUNTER_SYNC:
        value = COUNTER_SYNC_VALUE
    else:
        assert result.units is not None
        value = result.units / divider if result.units else 0
    return value, kind, result.count, list(result.used_counts)


class OpenPAYGOTokenEncoder:
    """The reference's encoder class, for code that calls it directly."""

    @classmethod
    def generate_token(
        cls,
        secret_key: str | bytes,
        count: int,
        value: float | None = None,
        token_type: int = TokenType.ADD_TIME,
        starting_code: int | None = None,
        value_divider: float = 1,
        restricted_digit_set: bool = False,
        extended_token: bool = False,
    ) -> tuple[int, str]:
        """See paygkit.compat.generate_token."""
        return generate_token(
            secret_key,
            count,
            value=value,
            token_type=token_type,
            starting_code=starting_code,
            value_divider=value_divider,
            restricted_digit_set=restricted_digit_set,
            extended_token=extended_token,
        )


class OpenPAYGOTokenDecoder:
    """The reference's decoder class, for code that calls it directly."""

    @classmethod
    def decode_token(
        cls,
        token: str,
        secret_key: str | bytes,
        count: int,
        used_counts: Iterable[int] | None = None,
        starting_code: int | None = None,
        value_divider: float = 1,
        restricted_digit_set: bool = False,
        *,
        accept_reset_token: bool = False,
    ) -> tuple[DecodedValue, TokenType, int | None, list[int] | None]:
        """See paygkit.compat.decode_token."""
        return decode_token(
            token,
            secret_key,
            count,
            used_counts=used_counts,
            starting_code=starting_code,
            value_divider=value_divider,
            restricted_digit_set=restricted_digit_set,
            accept_reset_token=accept_reset_token,
        )
