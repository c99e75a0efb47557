"""openpaygo 0.6.3 as an oracle: paygkit must make and read the very same tokens.

Random keys, starting codes, counts, values, types, dividers, digit modes and
extended tokens go to both libraries.  Where the reference is knowingly wrong
(SPEC section 3) its answer is normalised to the fixed behaviour before the
comparison; each normalisation is spelled out where it is applied.  Anything
else that differs is a protocol disagreement.

The properties run on the C backend with many examples and on the pure-Python
backend with fewer and smaller counts (it hashes at about the reference's
speed).  paygkit.compat always runs on the default backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from paygkit import compat
from paygkit.token import (
    ChainBackend,
    DecodeResult,
    DeviceParams,
    PythonBackend,
    TokenType,
    decode,
    generate,
    load_c_backend,
)
from tests.token.strategies import (
    MAX_EXTENDED_UNITS,
    MAX_STANDARD_UNITS,
    SPECIAL_UNITS,
    TokenRequest,
    carried_units,
    generated_types,
    keys,
    make_device,
    random_token_texts,
    raw_token,
    starting_codes,
    token_requests,
    value_dividers,
    without_leading_zeros,
)

openpaygo = pytest.importorskip("openpaygo")

pytestmark = pytest.mark.oracle

C_ENGINE = load_c_backend()
PY_ENGINE = PythonBackend()
needs_c = pytest.mark.skipif(C_ENGINE is None, reason="C extension not built")

# The reference costs about 8 µs per hash step, so one example at count 300
# takes a few ms; the example counts keep the whole file well under a minute.
C_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
C_SEQUENCE_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

C_MAX_COUNT = 300

# Last count minus token count at the edges of the decode windows: 64 ahead
# (100 for Counter Sync), Counter Sync 64 behind, Add Time 16 behind.
window_edges = st.sampled_from([-101, -100, -99, -65, -64, -63, -1, 0, 1, 15, 16, 17, 63, 64, 65])
PY_MAX_COUNT = 60

CompatResult = tuple[Any, int, int | None, list[int] | None]

_CORE_TO_INT = {
    TokenType.ADD_TIME: compat.TokenType.ADD_TIME,
    TokenType.SET_TIME: compat.TokenType.SET_TIME,
    TokenType.DISABLE_PAYG: compat.TokenType.DISABLE_PAYG,
    TokenType.COUNTER_SYNC: compat.TokenType.COUNTER_SYNC,
    TokenType.ALREADY_USED: compat.TokenType.ALREADY_USED,
    TokenType.INVALID: compat.TokenType.INVALID,
}


def _engine(name: str) -> ChainBackend:
    if name == "c":
        assert C_ENGINE is not None
        return C_ENGINE
    return PY_ENGINE


def reference_units(value: float, divider: float) -> int:
    """The units the reference puts in a token for `value` (its exact formula)."""
    return int(round(value * divider, 0))


ALREADY_USED_ANSWER: CompatResult = (None, compat.TokenType.ALREADY_USED, None, None)


def expected_from_reference(
    ref: CompatResult, units: int, last_count: int | None = None
) -> CompatResult:
    """The answer paygkit.compat must give where the reference gave `ref`.

    `units` is the value carried in the token's base (the reference's raw
    value before division); `last_count` the device's last count, for the
    exactly-once rule (None where the test has no backward Counter Sync).
    """
    value, kind, count, used = ref
    if kind in (compat.TokenType.INVALID, compat.TokenType.ALREADY_USED):
        return ref
    # Deliberate difference (SPEC 3.1, exactly once): a Counter Sync at or
    # below the last count would move the device back and re-open every token
    # above it; paygkit refuses it as already used (the reset token included).
    if units == 999 and last_count is not None and count is not None and count <= last_count:
        return ALREADY_USED_ANSWER
    # Deliberate difference: the value decides the meaning of 998 and 999.
    # The reference labels them ADD_TIME at even counts and, in extended
    # tokens, SET_TIME/ADD_TIME by parity; paygkit says DISABLE_PAYG /
    # COUNTER_SYNC in every case.  The reference also divides them by the
    # value divider; paygkit returns the raw 998 / 999.
    if units == 998:
        value, kind = 998, compat.TokenType.DISABLE_PAYG
    elif units == 999:
        value, kind = 999, compat.TokenType.COUNTER_SYNC
    # Deliberate difference: after a Set Time, Disable PAYG or Counter Sync
    # below count 16 the reference records the window's negative counts;
    # paygkit keeps only counts that exist.
    if used is not None:
        used = [c for c in used if c >= 0]
    return value, kind, count, used


def assert_same_answer(got: CompatResult, expected: CompatResult) -> None:
    """Equal, and the value of the same Python type (reference users test `if value`)."""
    assert got == expected
    assert type(got[0]) is type(expected[0])


def assert_core_agrees(core: DecodeResult, expected: CompatResult, units: int) -> None:
    """The core's result says what the (normalised) reference said."""
    _value, kind, count, used = expected
    assert _CORE_TO_INT[core.token_type] == kind
    if kind in (compat.TokenType.INVALID, compat.TokenType.ALREADY_USED):
        return
    assert core.count == count
    assert core.units == (units if core.token_type.carries_value else None)
    if used is not None:
        assert list(core.used_counts) == used


