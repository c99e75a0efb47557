"""How a token is made, step by step: a teaching aid for integrators.

`explain()` makes the same token as `generate()` and records every stage of
the maths of SPEC section 2 on the way: the value, the base hidden in the
starting code, the count and its parity, the first hash steps in full
(message bytes, SipHash-2-4 output, the fold and its correction), the end of
the chain, the base put back and, for restricted-digit devices, the bit pairs
that become the digits 1-4.  It is pure: no I/O, and the result is a tree of
frozen dataclasses that a CLI or a notebook can render.

    >>> from paygkit.token import DeviceParams, explain
    >>> device = DeviceParams.create("bc41ec9530f6dac86b1a29ab82edc5fb", 516959010)
    >>> story = explain(device, count=1, units=1)
    >>> story.masked_starting_code, story.new_count, story.grouped
    (516959011, 2, '588 224 011')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paygkit.token.chain import ChainBackend, default_backend
from paygkit.token.coding import (
    EXTENDED_MODULUS,
    STANDARD_MODULUS,
    generate,
    next_count,
    put_base,
    token_value,
)
from paygkit.token.digits import (
    RESTRICTED_EXTENDED_DIGITS,
    RESTRICTED_STANDARD_DIGITS,
    format_token,
    to_restricted,
)
from paygkit.token.errors import ParameterError
from paygkit.token.model import (
    DeviceParams,
    GeneratedToken,
    TokenType,
    group_digits,
)
from paygkit.token.siphash import ext_fold, siphash24, std_fold, std_message

if TYPE_CHECKING:
    from fractions import Fraction

    from paygkit.token.units import Days

STANDARD_FOLD_LIMIT = 999_999_999
STANDARD_FOLD_SUBTRACT = 73_741_825
EXTENDED_FOLD_LIMIT = 999_999_999_999
EXTENDED_FOLD_SUBTRACT = 99_511_627_777
MAX_STEPS_SHOWN = 1000

__all__ = [
    "HashStep",
    "RestrictedConversion",
    "TokenExplanation",
    "ValueExplanation",
    "explain",
]


@dataclass(frozen=True, slots=True)
class ValueExplanation:
    """The number the token carries and where it came from.

    `source` is "days" (days x time divider, rounded half to even), "units"
    (given as is) or "fixed" (998 for Disable PAYG, 999 for Counter Sync).
    `days` is the number of days as given, or None when units were given.
    """

    token_type: TokenType
    value: int
    source: str
    days: Days | None
    time_divider: int
    note: str

    @property
    def days_carried(self) -> Fraction | None:
        """The time the token carries in days (units / time divider), None if it carries none."""
        if not self.token_type.carries_value:
            return None
        from fractions import Fraction  # slow to import, so only when asked

        return Fraction(self.value, self.time_divider)

    @property
    def units(self) -> int | None:
        """The time units of an Add/Set Time token; None for Disable PAYG / Counter Sync."""
        return self.value if self.token_type.carries_value else None


@dataclass(frozen=True, slots=True)
class HashStep:
    """One step `next(code)` of the hash chain.

    `count` is the chain position this step produces (step 1 turns the masked
    starting code, count 0, into the value at count 1).  `folded` is the value
    before the correction, `output_code` after it.
    """

    count: int
    input_code: int
    message: bytes
    digest: int
    folded: int
    output_code: int
    extended: bool

    @property
    def message_hex(self) -> str:
        """The 8 message bytes, as spaced hex pairs."""
        return self.message.hex(" ")

    @property
    def digest_hex(self) -> str:
        """The SipHash-2-4 output as 16 hex digits."""
        return f"{self.digest:016x}"

    @property
    def corrected(self) -> bool:
        """Whether the folded value was too large and had the constant subtracted."""
        return self.folded != self.output_code

    @property
    def fold_rule(self) -> str:
        """How the 64-bit hash becomes the folded value, in words."""
        if self.extended:
            return "bits 24..63 of the hash (40 bits)"
        return "high 32 bits XOR low 32 bits, then bits 2..31 (30 bits)"


@dataclass(frozen=True, slots=True)
class RestrictedConversion:
    """The token value written two bits per digit, each pair + 1 (digits 1-4)."""

    value: int
    bits: str
    pairs: tuple[str, ...]
    digits: str

    @property
    def grouped(self) -> str:
        return group_digits(self.digits)


@dataclass(frozen=True, slots=True)
class TokenExplanation:
    """Every stage of making one token; `digits` equals `generate(...)`'s digits."""

    token_type: TokenType
    extended: bool
    restricted: bool
    value: ValueExplanation
    modulus: int
    starting_code: int
    starting_code_base: int
    token_base: int
    masked_starting_code: int
    previous_count: int
    new_count: int
    count_note: str
    steps: tuple[HashStep, ...]
    steps_skipped: int
    chain_end: int
    token_value: int
    restricted_conversion: RestrictedConversion | None
    digits: str
    token: GeneratedToken
    backend: str

    @property
    def base_digits(self) -> int:
        """How many trailing digits carry the value: 3, or 6 for an extended token."""
        return 6 if self.extended else 3

    @property
    def code_digits(self) -> int:
        """The width of a chain value: 9 digits, or 12 for an extended token."""
        return 12 if self.extended else 9

    @property
    def fold_limit(self) -> int:
        return EXTENDED_FOLD_LIMIT if self.extended else STANDARD_FOLD_LIMIT

    @property
    def fold_subtract(self) -> int:
        return EXTENDED_FOLD_SUBTRACT if self.extended else STANDARD_FOLD_SUBTRACT

    @property
    def steps_total(self) -> int:
        """The number of hash steps in the chain: the new count."""
        return self.new_count

    @property
    def grouped(self) -> str:
        return group_digits(self.digits)


