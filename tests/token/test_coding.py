"""Behaviour of paygkit.token beyond the published vectors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import pytest

from paygkit.token import (
    ChainBackend,
    DecodeWindows,
    DeviceParams,
    ParameterError,
    PythonBackend,
    TokenFormatError,
    TokenRequest,
    TokenType,
    days_to_units,
    decode,
    generate,
    generate_batch,
    load_c_backend,
    next_count,
    parse_token,
    reset_token,
)

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
DEVICE = DeviceParams.create(KEY, 516959010)
RESTRICTED = DeviceParams.create(KEY, 516959010, restricted_digits=True)


def token_at(device: DeviceParams, count: int, units: int, backend: ChainBackend) -> str:
    """A token at any count and value, including combinations no generator makes."""
    base = (device.starting_code + units) % 1000
    start = device.starting_code - device.starting_code % 1000 + base
    end = backend.std_walk(device.key, start, count)
    return f"{end - end % 1000 + base:09d}"


# ---- SipHash itself ---------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # The SipHash-2-4 paper's vectors: key 00..0f, message 00..(n-1).
        (b"", 0x726FDB47DD0E0E31),
        (bytes(range(8)), 0x93F5F5799A932462),
        (bytes(range(15)), 0xA129CA6149BE45E5),
    ],
)
def test_siphash_matches_published_vectors(
    backend: ChainBackend, message: bytes, expected: int
) -> None:
    assert backend.siphash24(bytes(range(16)), message) == expected


def test_engines_agree_on_chains() -> None:
    compiled = load_c_backend()
    if compiled is None:
        pytest.skip("C extension not built")
    python = PythonBackend()
    key = bytes.fromhex(KEY)
    for code in (0, 1, 999, 123_456_789, 999_999_999):
        assert compiled.std_walk(key, code, 37) == python.std_walk(key, code, 37)
    for code in (0, 10**12 - 1, 516_959_010):
        assert compiled.ext_walk(key, code, 37) == python.ext_walk(key, code, 37)
    high = compiled.std_walk(key, 5, 20) // 1000
    assert compiled.std_find(key, 5, high, 40) == python.std_find(key, 5, high, 40) != []


def test_c_engine_refuses_bad_arguments() -> None:
    compiled = load_c_backend()
    if compiled is None:
        pytest.skip("C extension not built")
    with pytest.raises(ValueError, match="16 bytes"):
        compiled.std_walk(b"short", 1, 1)
    with pytest.raises(ValueError, match="at most"):
        compiled.std_walk(bytes(16), 2**32, 1)
    with pytest.raises(ValueError, match="negative"):
        compiled.std_walk(bytes(16), 1, -1)
    with pytest.raises(ValueError, match="per chain"):
        compiled.std_walk_many(bytes(16), [1, 2], [1, 1], 1)


def test_c_extension_is_built_where_required() -> None:
    if os.environ.get("PAYGKIT_REQUIRE_C_EXT") != "1":
        pytest.skip("only checked where the build is required (make test)")
    assert load_c_backend() is not None


def test_pure_python_can_be_forced_by_environment() -> None:
    code = "from paygkit.token import default_backend; print(default_backend().name)"
    env = dict(os.environ, PAYGKIT_PURE_PYTHON="1")
    forced = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert forced.stdout.strip() == "python"
    env["PAYGKIT_PURE_PYTHON"] = "0"
    default = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert default.stdout.strip() == ("c" if load_c_backend() is not None else "python")


# ---- device parameters --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (KEY[:-1], "32 hex characters .* got 31"),
        (KEY + "0", "got 33"),
        ("zz" + KEY[2:], "other characters"),
        (b"\x00" * 15, "16 bytes, got 15"),
        (12345, "not a int"),
    ],
)
def test_bad_keys_are_refused_without_echoing_them(key: object, message: str) -> None:
    with pytest.raises(ParameterError, match=message) as error:
        DeviceParams.create(key, 1)  # type: ignore[arg-type]
    if isinstance(key, str):
        assert key[4:20] not in str(error.value)


def test_key_is_accepted_in_upper_case_and_as_bytes() -> None:
    assert DeviceParams.create(KEY.upper(), 1).key == bytes.fromhex(KEY)
    assert DeviceParams.create(bytes.fromhex(KEY), 1).key == bytes.fromhex(KEY)


def test_repr_hides_the_key() -> None:
    assert KEY not in repr(DEVICE)
    assert bytes.fromhex(KEY).hex() not in repr(DEVICE)
    assert "516959010" in repr(DEVICE)


@pytest.mark.parametrize("starting_code", [-1, 1_000_000_000, True, 5.0])
def test_bad_starting_codes_are_refused(starting_code: object) -> None:
    with pytest.raises(ParameterError, match="starting code"):
        DeviceParams.create(KEY, starting_code)  # type: ignore[arg-type]


@pytest.mark.parametrize("divider", [0, 256, -4])
def test_time_divider_must_be_1_to_255(divider: int) -> None:
    with pytest.raises(ParameterError, match="time divider"):
        DeviceParams.create(KEY, 1, time_divider=divider)


def test_windows_are_validated() -> None:
    with pytest.raises(ParameterError, match="forward window"):
        DecodeWindows(forward=0)
    with pytest.raises(ParameterError, match="unordered window"):
        DecodeWindows(unordered=-1)
    assert DecodeWindows(unordered=0).unordered == 0


def test_starting_code_is_derived_from_the_key_when_absent(backend: ChainBackend) -> None:
    derived = DeviceParams.create(KEY)
    # The code is a 9-digit value that depends only on the key.
    assert 0 <= derived.starting_code <= 999_999_999
    assert derived.starting_code == DeviceParams.create(KEY.upper()).starting_code
    assert derived.starting_code != DeviceParams.create("0" * 32).starting_code
    made = generate(derived, count=1, days=3, backend=backend)
    assert decode(derived, made.digits, last_count=1, backend=backend).units == 3


# ---- generation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "token_type", "expected"),
    [
        (1, TokenType.ADD_TIME, 2),
        (2, TokenType.ADD_TIME, 4),
        (1, TokenType.SET_TIME, 3),
        (2, TokenType.SET_TIME, 3),
        (0, TokenType.DISABLE_PAYG, 1),
        (9, TokenType.COUNTER_SYNC, 11),
    ],
)
def test_new_count_has_the_parity_of_the_type(
    count: int, token_type: TokenType, expected: int
) -> None:
    assert next_count(count, token_type) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": 996}, "at most 995"),
        ({"units": 997}, "reserved"),
        ({"units": 1000}, "several Add Time"),
        ({"units": -1}, "negative"),
        ({"days": -1}, "negative"),
        ({"days": math.nan}, "finite"),
        ({"days": math.inf}, "finite"),
        ({"days": "3"}, "must be a number"),
        ({"days": 1, "units": 1}, "exactly one"),
        ({}, "exactly one"),
        ({"units": True}, "integer"),
        ({"token_type": TokenType.DISABLE_PAYG, "units": 0}, "carries no value"),
        ({"token_type": TokenType.COUNTER_SYNC, "days": 1}, "carries no value"),
        ({"token_type": TokenType.INVALID}, "cannot generate"),
        ({"token_type": TokenType.ALREADY_USED}, "cannot generate"),
        ({"units": 998, "extended": True}, "Disable PAYG value"),
        ({"units": 999, "extended": True}, "Counter Sync value"),
        ({"units": 1_000_000, "extended": True}, "at most 999999"),
        ({"count": -1, "units": 1}, "between 0 and"),
        ({"count": True, "units": 1}, "integer"),
        ({"count": 1.0, "units": 1}, "integer"),
    ],
)
def test_generate_refuses_bad_requests(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"count": 1, **kwargs}
    with pytest.raises(ParameterError, match=message):
        generate(DEVICE, **arguments)  # type: ignore[arg-type]


def test_days_become_units_through_the_time_divider(backend: ChainBackend) -> None:
    hourly = DeviceParams.create(KEY, 516959010, time_divider=24)
    made = generate(hourly, count=1, days=Decimal("1.5"), backend=backend)
    assert made.units == 36
    assert made.days == Fraction(3, 2)
    result = decode(hourly, made.digits, last_count=1, backend=backend)
    assert result.units == 36
    assert result.days == Fraction(3, 2)


@pytest.mark.parametrize(
    ("days", "divider", "units"),
    [
        (1, 1, 1),
        (0.25, 4, 1),
        (Fraction(1, 3), 3, 1),
        (0.125, 4, 0),
        (0.375, 4, 2),
        (41.4, 24, 994),
    ],
)
def test_days_round_half_to_even_like_the_reference(days: float, divider: int, units: int) -> None:
    assert days_to_units(days, divider) == units


def test_time_beyond_one_token_is_refused_with_the_arithmetic() -> None:
    hourly = DeviceParams.create(KEY, 1, time_divider=24)
    with pytest.raises(ParameterError, match="42 days x time divider 24 = 1008 units"):
        generate(hourly, count=1, days=42)


def test_zero_days_is_a_valid_set_time(backend: ChainBackend) -> None:
    made = generate(DEVICE, count=3, token_type=TokenType.SET_TIME, units=0, backend=backend)
    result = decode(DEVICE, made.digits, last_count=3, backend=backend)
    assert (result.token_type, result.units) == (TokenType.SET_TIME, 0)


def test_generated_token_text_forms(backend: ChainBackend) -> None:
    made = generate(DEVICE, count=1, units=1, backend=backend)
    assert str(made) == "588224011"
    assert made.grouped == "588 224 011"
    restricted = generate(RESTRICTED, count=1, units=1, backend=backend)
    assert restricted.grouped == "314 114 432 231 134"


# ---- token text -------------------------------------------------------------


@pytest.mark.parametrize("text", ["588224011", "588 224 011", "588-224-011", "5882-24011"])
def test_typed_forms_are_accepted(text: str, backend: ChainBackend) -> None:
    result = decode(DEVICE, text, last_count=1, backend=backend)
    assert (result.token_type, result.units, result.count) == (TokenType.ADD_TIME, 1, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("58822401a", "only digits"),
        ("58822401", "has 8 digits"),
        ("5882240111", "has 10 digits"),
        ("-58822401", "no sign"),
        ("+588224011", "no sign"),
        (" 588224011", "starts or ends with a space"),
        ("588224011\n", "starts or ends with a space"),
        ("588  224 011", "only digits"),
        ("588 224 011 ", "space"),
        ("", "empty"),
        ("٥٨٨٢٢٤٠١١", "only digits"),
    ],
)
def test_malformed_tokens_are_refused(text: str, message: str) -> None:
    with pytest.raises(TokenFormatError, match=message):
        decode(DEVICE, text, last_count=1)


def test_a_token_must_be_text() -> None:
    with pytest.raises(TokenFormatError, match="leading zeros"):
        decode(DEVICE, 588224011, last_count=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("314114432231130", "contains 0"),
        ("314114432231135", "contains 5"),
        ("314114432", "has 9 digits"),
        ("588224011", "contains 0, 5, 8"),
        ("3141144322311344", "has 16 digits"),
    ],
)
def test_restricted_mode_refuses_other_digits(text: str, message: str) -> None:
    with pytest.raises(TokenFormatError, match=message):
        decode(RESTRICTED, text, last_count=1)


def test_restricted_form_round_trips_the_spec_example() -> None:
    parsed = parse_token("324 244 134 441 123", restricted=True)
    assert parsed.value == 662_486_790
    assert not parsed.extended


# ---- decoding rules -----------------------------------------------------------


def test_invalid_token_leaves_state_unchanged(backend: ChainBackend) -> None:
    result = decode(DEVICE, "123456789", last_count=7, used_counts=(5, 7), backend=backend)
    assert result.token_type is TokenType.INVALID
    assert not result.accepted
    assert (result.count, result.units) == (None, None)
    assert (result.last_count, result.used_counts) == (7, (5, 7))


def test_invalid_extended_token_is_a_result_not_a_crash(backend: ChainBackend) -> None:
    result = decode(DEVICE, "123456789012", last_count=1, backend=backend)
    assert result.token_type is TokenType.INVALID
    assert result.extended


def test_reentry_on_a_fresh_device_is_already_used(backend: ChainBackend) -> None:
    made = generate(DEVICE, count=1, days=5, backend=backend)
    first = decode(DEVICE, made.digits, last_count=1, used_counts=(), backend=backend)
    assert first.token_type is TokenType.ADD_TIME
    assert first.used_counts == (2,)
    again = decode(
        DEVICE,
        made.digits,
        last_count=first.last_count,
        used_counts=first.used_counts,
        backend=backend,
    )
    assert again.token_type is TokenType.ALREADY_USED
    assert again.count == 2
    assert (again.last_count, again.used_counts) == (first.last_count, first.used_counts)


def _enter(
    device: DeviceParams, tokens: list[str], backend: ChainBackend, last_count: int = 1
) -> list[TokenType]:
    used: tuple[int, ...] = ()
    outcomes = []
    for token in tokens:
        result = decode(device, token, last_count=last_count, used_counts=used, backend=backend)
        outcomes.append(result.token_type)
        last_count, used = result.last_count, result.used_counts
    return outcomes


def test_add_time_tokens_can_be_entered_in_any_order(backend: ChainBackend) -> None:
    tokens = []
    count = 1
    for days in (1, 2, 3):
        made = generate(DEVICE, count=count, days=days, backend=backend)
        tokens.append(made.digits)
        count = made.count
    order = [tokens[2], tokens[0], tokens[1], tokens[0], tokens[2]]
    assert _enter(DEVICE, order, backend) == [TokenType.ADD_TIME] * 3 + [TokenType.ALREADY_USED] * 2


@pytest.mark.parametrize(
    "blocker", [TokenType.SET_TIME, TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC]
)
def test_older_add_time_is_refused_after_a_set_disable_or_sync(
    backend: ChainBackend, blocker: TokenType
) -> None:
    older = generate(DEVICE, count=1, days=1, backend=backend)
    units = 3 if blocker is TokenType.SET_TIME else None
    block = generate(DEVICE, count=older.count, token_type=blocker, units=units, backend=backend)
    newer = generate(DEVICE, count=block.count, days=1, backend=backend)
    outcomes = _enter(DEVICE, [block.digits, older.digits, newer.digits], backend)
    assert outcomes == [blocker, TokenType.ALREADY_USED, TokenType.ADD_TIME]


@pytest.mark.parametrize(
    ("units", "expected"), [(998, TokenType.DISABLE_PAYG), (999, TokenType.COUNTER_SYNC)]
)
@pytest.mark.parametrize("count", [6, 7])
def test_special_values_keep_their_meaning_at_either_parity(
    backend: ChainBackend, units: int, expected: TokenType, count: int
) -> None:
    device = DeviceParams.create(KEY, 516959010, time_divider=4)
    result = decode(device, token_at(device, count, units, backend), last_count=1, backend=backend)
    assert result.token_type is expected
    assert result.units is None
    assert result.days is None


def test_counter_sync_never_moves_the_count_back(backend: ChainBackend) -> None:
    """SPEC 3.1: the reference takes this Counter Sync and sets the count back to 41."""
    used = tuple(range(84, 101))
    for behind in (41, 99, 100):
        sync = token_at(DEVICE, behind, 999, backend)
        result = decode(DEVICE, sync, last_count=100, used_counts=used, backend=backend)
        assert result.token_type is TokenType.ALREADY_USED
        assert (result.count, result.last_count, result.used_counts) == (behind, 100, used)
    ahead = decode(
        DEVICE,
        token_at(DEVICE, 101, 999, backend),
        last_count=100,
        used_counts=used,
        backend=backend,
    )
    assert (ahead.token_type, ahead.last_count) == (TokenType.COUNTER_SYNC, 101)
    assert ahead.used_counts == tuple(range(85, 102))


ISSUE_KEY = "a29ab82edc5fbbc41ec9530f6dac86b1"


def _credited_days(device: DeviceParams, entries: list[str], backend: ChainBackend) -> int:
    last_count, used, days = 1, (), 0
    for token in entries:
        result = decode(device, token, last_count=last_count, used_counts=used, backend=backend)
        if result.accepted:
            last_count, used = result.last_count, result.used_counts
            days += int(result.days or 0)
    return days


def test_an_old_counter_sync_cannot_replay_add_time_tokens(backend: ChainBackend) -> None:
    """The issue's attack: Sync @3, Add 30 @4, Add 30 @6 entered four times over."""
    device = DeviceParams.create(ISSUE_KEY, 123456789)
    sync = generate(device, count=1, token_type=TokenType.COUNTER_SYNC, backend=backend)
    first = generate(device, count=sync.count, days=30, backend=backend)
    second = generate(device, count=first.count, days=30, backend=backend)
    assert (sync.count, first.count, second.count) == (3, 4, 6)
    rounds = [sync.digits, first.digits, second.digits] * 4
    assert _credited_days(device, rounds, backend) == 60