def call_reference_decode(
    token: str,
    key: bytes,
    last_count: int,
    used: list[int] | None,
    starting_code: int | None,
    divider: float,
    restricted: bool,
) -> CompatResult:
    result: CompatResult = openpaygo.decode_token(
        token=token,
        secret_key=key.hex(),
        count=last_count,
        used_counts=used,
        starting_code=starting_code,
        value_divider=divider,
        restricted_digit_set=restricted,
    )
    return result


# ---------------------------------------------------------------------------
# (a) generation


@dataclass(frozen=True)
class GenerateCase:
    key: bytes
    starting_code: int | None
    count: int
    token_type: TokenType
    value: float | None
    divider: float
    restricted: bool
    extended: bool


@st.composite
def generate_cases(draw: st.DrawFn, max_count: int) -> GenerateCase:
    token_type = draw(generated_types)
    extended = draw(st.booleans())
    divider = draw(value_dividers)
    value: float | None
    if token_type.carries_value:
        top = (MAX_EXTENDED_UNITS if extended else MAX_STANDARD_UNITS) + 3
        # Days that are whole units (what a server computes) or any float in
        # range, a few above the maximum so that both refuse them.
        units = draw(st.integers(0, top) | st.sampled_from(SPECIAL_UNITS))
        value = draw(
            st.sampled_from([units / divider, float(units) / divider])
            | st.floats(0, top / divider, allow_nan=False, allow_infinity=False)
        )
    else:
        # The reference refuses only a truthy value for these types.
        value = draw(st.sampled_from([None, 0, 0.0]))
    return GenerateCase(
        key=draw(keys),
        starting_code=draw(starting_codes),
        count=draw(st.integers(0, max_count)),
        token_type=token_type,
        value=value,
        divider=divider,
        restricted=draw(st.booleans()),
        extended=extended,
    )


def check_generate(backend: ChainBackend, case: GenerateCase) -> None:
    try:
        expected = openpaygo.generate_token(
            secret_key=case.key.hex(),
            count=case.count,
            value=case.value,
            token_type=int(_CORE_TO_INT[case.token_type]),
            starting_code=case.starting_code,
            value_divider=case.divider,
            restricted_digit_set=case.restricted,
            extended_token=case.extended,
        )
    except ValueError:
        with pytest.raises(ValueError, match="at most"):
            compat.generate_token(
                case.key.hex(),
                case.count,
                value=case.value,
                token_type=_CORE_TO_INT[case.token_type],
                starting_code=case.starting_code,
                value_divider=case.divider,
                restricted_digit_set=case.restricted,
                extended_token=case.extended,
            )
        return

    units = None
    if case.token_type.carries_value:
        assert case.value is not None
        units = reference_units(case.value, case.divider)
        if case.extended and units in SPECIAL_UNITS:
            # Deliberate difference: the reference makes extended Add/Set
            # tokens carrying 998/999, which devices read as Disable PAYG /
            # Counter Sync; paygkit refuses to make them.
            with pytest.raises(ValueError, match="cannot be carried"):
                compat.generate_token(
                    case.key.hex(),
                    case.count,
                    value=case.value,
                    token_type=_CORE_TO_INT[case.token_type],
                    starting_code=case.starting_code,
                    value_divider=case.divider,
                    restricted_digit_set=case.restricted,
                    extended_token=True,
                )
            return

    got = compat.generate_token(
        case.key.hex(),
        case.count,
        value=case.value,
        token_type=_CORE_TO_INT[case.token_type],
        starting_code=case.starting_code,
        value_divider=case.divider,
        restricted_digit_set=case.restricted,
        extended_token=case.extended,
    )
    assert got == expected

    device = make_device(case.key, case.starting_code, case.restricted)
    made = generate(
        device,
        count=case.count,
        token_type=case.token_type,
        units=units,
        extended=case.extended,
        backend=backend,
    )
    assert (made.count, made.digits) == expected

    if case.value is not None and isinstance(case.divider, int) and case.token_type.carries_value:
        # The core's own days path must round like the reference too.
        per_day = DeviceParams(
            key=device.key,
            starting_code=device.starting_code,
            time_divider=case.divider,
            restricted_digits=case.restricted,
        )
        by_days = generate(
            per_day,
            count=case.count,
            token_type=case.token_type,
            days=case.value,
            extended=case.extended,
            backend=backend,
        )
        assert (by_days.count, by_days.digits) == expected


