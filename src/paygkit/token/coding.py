"""Generating and decoding OpenPAYGO Tokens (standard and extended).

The maths (SPEC section 2): a value is hidden in the last digits ("base") of
the starting code, the code is hashed `count` times, and the base is put back.
Decoding walks the same chain from count 0 until the token's digits appear.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paygkit.token.chain import CBackend, ChainBackend, PythonBackend, default_backend
from paygkit.token.digits import format_token, parse_token
from paygkit.token.errors import ParameterError
from paygkit.token.model import (
    COUNTER_SYNC_VALUE,
    DISABLE_PAYG_VALUE,
    EXTENDED_MAX_UNITS,
    MAX_ACTIVATION_UNITS,
    MAX_COUNT,
    DecodeResult,
    DeviceParams,
    GeneratedToken,
    TokenType,
    check_int,
)
from paygkit.token.units import days_to_units

if TYPE_CHECKING:
    from paygkit.token.units import Days

STANDARD_MODULUS = 1000
EXTENDED_MODULUS = 1_000_000
# In the order the C code (generate_one, generate_batch) numbers them.
_GENERATED_TYPES = (
    TokenType.ADD_TIME,
    TokenType.SET_TIME,
    TokenType.DISABLE_PAYG,
    TokenType.COUNTER_SYNC,
)


def next_count(count: int, token_type: TokenType) -> int:
    """The first count above `count` with the parity of the type (even = Add Time)."""
    wanted_parity = 0 if token_type is TokenType.ADD_TIME else 1
    return count + 1 if (count + 1) % 2 == wanted_parity else count + 2


def _check_count(name: str, count: object) -> int:
    return check_int(name, count, 0, MAX_COUNT, "counts start at 0 and only grow")


def token_value(
    token_type: TokenType,
    *,
    days: Days | None,
    units: int | None,
    time_divider: int,
    extended: bool,
) -> int:
    """The number a token of this type carries, checked against the protocol's ranges."""
    if not isinstance(token_type, TokenType) or not token_type.is_generated:
        raise ParameterError(
            f"cannot generate a token of type {token_type!r}; choose ADD_TIME, SET_TIME, "
            "DISABLE_PAYG or COUNTER_SYNC"
        )
    if not token_type.carries_value:
        if days is not None or units is not None:
            raise ParameterError(
                f"a {token_type.label} token carries no value; do not give days or units"
            )
        return DISABLE_PAYG_VALUE if token_type is TokenType.DISABLE_PAYG else COUNTER_SYNC_VALUE
    if (days is None) == (units is None):
        raise ParameterError(f"a {token_type.label} token needs exactly one of days or units")
    if units is None:
        assert days is not None
        value = days_to_units(days, time_divider)
    else:
        if isinstance(units, bool) or not isinstance(units, int):
            raise ParameterError(f"units must be an integer, not {type(units).__name__}")
        if units < 0:
            raise ParameterError(f"units must not be negative, got {units}")
        value = units
    if extended:
        if value > EXTENDED_MAX_UNITS:
            given = _given_text(days, units, time_divider, value)
            raise ParameterError(
                f"an extended token carries at most {EXTENDED_MAX_UNITS} units ({given})"
            )
        if value in (DISABLE_PAYG_VALUE, COUNTER_SYNC_VALUE):
            raise ParameterError(
                f"{value} is the {'Disable PAYG' if value == 998 else 'Counter Sync'} value "
                "and cannot be carried by an Add or Set Time token; use 997 or 1000"
            )
    elif value > MAX_ACTIVATION_UNITS:
        given = _given_text(days, units, time_divider, value)
        raise ParameterError(
            f"a token carries at most {MAX_ACTIVATION_UNITS} units ({given}; 996 and 997 "
            "are reserved); split the time over several Add Time tokens"
        )
    return value


def _given_text(days: Days | None, units: int | None, time_divider: int, value: int) -> str:
    """How a refused value was asked for, for its error message (written only on refusal)."""
    if units is None:
        return f"{days} days x time divider {time_divider} = {value} units"
    return f"{value} units"