def test_an_add_time_is_not_replayed_after_a_backward_sync(backend: ChainBackend) -> None:
    """Add 5 @28, Sync @3, then Add 1 @6 three times: 1 day credited, not 3."""
    device = DeviceParams.create(ISSUE_KEY, 123456789)
    add_five = token_at(device, 28, 5, backend)
    sync = token_at(device, 3, 999, backend)
    add_one = token_at(device, 6, 1, backend)
    assert (
        _credited_days(device, [add_one, add_five, sync, add_one, add_one, add_one], backend) == 6
    )
    assert _credited_days(device, [add_five, sync, add_one, add_one, add_one], backend) == 5


def test_the_reset_token_is_refused_unless_the_device_takes_it(backend: ChainBackend) -> None:
    reset = token_at(DEVICE, 0, 999, backend)
    refused = decode(DEVICE, reset, last_count=1, backend=backend)
    assert (refused.token_type, refused.last_count) == (TokenType.ALREADY_USED, 1)
    taken = decode(
        DEVICE, reset, last_count=30, used_counts=(28, 30), accept_reset_token=True, backend=backend
    )
    assert (taken.token_type, taken.last_count, taken.used_counts) == (
        TokenType.COUNTER_SYNC,
        0,
        (0,),
    )
    # Past the forward window it is refused as the reference refuses it, and
    # at count 0 it has nothing left to reset.
    late = decode(DEVICE, reset, last_count=64, accept_reset_token=True, backend=backend)
    assert late.token_type is TokenType.ALREADY_USED
    again = decode(DEVICE, reset, last_count=0, used_counts=(0,), accept_reset_token=True)
    assert again.token_type is TokenType.ALREADY_USED