@needs_c
@C_SETTINGS
@given(case=generate_cases(C_MAX_COUNT))
def test_generate_agrees_with_reference_c(case: GenerateCase) -> None:
    check_generate(_engine("c"), case)


@PY_SETTINGS
@given(case=generate_cases(PY_MAX_COUNT))
def test_generate_agrees_with_reference_python(case: GenerateCase) -> None:
    check_generate(_engine("python"), case)


# ---------------------------------------------------------------------------
# (b) decoding single tokens


@dataclass(frozen=True)
class DecodeCase:
    key: bytes
    starting_code: int | None
    restricted: bool
    extended: bool
    token_count: int | None
    units: int
    random_text: str | None
    last_count: int
    used: tuple[int, ...]
    divider: float
    drop_leading_zeros: bool


@st.composite
def decode_cases(draw: st.DrawFn, max_count: int) -> DecodeCase:
    restricted = draw(st.booleans())
    extended = draw(st.booleans())
    random_text = None
    token_count = None
    units = 0
    if draw(st.integers(0, 5)) == 0:
        random_text = draw(random_token_texts(extended, restricted))
    else:
        token_count = draw(st.integers(0, max_count))
        # Any count parity and every value, including Disable PAYG / Counter
        # Sync at even counts and in extended tokens, and the reserved 996/997.
        top = MAX_EXTENDED_UNITS if extended else 997
        units = draw(st.integers(0, top) | st.sampled_from(SPECIAL_UNITS))
    near = token_count if token_count is not None else draw(st.integers(0, max_count))
    last_count = max(0, near + draw(window_edges | st.integers(-110, 110)))
    # A device's used counts never lie above its last count (SPEC 3.1: the
    # last count is the highest count accepted); test_inconsistent_state_*
    # covers state written by a reference-rule decoder.
    used = draw(st.lists(st.integers(last_count - 20, last_count), min_size=1, max_size=12))
    if token_count is not None and token_count <= last_count and draw(st.booleans()):
        used.append(token_count)
    return DecodeCase(
        key=draw(keys),
        starting_code=draw(starting_codes),
        restricted=restricted,
        extended=extended,
        token_count=token_count,
        units=units,
        random_text=random_text,
        last_count=last_count,
        used=tuple(used),
        divider=draw(value_dividers),
        drop_leading_zeros=draw(st.booleans()),
    )