def generate(
    device: DeviceParams,
    *,
    count: int,
    token_type: TokenType = TokenType.ADD_TIME,
    days: Days | None = None,
    units: int | None = None,
    extended: bool = False,
    backend: ChainBackend | None = None,
) -> GeneratedToken:
    """Make the next token for a device whose last issued count is `count`.

    Give Add/Set Time either `days` (multiplied by the time divider) or raw
    `units`.  The result carries the new count, which the server must store.
    """
    chain = backend or default_backend()
    if isinstance(chain, CBackend):
        # The usual request (int count, int days or units, bool extended) is
        # checked and made in C: the Python checks and result object cost
        # twenty times the hashing at low counts.  Any other comes back None
        # and goes through the checks below, which raise the usual errors.
        made = chain.generate_one(
            device,
            count,
            token_type,
            days,
            units,
            extended,
            DeviceParams,
            GeneratedToken,
            _GENERATED_TYPES,
        )
        if made is not None:
            return made
    return _generate_checked(device, count, token_type, days, units, extended, chain)


def _generate_checked(
    device: DeviceParams,
    count: int,
    token_type: TokenType,
    days: Days | None,
    units: int | None,
    extended: bool,
    chain: ChainBackend,
) -> GeneratedToken:
    """generate() in Python: every check, with its usual error, then the token."""
    _check_count("count", count)
    value = token_value(
        token_type, days=days, units=units, time_divider=device.time_divider, extended=extended
    )
    new_count = next_count(count, token_type)
    if new_count > MAX_COUNT:
        raise ParameterError(f"count {count} is too high to issue another token")
    return _make(device, token_type, value, new_count, extended, chain)


def generate_units(
    device: DeviceParams, count: int, token_type: TokenType, units: int | None, extended: bool
) -> GeneratedToken:
    """generate() with the value in units, its arguments in order, on the default backend.

    For wrappers that resolve their own arguments first (paygkit.compat): the
    keyword call of generate() cost half again a token at low counts.
    """
    chain = default_backend()
    if isinstance(chain, CBackend):
        made = chain.generate_one(
            device, count, token_type, None, units, extended,
            DeviceParams, GeneratedToken, _GENERATED_TYPES,
        )  # fmt: skip
        if made is not None:
            return made
    return _generate_checked(device, count, token_type, None, units, extended, chain)


UnitsMaker = Callable[[DeviceParams, int, TokenType, int | None, bool], GeneratedToken | None]
"""generate_units' arguments, in order; None for a request to give to generate_units."""


def units_maker() -> UnitsMaker:
    """generate_units on the default backend, but free to answer None: bind it once, then call it.

    On the C backend it is the C code itself, with no Python frame around it
    (that frame cost a third of a token at low counts, which a wrapper making
    one token per call, paygkit.compat, pays every time).  It makes the usual
    request and returns None for any other: give that request to
    generate_units, which checks it and raises the usual error or makes it.
    On other backends it is generate_units itself, which never returns None.
    """
    chain = default_backend()
    if isinstance(chain, CBackend):
        return chain.units_maker(DeviceParams, GeneratedToken, _GENERATED_TYPES)
    return generate_units


def reset_token(device: DeviceParams, *, backend: ChainBackend | None = None) -> GeneratedToken:
    """The reset token: a Counter Sync at count 0, the starting code with 999 put in.

    It puts a device back to count 0, after which every token it ever took
    works again: paygkit devices refuse it unless configured to take it
    (SPEC 3.1), and it is never a customer's token.
    """
    return _make(
        device,
        TokenType.COUNTER_SYNC,
        COUNTER_SYNC_VALUE,
        0,
        extended=False,
        chain=backend or default_backend(),
    )


def put_base(code: int, base: int, modulus: int) -> int:
    """`code` with its last digits (its base, `code % modulus`) replaced by `base`."""
    return code - code % modulus + base