@pytest.mark.parametrize(
    ("used_counts", "expected"),
    [
        (None, "used_counts must be a list"),
        (5, "used_counts must be a list"),
        ("1,2", "used_counts must be a list"),
        ([1, "2"], "used counts must be integers"),
        ([1.0], "used counts must be integers"),
        ([True], "used counts must be integers"),
        ([2**31], "at most 2147483647"),
    ],
)
def test_wrong_used_counts_are_a_value_error(used_counts: object, expected: str) -> None:
    token = generate(DEVICE, count=1, days=1).digits
    with pytest.raises(ValueError, match=expected):
        decode(DEVICE, token, last_count=1, used_counts=used_counts)  # type: ignore[arg-type]


def test_counter_sync_reaches_further_ahead_than_other_tokens(backend: ChainBackend) -> None:
    sync_far = token_at(DEVICE, 10 + 100, 999, backend)
    assert (
        decode(DEVICE, sync_far, last_count=10, backend=backend).token_type
        is TokenType.COUNTER_SYNC
    )
    sync_too_far = token_at(DEVICE, 10 + 101, 999, backend)
    assert (
        decode(DEVICE, sync_too_far, last_count=10, backend=backend).token_type is TokenType.INVALID
    )


def test_forward_window_is_64_by_default_and_configurable(backend: ChainBackend) -> None:
    at_edge = token_at(DEVICE, 10 + 64, 5, backend)
    beyond = token_at(DEVICE, 10 + 66, 5, backend)
    assert decode(DEVICE, at_edge, last_count=10, backend=backend).token_type is TokenType.ADD_TIME
    assert decode(DEVICE, beyond, last_count=10, backend=backend).token_type is TokenType.INVALID
    narrow = DeviceParams.create(KEY, 516959010, windows=DecodeWindows(forward=20))
    assert decode(narrow, at_edge, last_count=10, backend=backend).token_type is TokenType.INVALID