def check_decode(backend: ChainBackend, case: DecodeCase) -> None:
    device = make_device(case.key, case.starting_code, case.restricted)
    if case.random_text is not None:
        token = case.random_text
    else:
        assert case.token_count is not None
        token = raw_token(
            device, case.units, case.token_count, extended=case.extended, backend=backend
        )
    units = carried_units(device, token)
    text = token
    if case.drop_leading_zeros:
        short = without_leading_zeros(token, case.restricted)
        standard_length = 15 if case.restricted else 9
        # An extended token cut to standard length is read as a standard one
        # by both libraries; keep the case about lost zeros only.
        if not case.extended or len(short) > standard_length:
            text = short

    core = decode(device, token, last_count=case.last_count, used_counts=case.used, backend=backend)
    got = compat.decode_token(
        text,
        case.key.hex(),
        case.last_count,
        used_counts=list(case.used),
        starting_code=case.starting_code,
        value_divider=case.divider,
        restricted_digit_set=case.restricted,
    )
    try:
        ref = call_reference_decode(
            text,
            case.key,
            case.last_count,
            list(case.used),
            case.starting_code,
            case.divider,
            case.restricted,
        )
    except UnboundLocalError:
        # Reference fault: its extended decoder has no answer for a token that
        # matches no count.
        assert case.extended
        assert core.token_type is TokenType.INVALID
        assert got == (None, compat.TokenType.INVALID, None, None)
        return
    event(f"reference: {compat.TokenType(ref[1]).name}")
    expected = expected_from_reference(ref, units, case.last_count)
    assert_same_answer(got, expected)
    assert_core_agrees(core, expected, units)
    if not core.accepted:
        assert core.last_count == case.last_count
        assert core.used_counts == case.used


@needs_c
@C_SETTINGS
@given(case=decode_cases(C_MAX_COUNT))
def test_decode_agrees_with_reference_c(case: DecodeCase) -> None:
    check_decode(_engine("c"), case)


@PY_SETTINGS
@given(case=decode_cases(PY_MAX_COUNT))
def test_decode_agrees_with_reference_python(case: DecodeCase) -> None:
    check_decode(_engine("python"), case)


# ---------------------------------------------------------------------------
# (c) a device fed a server's tokens in random order, with replays


@dataclass(frozen=True)
class SequenceCase:
    key: bytes
    starting_code: int | None
    restricted: bool
    last_count: int
    used: tuple[int, ...]
    fresh_reference_device: bool
    server_count: int
    requests: tuple[TokenRequest, ...]
    entries: tuple[int, ...]


@st.composite
def sequence_cases(draw: st.DrawFn, max_count: int) -> SequenceCase:
    last_count = draw(st.integers(0, max_count))
    used = draw(
        st.just([]) | st.lists(st.integers(max(0, last_count - 20), last_count), max_size=10)
    )
    requests = draw(st.lists(token_requests(), min_size=1, max_size=8))
    # Every token is entered at least once, in a random order; some again.
    entries = list(draw(st.permutations(range(len(requests)))))
    for replay in draw(st.lists(st.integers(0, len(requests) - 1), max_size=len(requests))):
        entries.insert(draw(st.integers(0, len(entries))), replay)
    return SequenceCase(
        key=draw(keys),
        starting_code=draw(starting_codes),
        restricted=draw(st.booleans()),
        last_count=last_count,
        used=tuple(sorted(set(used))),
        # A reference device with no history holds None, the library's default.
        fresh_reference_device=draw(st.booleans()),
        # Tokens older than the device's state (unordered entry, fresh
        # reference devices crashing), and some beyond its forward window.
        server_count=max(0, last_count + draw(st.integers(-24, 0) | st.integers(1, 60))),
        requests=tuple(requests),
        entries=tuple(entries),
    )