def _units(value: int) -> str:
    return f"{value} unit" if value == 1 else f"{value} units"


def _days(days: Days) -> str:
    return f"{days} day" if days == 1 else f"{days} days"


def _value_explanation(
    token_type: TokenType,
    value: int,
    *,
    days: Days | None,
    units: int | None,
    time_divider: int,
) -> ValueExplanation:
    if not token_type.carries_value:
        return ValueExplanation(
            token_type=token_type,
            value=value,
            source="fixed",
            days=None,
            time_divider=time_divider,
            note=f"a {token_type.label} token always carries the fixed value {value}",
        )
    if days is not None:
        exact = days * time_divider
        rounding = "" if exact == value else f" (rounded half to even from {exact})"
        return ValueExplanation(
            token_type=token_type,
            value=value,
            source="days",
            days=days,
            time_divider=time_divider,
            note=f"{_days(days)} x time divider {time_divider} = {_units(value)}{rounding}",
        )
    assert units is not None
    from fractions import Fraction

    return ValueExplanation(
        token_type=token_type,
        value=value,
        source="units",
        days=None,
        time_divider=time_divider,
        note=f"{_units(value)} given directly (= {_days(Fraction(value, time_divider))} "
        f"at time divider {time_divider})",
    )


def _count_note(count: int, new_count: int, token_type: TokenType) -> str:
    if token_type is TokenType.ADD_TIME:
        parity, kinds = "even", "Add Time"
    else:
        parity, kinds = "odd", "Set Time / Disable PAYG / Counter Sync"
    return (
        f"{kinds} tokens use {parity} counts: the first {parity} count above {count} "
        f"is {new_count} (count + {new_count - count})"
    )