def test_unordered_window_bounds_older_add_time(backend: ChainBackend) -> None:
    inside = token_at(DEVICE, 40 - 14, 5, backend)
    outside = token_at(DEVICE, 40 - 16, 5, backend)
    assert decode(DEVICE, inside, last_count=40, used_counts=(40,), backend=backend).accepted
    assert not decode(DEVICE, outside, last_count=40, used_counts=(40,), backend=backend).accepted
    strict = DeviceParams.create(KEY, 516959010, windows=DecodeWindows(unordered=0))
    result = decode(strict, inside, last_count=40, used_counts=(40,), backend=backend)
    assert result.token_type is TokenType.ALREADY_USED


def test_set_time_marks_the_whole_window_used(backend: ChainBackend) -> None:
    made = generate(DEVICE, count=20, token_type=TokenType.SET_TIME, units=3, backend=backend)
    result = decode(DEVICE, made.digits, last_count=20, used_counts=(18, 20), backend=backend)
    assert result.used_counts == tuple(range(21 - 16, 22))
    assert result.last_count == 21


def test_used_counts_are_never_negative(backend: ChainBackend) -> None:
    made = generate(DEVICE, count=1, token_type=TokenType.SET_TIME, units=3, backend=backend)
    result = decode(DEVICE, made.digits, last_count=1, backend=backend)
    assert result.used_counts == (0, 1, 2, 3)