def check_sequence(backend: ChainBackend, case: SequenceCase) -> None:
    device = make_device(case.key, case.starting_code, case.restricted)
    tokens = []
    server_count = case.server_count
    for request in case.requests:
        made = generate(
            device,
            count=server_count,
            token_type=request.token_type,
            units=request.units,
            extended=request.extended,
            backend=backend,
        )
        server_count = made.count
        tokens.append(made)

    last_count, used = case.last_count, case.used
    accepted: dict[int, int] = {}
    for index in case.entries:
        made = tokens[index]
        core = decode(device, made.digits, last_count=last_count, used_counts=used, backend=backend)
        assert isinstance(core, DecodeResult)
        if index in accepted:
            # Unless the digits also occur at another count (a chain collision,
            # about one chance in 10^6 per count), a replay is refused.
            assert core.token_type is TokenType.ALREADY_USED or core.count != accepted[index]

        reference_used = None if case.fresh_reference_device and not used else list(used)
        try:
            ref: CompatResult | None = call_reference_decode(
                made.digits,
                case.key,
                last_count,
                reference_used,
                case.starting_code,
                1,
                case.restricted,
            )
        except TypeError:
            # Reference fault: with no used-count history (None) it crashes on
            # `count not in used_counts` for any older token.
            assert reference_used is None
            event("reference crashed: TypeError (no used counts)")
            ref = None
        except UnboundLocalError:
            # Reference fault: the extended decoder crashes on a token that
            # matches no count (here: issued beyond the forward window).
            assert made.extended
            assert core.token_type is TokenType.INVALID
            event("reference crashed: UnboundLocalError (extended, no match)")
            ref = None
        got = compat.decode_token(
            made.digits,
            case.key.hex(),
            last_count,
            used_counts=used,
            starting_code=case.starting_code,
            restricted_digit_set=case.restricted,
        )
        if ref is None:
            assert _CORE_TO_INT[core.token_type] == got[1]
        else:
            event(f"reference: {compat.TokenType(ref[1]).name}")
            units = carried_units(device, made.digits)
            accepted_by_reference = ref[1] not in (
                compat.TokenType.INVALID,
                compat.TokenType.ALREADY_USED,
            )
            if accepted_by_reference and ref[3] is None:
                # Reference fault: it returns None instead of the used counts
                # when the history it was given was empty.
                assert not reference_used
                event("reference returned None for the used counts")
                ref = (ref[0], ref[1], ref[2], list(core.used_counts))
            expected = expected_from_reference(ref, units, last_count)
            if (
                core.accepted
                and ref[2] is not None
                and ref[2] < core.count
                and expected[1] == compat.TokenType.ALREADY_USED
            ):
                # A chain collision: the digits match two counts.  The reference
                # takes the first count that matches (a count its device may not
                # take again); paygkit takes the first count it can accept: the
                # one the token was made for, or a later one the same digits
                # also stand for (a Counter Sync made for count 171 entered after
                # 178 was taken as the Counter Sync of count 269, whose digits
                # are the same).
                event("chain collision: the reference matched an older count first")
                assert _CORE_TO_INT[core.token_type] == got[1]
            else:
                assert_core_agrees(core, expected, units)
                assert_same_answer(got, expected)

        if core.accepted:
            if core.count == made.count:
                assert core.token_type is made.token_type
            else:
                event("chain collision: the token also matches another count")
            assert core.last_count == max(last_count, core.count)
            if core.token_type is TokenType.COUNTER_SYNC:
                assert core.count > last_count
            accepted[index] = core.count
            last_count, used = core.last_count, core.used_counts


# Found by the test: the Counter Sync made for count 171 has the digits of the one for
# count 269, so entered after count 178 paygkit takes it for 269 and the reference,
# matching 171 first, calls it used.
A_LATER_COUNT_WITH_THE_SAME_DIGITS = SequenceCase(
    key=bytes.fromhex("a404c768bb62faf8b25111b00d77a1bb"),
    starting_code=None,
    restricted=False,
    last_count=178,
    used=(),
    fresh_reference_device=False,
    server_count=170,
    requests=(TokenRequest(TokenType.COUNTER_SYNC, units=None, extended=False),),
    entries=(0,),
)


@needs_c
@C_SEQUENCE_SETTINGS
@given(case=sequence_cases(C_MAX_COUNT))
@example(case=A_LATER_COUNT_WITH_THE_SAME_DIGITS)
def test_decode_sequences_agree_with_reference_c(case: SequenceCase) -> None:
    check_sequence(_engine("c"), case)


@PY_SETTINGS
@given(case=sequence_cases(PY_MAX_COUNT))
def test_decode_sequences_agree_with_reference_python(case: SequenceCase) -> None:
    check_sequence(_engine("python"), case)