def _hash_step(key: bytes, code: int, count: int, *, extended: bool) -> HashStep:
    if extended:
        message = code.to_bytes(8, "big")
        digest = siphash24(key, message)
        folded = digest >> 24
        output = ext_fold(digest)
    else:
        message = std_message(code).to_bytes(8, "little")
        digest = siphash24(key, message)
        folded = ((digest ^ (digest >> 32)) & 0xFFFFFFFF) >> 2
        output = std_fold(digest)
    return HashStep(
        count=count,
        input_code=code,
        message=message,
        digest=digest,
        folded=folded,
        output_code=output,
        extended=extended,
    )


def _restricted(value: int, *, extended: bool) -> RestrictedConversion:
    digit_count = RESTRICTED_EXTENDED_DIGITS if extended else RESTRICTED_STANDARD_DIGITS
    bits = f"{value:0{2 * digit_count}b}"
    pairs = tuple(bits[i : i + 2] for i in range(0, len(bits), 2))
    return RestrictedConversion(
        value=value, bits=bits, pairs=pairs, digits=to_restricted(value, digit_count)
    )


def explain(
    device: DeviceParams,
    *,
    count: int,
    token_type: TokenType = TokenType.ADD_TIME,
    days: Days | None = None,
    units: int | None = None,
    extended: bool = False,
    max_steps_shown: int = 8,
    backend: ChainBackend | None = None,
) -> TokenExplanation:
    """Make the token `generate()` would make, recording every stage of the maths.

    The first `max_steps_shown` hash steps are recorded in full; the rest of
    the chain runs on the backend and is only counted.  Raises the same
    ParameterError as `generate()` for a request it would refuse.
    """
    if (
        isinstance(max_steps_shown, bool)
        or not isinstance(max_steps_shown, int)
        or not 0 <= max_steps_shown <= MAX_STEPS_SHOWN
    ):
        raise ParameterError(
            f"max_steps_shown must be an integer between 0 and {MAX_STEPS_SHOWN}, "
            f"got {max_steps_shown!r}"
        )
    chain = backend or default_backend()
    # generate() checks the whole request first, so explain refuses exactly what it refuses.
    token = generate(
        device,
        count=count,
        token_type=token_type,
        days=days,
        units=units,
        extended=extended,
        backend=chain,
    )
    value = token_value(
        token_type, days=days, units=units, time_divider=device.time_divider, extended=extended
    )
    new_count = next_count(count, token_type)

    modulus = EXTENDED_MODULUS if extended else STANDARD_MODULUS
    starting_base = device.starting_code % modulus
    token_base = (starting_base + value) % modulus
    masked = put_base(device.starting_code, token_base, modulus)

    shown = min(new_count, max_steps_shown)
    steps: list[HashStep] = []
    code = masked
    for position in range(1, shown + 1):
        step = _hash_step(device.key, code, position, extended=extended)
        steps.append(step)
        code = step.output_code
    remaining = new_count - shown
    if remaining:
        walk = chain.ext_walk if extended else chain.std_walk
        code = walk(device.key, code, remaining)
    chain_end = code
    final_value = put_base(chain_end, token_base, modulus)
    conversion = _restricted(final_value, extended=extended) if device.restricted_digits else None
    digits = format_token(final_value, extended=extended, restricted=device.restricted_digits)
    if digits != token.digits or new_count != token.count:
        raise RuntimeError(
            "internal error: the explained token differs from the generated one; "
            "please report this with the backend name"
        )
    return TokenExplanation(
        token_type=token_type,
        extended=extended,
        restricted=device.restricted_digits,
        value=_value_explanation(
            token_type, value, days=days, units=units, time_divider=device.time_divider
        ),
        modulus=modulus,
        starting_code=device.starting_code,
        starting_code_base=starting_base,
        token_base=token_base,
        masked_starting_code=masked,
        previous_count=count,
        new_count=new_count,
        count_note=_count_note(count, new_count, token_type),
        steps=tuple(steps),
        steps_skipped=remaining,
        chain_end=chain_end,
        token_value=final_value,
        restricted_conversion=conversion,
        digits=digits,
        token=token,
        backend=chain.name,
    )