def test_used_counts_must_be_integers() -> None:
    with pytest.raises(ParameterError, match="used counts"):
        decode(DEVICE, "588224011", last_count=1, used_counts=("2",))  # type: ignore[arg-type]


def test_extended_tokens_round_trip(backend: ChainBackend) -> None:
    for device in (DEVICE, RESTRICTED):
        made = generate(device, count=4, units=123_456, extended=True, backend=backend)
        assert len(made.digits) == (20 if device.restricted_digits else 12)
        result = decode(device, made.digits, last_count=4, backend=backend)
        assert (result.token_type, result.units, result.count) == (TokenType.ADD_TIME, 123_456, 6)
        assert result.extended


# ---- batches -------------------------------------------------------------------


def _batch_requests() -> list[TokenRequest]:
    requests = []
    for i in range(40):
        device = DeviceParams.create(
            f"{i:032x}", 100_000 * i + 7, time_divider=1 + i % 3, restricted_digits=i % 5 == 0
        )
        token_type = [TokenType.ADD_TIME, TokenType.SET_TIME, TokenType.DISABLE_PAYG][i % 3]
        requests.append(
            TokenRequest(
                device=device,
                count=i * 3,
                token_type=token_type,
                days=None if token_type is TokenType.DISABLE_PAYG else i % 7,
                extended=i % 7 == 3 and token_type is not TokenType.DISABLE_PAYG,
            )
        )
    return requests


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_equals_one_by_one(backend: ChainBackend, threads: int) -> None:
    requests = _batch_requests()
    batch = generate_batch(requests, backend=backend, threads=threads)
    single = [
        generate(
            r.device,
            count=r.count,
            token_type=r.token_type,
            days=r.days,
            extended=r.extended,
            backend=backend,
        )
        for r in requests
    ]
    assert batch == single