@needs_c
@C_SETTINGS
@given(
    key=keys,
    starting_code=starting_codes,
    last_count=st.integers(0, C_MAX_COUNT),
    offset=st.integers(-80, 110),
    special=st.sampled_from(SPECIAL_UNITS),
    restricted=st.booleans(),
)
def test_special_values_found_at_the_same_distance(
    key: bytes,
    starting_code: int | None,
    last_count: int,
    offset: int,
    special: int,
    restricted: bool,
) -> None:
    """Counter Sync is searched 100 counts ahead, others 64 ahead (paygkit: no sync behind)."""
    count = max(0, last_count + offset)
    backend = _engine("c")
    device = make_device(key, starting_code, restricted)
    token = raw_token(device, special, count, extended=False, backend=backend)
    core = decode(device, token, last_count=last_count, used_counts=[last_count], backend=backend)
    ref = call_reference_decode(token, key, last_count, [last_count], starting_code, 1, restricted)
    expected = expected_from_reference(ref, special, last_count)
    assert_core_agrees(core, expected, special)


@needs_c
@pytest.mark.parametrize("extended", [False, True], ids=["standard", "extended"])
@pytest.mark.parametrize("units", [5, 998, 999], ids=["add-set", "disable", "sync"])
def test_window_edges_agree_with_reference(extended: bool, units: int) -> None:
    """Every edge of the decode windows, at both parities, with and without the count used."""
    backend = _engine("c")
    key = bytes(range(16))
    device = make_device(key, 123_456_789, False)
    for token_count in (200, 201):
        token = raw_token(device, units, token_count, extended=extended, backend=backend)
        for offset in (-101, -100, -99, -65, -64, -63, -1, 0, 1, 15, 16, 17, 63, 64, 65):
            last_count = token_count + offset
            # A used count above the last count is state only a backward
            # Counter Sync makes (see test_state_left_by_a_backward_sync).
            used_lists = [[last_count]] + (
                [[last_count, token_count]] if token_count <= last_count else []
            )
            for used in used_lists:
                try:
                    ref = call_reference_decode(
                        token, key, last_count, list(used), 123_456_789, 1, False
                    )
                except UnboundLocalError:
                    # Reference fault: extended decoder, token matches no count.
                    assert extended
                    ref = (None, compat.TokenType.INVALID, None, None)
                core = decode(
                    device, token, last_count=last_count, used_counts=used, backend=backend
                )
                expected = expected_from_reference(ref, units, last_count)
                context = f"count {token_count}, last count {last_count}, used {used}"
                assert _CORE_TO_INT[core.token_type] == expected[1], context
                assert_core_agrees(core, expected, units)


@pytest.mark.parametrize(
    ("days", "divider"), [(0.1, 5), (5.58, 175), (4.95, 150), (3.3, 75), (3.03, 250), (41.4, 24)]
)
def test_float_days_round_like_the_reference(days: float, divider: int) -> None:
    """Float days whose product is a tie in floating point but not in exact binary."""
    key = bytes(range(16))
    device = DeviceParams.create(key, 123_456_789, time_divider=divider)
    made = generate(device, count=7, days=days)
    expected = openpaygo.generate_token(
        secret_key=key.hex(),
        count=7,
        value=days,
        starting_code=123_456_789,
        value_divider=divider,
    )
    assert (made.count, made.digits) == expected
    assert made.units == reference_units(days, divider)


@needs_c
def test_state_left_by_a_backward_sync_is_read_as_its_highest_count() -> None:
    """A reference-rule device moved back by a Counter Sync: paygkit counts what it accepted.

    The reference leaves last count 3 with count 28 in its used counts; it
    then takes the Set Time at 11 and the Add Time at 6 as new.  paygkit reads
    the state as last count 28 (the highest count ever accepted) and refuses
    both, and so never accepts a count twice.
    """
    backend = _engine("c")
    key = bytes(range(16))
    device = make_device(key, 123_456_789, False)
    used = [12, 14, 20, 28]
    for units, token_count in ((5, 6), (5, 11), (998, 13)):
        token = raw_token(device, units, token_count, extended=False, backend=backend)
        ref = call_reference_decode(token, key, 3, list(used), 123_456_789, 1, False)
        assert ref[1] not in (compat.TokenType.INVALID, compat.TokenType.ALREADY_USED)
        core = decode(device, token, last_count=3, used_counts=used, backend=backend)
        assert core.token_type is TokenType.ALREADY_USED
    fresh = raw_token(device, 5, 30, extended=False, backend=backend)
    core = decode(device, fresh, last_count=3, used_counts=used, backend=backend)
    assert (core.token_type, core.last_count) == (TokenType.ADD_TIME, 30)