def _make(
    device: DeviceParams,
    token_type: TokenType,
    value: int,
    new_count: int,
    extended: bool,
    chain: ChainBackend,
) -> GeneratedToken:
    """Walk the chain for a checked request and write the token."""
    modulus = EXTENDED_MODULUS if extended else STANDARD_MODULUS
    base = (device.starting_code + value) % modulus
    walk = chain.ext_walk if extended else chain.std_walk
    end = walk(device.key, put_base(device.starting_code, base, modulus), new_count)
    return _finish(device, token_type, value, new_count, end, base, extended)


def _finish(
    device: DeviceParams,
    token_type: TokenType,
    value: int,
    new_count: int,
    chain_end: int,
    base: int,
    extended: bool,
) -> GeneratedToken:
    """The token from the end of its chain: the base put back, written out."""
    modulus = EXTENDED_MODULUS if extended else STANDARD_MODULUS
    return GeneratedToken(
        token_type=token_type,
        units=value if token_type.carries_value else None,
        count=new_count,
        digits=format_token(
            put_base(chain_end, base, modulus),
            extended=extended,
            restricted=device.restricted_digits,
        ),
        extended=extended,
        restricted=device.restricted_digits,
        time_divider=device.time_divider,
    )


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One token to make in a batch (see generate_batch)."""

    device: DeviceParams
    count: int
    token_type: TokenType = TokenType.ADD_TIME
    days: Days | None = None
    units: int | None = None
    extended: bool = False


def _cached_token_value(request: TokenRequest, cache: dict[tuple[object, ...], int]) -> int:
    def checked() -> int:
        return token_value(
            request.token_type,
            days=request.days,
            units=request.units,
            time_divider=request.device.time_divider,
            extended=request.extended,
        )

    if not isinstance(request.days, Hashable) or not isinstance(request.units, Hashable):
        return checked()  # not a number: let the check say so
    # The types are part of the key because 1 == 1.0 == True, yet they are
    # not the same request (True is refused, floats round like the reference).
    choice = (
        request.token_type,
        type(request.days),
        request.days,
        type(request.units),
        request.units,
        request.device.time_divider,
        request.extended,
    )
    value = cache.get(choice)
    if value is None:
        value = cache[choice] = checked()
    return value


def _plan_request(
    position: int, request: TokenRequest, values: dict[tuple[object, ...], int]
) -> tuple[int, int]:
    """A request's value and new count, checked; the error names the request."""
    try:
        _check_count("count", request.count)
        value = _cached_token_value(request, values)
    except ParameterError as error:
        raise ParameterError(f"request {position}: {error}") from None
    new_count = next_count(request.count, request.token_type)
    if new_count > MAX_COUNT:
        raise ParameterError(f"request {position}: count {request.count} is too high")
    return value, new_count


def generate_batch(
    requests: Sequence[TokenRequest],
    *,
    backend: ChainBackend | None = None,
    threads: int = 2,
) -> list[GeneratedToken]:
    """Make one token per request, many devices at once.

    Standard tokens go through the backend's batch loop (several chains in
    lock-step, split over `threads`); extended ones are made one by one.
    Every request is checked before any hashing starts, so one bad request
    fails the batch without partial output.
    """
    chain = backend or default_backend()
    # A fleet's requests repeat a handful of (type, time, divider) choices, so
    # each distinct one is checked once; this is most of the Python cost.
    values: dict[tuple[object, ...], int] = {}
    if isinstance(chain, CBackend):
        # The C code checks the usual requests itself (a few Python checks
        # per request cost several times the hashing at low counts) and
        # hands every other one to the same Python checks as below.
        def plan(position: int, request: Any) -> tuple[int, int]:
            return _plan_request(position, request, values)

        return chain.generate_batch(
            requests, threads, plan, (TokenRequest, DeviceParams, GeneratedToken), _GENERATED_TYPES
        )

    planned = [
        (request, *_plan_request(position, request, values), position)
        for position, request in enumerate(requests)
    ]
    results: list[GeneratedToken | None] = [None] * len(planned)
    standard = [plan for plan in planned if not plan[0].extended]
    keys = b"".join(plan[0].device.key for plan in standard)
    starts = []
    bases = []
    for request, value, _new_count, _ in standard:
        code = request.device.starting_code
        base = (code + value) % STANDARD_MODULUS
        bases.append(base)
        starts.append(put_base(code, base, STANDARD_MODULUS))
    ends = chain.std_walk_many(keys, starts, [plan[2] for plan in standard], threads)
    for (request, value, new_count, position), end, base in zip(standard, ends, bases, strict=True):
        results[position] = _finish(
            request.device, request.token_type, value, new_count, end, base, extended=False
        )
    for request, value, new_count, position in planned:
        if request.extended:
            # Checked above already; only the chain is left to walk.
            results[position] = _make(
                request.device, request.token_type, value, new_count, True, chain
            )
    return [result for result in results if result is not None]


