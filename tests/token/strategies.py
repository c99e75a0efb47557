"""Hypothesis strategies and helpers shared by the token property tests."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from paygkit.token import ChainBackend, DeviceParams, TokenType, format_token, parse_token

MAX_STANDARD_UNITS = 995
MAX_EXTENDED_UNITS = 999_999
SPECIAL_UNITS = (998, 999)
STANDARD_MODULUS = 1000
EXTENDED_MODULUS = 1_000_000

GENERATED_TYPES = (
    TokenType.ADD_TIME,
    TokenType.SET_TIME,
    TokenType.DISABLE_PAYG,
    TokenType.COUNTER_SYNC,
)

keys = st.binary(min_size=16, max_size=16)

# 0 is left out: the reference takes a starting code of 0 as "none given".
starting_codes = st.none() | st.integers(1, 999_999_999)

generated_types = st.sampled_from(GENERATED_TYPES)

# Whole units per day as devices store them, and the fractional dividers the
# reference's value_divider also allows.
value_dividers = st.integers(1, 255) | st.floats(0.05, 100, allow_nan=False, allow_infinity=False)


def units_for(token_type: TokenType, extended: bool) -> st.SearchStrategy[int | None]:
    """Units a generator accepts for this type (None for Disable PAYG / Counter Sync)."""
    if not token_type.carries_value:
        return st.none()
    if not extended:
        return st.integers(0, MAX_STANDARD_UNITS)
    return st.integers(0, MAX_EXTENDED_UNITS).filter(lambda units: units not in SPECIAL_UNITS)


@dataclass(frozen=True)
class TokenRequest:
    """One token for the server to make."""

    token_type: TokenType
    units: int | None
    extended: bool


@st.composite
def token_requests(draw: st.DrawFn, extended: bool | None = None) -> TokenRequest:
    """A token request of any generated type; extended ones about a quarter of the time."""
    if extended is None:
        extended = draw(st.integers(0, 3)) == 0
    token_type = draw(generated_types)
    return TokenRequest(token_type, draw(units_for(token_type, extended)), extended)


def make_device(key: bytes, starting_code: int | None, restricted: bool) -> DeviceParams:
    """The device of a drawn key and starting code (None: derived from the key)."""
    return DeviceParams.create(key, starting_code, restricted_digits=restricted)


def raw_token(
    device: DeviceParams, units: int, count: int, *, extended: bool, backend: ChainBackend
) -> str:
    """The token at chain position `count` carrying `units`, parity and range unchecked.

    The generator only makes Disable PAYG / Counter Sync at odd counts and no
    extended 998/999; the reference's test procedure and older servers do,
    and every device must read them, so the decode tests need them too.
    """
    modulus = EXTENDED_MODULUS if extended else STANDARD_MODULUS
    base = (device.starting_code + units) % modulus
    start = device.starting_code - device.starting_code % modulus + base
    walk = backend.ext_walk if extended else backend.std_walk
    end = walk(device.key, start, count)
    return format_token(
        end - end % modulus + base, extended=extended, restricted=device.restricted_digits
    )


def carried_units(device: DeviceParams, token: str) -> int:
    """The value hidden in a token's base, whether or not the token is valid."""
    parsed = parse_token(token, restricted=device.restricted_digits)
    modulus = EXTENDED_MODULUS if parsed.extended else STANDARD_MODULUS
    return (parsed.value - device.starting_code) % modulus


def random_token_texts(extended: bool, restricted: bool) -> st.SearchStrategy[str]:
    """Well-formed token text that almost surely belongs to no device."""
    if restricted:
        length = 20 if extended else 15
        alphabet = "1234"
    else:
        length = 12 if extended else 9
        alphabet = "0123456789"
    return st.text(alphabet=alphabet, min_size=length, max_size=length)


def without_leading_zeros(token: str, restricted: bool) -> str:
    """The token as a spreadsheet or int() leaves it ('1' is the restricted zero)."""
    zero = "1" if restricted else "0"
    return token.lstrip(zero) or zero