def test_batch_over_many_chains_splits_across_threads() -> None:
    compiled = load_c_backend()
    if compiled is None:
        pytest.skip("C extension not built")
    device = DeviceParams.create(KEY, 516959010)
    requests = [TokenRequest(device=device, count=c, units=1) for c in range(0, 1200)]
    two = generate_batch(requests, backend=compiled, threads=2)
    one = generate_batch(requests, backend=compiled, threads=1)
    assert two == one
    assert two[1].digits == "588224011"


def test_empty_batch() -> None:
    assert generate_batch([]) == []


def test_bad_request_fails_the_whole_batch_with_its_position() -> None:
    requests = _batch_requests()
    requests[17] = TokenRequest(device=DEVICE, count=1, units=996)
    with pytest.raises(ParameterError, match=r"request 17: .*at most 995"):
        generate_batch(requests)


def test_batch_checks_every_request_even_when_choices_repeat() -> None:
    device = DeviceParams.create(KEY, 516959010)
    requests = [
        TokenRequest(device=device, count=1, days=1),
        TokenRequest(device=device, count=1, days=1.0),
        TokenRequest(device=device, count=1, days=True),  # type: ignore[arg-type]
    ]
    with pytest.raises(ParameterError, match="request 2: days must be a number"):
        generate_batch(requests)
    unhashable = [TokenRequest(device=device, count=1, days=[1])]  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="request 0: days must be a number, not list"):
        generate_batch(unhashable)
    assert [t.units for t in generate_batch(requests[:2])] == [1, 1]


def test_reset_token_is_the_counter_sync_at_count_zero(backend: ChainBackend) -> None:
    made = reset_token(DEVICE, backend=backend)
    assert (made.token_type, made.count) == (TokenType.COUNTER_SYNC, 0)
    assert made.digits == token_at(DEVICE, 0, 999, backend)
    restricted = reset_token(RESTRICTED, backend=backend)
    assert len(restricted.digits) == 15
    taken = decode(RESTRICTED, restricted.digits, last_count=9, accept_reset_token=True)
    assert (taken.token_type, taken.last_count) == (TokenType.COUNTER_SYNC, 0)