def _token_type_at(units: int, count: int) -> TokenType:
    # The value decides the meaning of the special values at either parity;
    # parity only separates Add Time from Set Time.
    if units == COUNTER_SYNC_VALUE:
        return TokenType.COUNTER_SYNC
    if units == DISABLE_PAYG_VALUE:
        return TokenType.DISABLE_PAYG
    return TokenType.SET_TIME if count % 2 else TokenType.ADD_TIME


def updated_used_counts(
    used: Iterable[int], count: int, token_type: TokenType, unordered_window: int
) -> tuple[int, ...]:
    """The used-count window after accepting a token at `count`.

    The window is the `unordered_window` counts up to the highest count used,
    as the reference keeps it.  A Set Time, Disable PAYG or Counter Sync
    token marks the whole window used, so no older token can be entered after
    it; an Add Time token marks only its own count.  Every count accepted
    within the unordered window below the last count stays in it, which is
    all that exactly-once needs.  Counts are never negative, so none are
    recorded.
    """
    used_set = set(used)
    highest = max(max(used_set, default=count), count)
    window = range(max(0, highest - unordered_window), highest + 1)
    if token_type is TokenType.ADD_TIME:
        used_set.add(count)
        return tuple([c for c in window if c in used_set])
    return tuple(window)


_INT_ONLY = frozenset({int})


def _checked_used_counts(used_counts: object) -> tuple[tuple[int, ...], int, int]:
    """The used counts as a tuple, with their lowest and highest (0 and 0 when none)."""
    # A device's used counts arrive as a tuple on every decode: the checks
    # run at C speed (map, set, max) so that they cost no more than the
    # search itself, which is a few microseconds.
    if type(used_counts) is tuple:
        used: tuple[object, ...] = used_counts
    elif isinstance(used_counts, str | bytes) or not isinstance(used_counts, Iterable):
        raise ParameterError(
            "used_counts must be a list of counts (an empty list for a new device), "
            f"not {type(used_counts).__name__}"
        )
    else:
        used = tuple(used_counts)
    if not used:
        return (), 0, 0
    if not set(map(type, used)) <= _INT_ONLY:
        for c in used:  # int subclasses other than bool (IntEnum...) are counts too
            if isinstance(c, bool) or not isinstance(c, int):
                raise ParameterError(f"used counts must be integers, got {c!r}")
    counts: tuple[int, ...] = used  # type: ignore[assignment]
    highest = max(counts)
    if highest > MAX_COUNT:
        raise ParameterError(
            f"used counts must be at most {MAX_COUNT}, got {highest}; "
            "they are counts of tokens the device accepted"
        )
    return counts, min(counts), highest


def decode(
    device: DeviceParams,
    token: str,
    *,
    last_count: int,
    used_counts: Iterable[int] = (),
    accept_reset_token: bool = False,
    backend: ChainBackend | None = None,
) -> DecodeResult:
    """What a device with this counter state makes of a typed token.

    Raises TokenFormatError when the text is not a token at all; a token that
    does not belong to the device is an INVALID result, and one already
    entered (or made obsolete by a later Set/Disable/Sync token) is
    ALREADY_USED.  The returned last_count and used_counts are the state to
    store.

    Exactly once (SPEC 3.1, where paygkit departs from the reference on
    purpose): a device accepts each count at most once in its life and its
    last count never goes down.  A token is accepted when its count is above
    the last count, or, for an Add Time token only, when it is one of the
    `windows.unordered` counts below it and was never used.  A Counter Sync
    is accepted only above the last count; the reference also takes one up
    to 64 counts below and moves the count back, which re-opens every token
    above it to be entered again.  The one exception is the reset token
    (Counter Sync at count 0), which is refused unless `accept_reset_token`;
    then it is taken as the reference takes it (while the last count is
    below the forward window) and puts the device back to count 0.
    """
    _check_count("last_count", last_count)
    given, lowest_used, highest_used = _checked_used_counts(used_counts)
    # The reference records the window's negative counts after an early Set
    # Time; no token has such a count, so they say nothing.
    used = given if lowest_used >= 0 else tuple(c for c in given if c >= 0)
    if not isinstance(accept_reset_token, bool):
        raise ParameterError("accept_reset_token must be True or False")
    # The last count is the highest count ever accepted.  State written by a
    # reference-rule decoder may hold used counts above a last count that a
    # backward Counter Sync lowered; those counts were accepted all the same.
    highest = highest_used if highest_used > last_count else last_count
    parsed = parse_token(token, restricted=device.restricted_digits)
    modulus = EXTENDED_MODULUS if parsed.extended else STANDARD_MODULUS
    windows = device.windows
    token_base = parsed.value % modulus
    units = (token_base - device.starting_code) % modulus
    start = put_base(device.starting_code, token_base, modulus)
    # The reference searches the larger Counter Sync window for standard
    # tokens only; extended tokens always use the forward window.
    if units == COUNTER_SYNC_VALUE and not parsed.extended:
        search_to = highest + windows.counter_sync
    else:
        search_to = highest + windows.forward
    chain = backend or default_backend()
    high_digits = parsed.value // modulus
    if isinstance(chain, CBackend | PythonBackend):
        # Every count above `highest` is accepted and the loop below takes
        # the first acceptable count, so the search can end at the first
        # match above `highest`: the counts it keeps (all those up to that
        # one) decide the answer exactly as the whole window would.
        find = chain.ext_find if parsed.extended else chain.std_find
        matches = find(device.key, start, high_digits, search_to, highest)
    else:
        find_all = chain.ext_find if parsed.extended else chain.std_find
        matches = find_all(device.key, start, high_digits, search_to)

    used_set = set(used)
    for count in matches:
        token_type = _token_type_at(units, count)
        if count > highest:
            valid = True
        elif token_type is TokenType.COUNTER_SYNC:
            valid = (
                accept_reset_token
                and count == 0
                # At count 0 already, a reset would change nothing.
                and 0 < highest < windows.forward
            )
        else:
            # Unordered entry, as the reference has it: an even count (Add
            # Time, or a Disable PAYG made at an even count) never used.
            valid = count % 2 == 0 and count > highest - windows.unordered and count not in used_set
        if not valid:
            continue
        new_used: tuple[int, ...]
        if count == 0 and token_type is TokenType.COUNTER_SYNC:
            # The reset token: the documented exception, the device starts over.
            new_last, new_used = 0, (0,)
        else:
            new_last = max(highest, count)
            new_used = updated_used_counts(used, count, token_type, windows.unordered)
        return DecodeResult(
            token_type=token_type,
            units=units if token_type.carries_value else None,
            count=count,
            last_count=new_last,
            used_counts=new_used,
            extended=parsed.extended,
            time_divider=device.time_divider,
        )
    return DecodeResult(
        token_type=TokenType.ALREADY_USED if matches else TokenType.INVALID,
        units=None,
        count=matches[0] if matches else None,
        last_count=last_count,
        used_counts=given,
        extended=parsed.extended,
        time_divider=device.time_divider,
    )
