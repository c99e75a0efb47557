"""paygkit.compat: the reference's token API, without the reference's faults.

Tests marked `oracle` also show that openpaygo 0.6.3 really has the fault
that paygkit.compat fixes, so the test documents a difference, not a guess.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygkit import compat
from paygkit.compat import (
    OpenPAYGOTokenDecoder,
    OpenPAYGOTokenEncoder,
    TokenType,
    decode_token,
    generate_token,
)
from paygkit.token import DeviceParams, ParameterError, PythonBackend, default_backend, generate
from paygkit.token import TokenType as CoreTokenType
from tests.conftest import load_vectors
from tests.token.strategies import raw_token

VECTORS = load_vectors()
KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010


def _vector_id(vector: dict[str, Any]) -> str:
    shape = ("ext" if vector["extended_token"] else "std") + (
        "-restricted" if vector["restricted_digit_set"] else ""
    )
    return f"{vector['token_type']}-{vector['value_raw']}-c{vector['count']}-{shape}"


def _first_token_starting_with(zero: str, *, restricted: bool = False) -> tuple[int, str]:
    """A real (count, token) of the test device whose first digit is `zero`."""
    count = 1
    while True:
        count, token = generate_token(
            KEY, count, value=1, starting_code=STARTING_CODE, restricted_digit_set=restricted
        )
        if token.startswith(zero):
            return count, token


def _special_token_at(units: int, count: int, *, extended: bool = False) -> str:
    """A 998/999 token at any count parity, as the reference's test procedure makes them."""
    device = DeviceParams.create(KEY, STARTING_CODE)
    return raw_token(device, units, count, extended=extended, backend=default_backend())


# --- the API surface ------------------------------------------------------------


def test_token_type_numbers_are_the_references() -> None:
    assert {member.name: int(member) for member in TokenType} == {
        "ADD_TIME": 1,
        "SET_TIME": 2,
        "DISABLE_PAYG": 3,
        "COUNTER_SYNC": 4,
        "INVALID": 10,
        "ALREADY_USED": 11,
    }


@pytest.mark.oracle
def test_token_type_numbers_match_openpaygo() -> None:
    import openpaygo

    for member in TokenType:
        assert getattr(openpaygo.TokenType, member.name) == member


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_vectors_generate(vector: dict[str, Any]) -> None:
    made = generate_token(
        secret_key=vector["key"],
        count=vector["count"],
        value=vector["value_raw"],
        token_type=TokenType[vector["token_type"]],
        starting_code=vector["starting_code"],
        restricted_digit_set=vector["restricted_digit_set"],
        extended_token=vector["extended_token"],
    )
    assert made == (vector["new_count"], vector["token"])


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_vectors_decode(vector: dict[str, Any]) -> None:
    value, token_type, count, used = decode_token(
        token=vector["token"],
        secret_key=vector["key"],
        count=vector["count"],
        starting_code=vector["starting_code"],
        restricted_digit_set=vector["restricted_digit_set"],
    )
    assert token_type == TokenType[vector["token_type"]]
    assert count == vector["new_count"]
    if vector["value_raw"] is None:
        assert value == (998 if token_type == TokenType.DISABLE_PAYG else 999)
        assert type(value) is int
    else:
        # As the reference: the value divided by the divider, a float.
        assert value == vector["value_raw"]
        assert type(value) is float
    assert used is not None
    assert vector["new_count"] in used


def test_encoder_and_decoder_classes_work_like_the_functions() -> None:
    made = OpenPAYGOTokenEncoder.generate_token(
        secret_key=KEY, count=1, value=5, starting_code=STARTING_CODE
    )
    assert made == generate_token(KEY, 1, 5, starting_code=STARTING_CODE)
    decoded = OpenPAYGOTokenDecoder.decode_token(
        token=made[1], secret_key=KEY, count=1, used_counts=[1], starting_code=STARTING_CODE
    )
    assert decoded == (5.0, TokenType.ADD_TIME, 2, [1, 2])


def test_positional_arguments_follow_the_reference_order() -> None:
    assert generate_token(KEY, 1, 1, TokenType.SET_TIME, STARTING_CODE, 1, False, False) == (
        3,
        "380589011",
    )
    assert decode_token("380589011", KEY, 1, None, STARTING_CODE, 1, False) == (
        1.0,
        TokenType.SET_TIME,
        3,
        [0, 1, 2, 3],
    )


def test_the_key_may_be_hex_bytes_like_the_reference_accepts() -> None:
    assert generate_token(KEY.encode(), 1, 1, starting_code=STARTING_CODE) == (2, "588224011")
    assert generate_token(KEY.upper(), 1, 1, starting_code=STARTING_CODE) == (2, "588224011")


# --- values and dividers -------------------------------------------------------


def test_value_divider_scales_both_ways() -> None:
    count, token = generate_token(KEY, 1, value=1.5, starting_code=STARTING_CODE, value_divider=24)
    direct = generate_token(KEY, 1, value=36, starting_code=STARTING_CODE)
    assert (count, token) == direct
    value, token_type, _, _ = decode_token(
        token, KEY, 1, starting_code=STARTING_CODE, value_divider=24
    )
    assert (value, token_type) == (1.5, TokenType.ADD_TIME)


def test_a_fractional_divider_is_allowed_like_the_reference() -> None:
    made = generate_token(KEY, 1, value=10, starting_code=STARTING_CODE, value_divider=0.5)
    assert made == generate_token(KEY, 1, value=5, starting_code=STARTING_CODE)
    value, _, _, _ = decode_token(made[1], KEY, 1, starting_code=STARTING_CODE, value_divider=0.5)
    assert value == 10.0


def test_units_round_half_to_even_like_the_reference() -> None:
    # 0.1 x 5 is exactly 0.5 in floating point, which rounds to 0.
    assert generate_token(KEY, 1, value=0.1, starting_code=STARTING_CODE, value_divider=5) == (
        generate_token(KEY, 1, value=0, starting_code=STARTING_CODE)
    )


def test_zero_units_decode_as_the_int_zero() -> None:
    _, token = generate_token(
        KEY, 1, value=0, token_type=TokenType.SET_TIME, starting_code=STARTING_CODE
    )
    value, token_type, _, _ = decode_token(
        token, KEY, 1, starting_code=STARTING_CODE, value_divider=4
    )
    assert (value, token_type) == (0, TokenType.SET_TIME)
    assert type(value) is int


@pytest.mark.parametrize("divider", [0, -1, float("nan"), float("inf"), True, "2"])
def test_a_bad_divider_is_refused(divider: Any) -> None:
    with pytest.raises(ValueError, match="value_divider"):
        generate_token(KEY, 1, value=1, starting_code=STARTING_CODE, value_divider=divider)
    with pytest.raises(ValueError, match="value_divider"):
        decode_token("588224011", KEY, 1, starting_code=STARTING_CODE, value_divider=divider)


@pytest.mark.parametrize(
    ("value", "extended", "message"),
    [
        (996, False, "at most 995"),
        (1_000_000, True, "at most 999999"),
        (-1, False, "negative"),
        (float("nan"), False, "finite"),
        ("5", False, "number"),
        (True, False, "number"),
        (998, True, "cannot be carried"),
        (999, True, "cannot be carried"),
    ],
)
def test_a_bad_value_is_refused(value: Any, extended: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_token(KEY, 1, value=value, starting_code=STARTING_CODE, extended_token=extended)


@pytest.mark.parametrize("token_type", [TokenType.INVALID, TokenType.ALREADY_USED, 0, 5])
def test_only_the_four_token_types_are_generated(token_type: int) -> None:
    with pytest.raises(ValueError, match="cannot generate a token of type"):
        generate_token(KEY, 1, value=1, token_type=token_type, starting_code=STARTING_CODE)


@pytest.mark.parametrize("token_type", [TokenType.ADD_TIME, TokenType.SET_TIME])
def test_add_or_set_time_without_a_value_says_so(token_type: int) -> None:
    with pytest.raises(ValueError, match="needs a value"):
        generate_token(KEY, 1, token_type=token_type, starting_code=STARTING_CODE)


@pytest.mark.oracle
def test_reference_crashes_on_add_time_without_a_value() -> None:
    import openpaygo

    with pytest.raises(TypeError):
        openpaygo.generate_token(secret_key=KEY, count=1, starting_code=STARTING_CODE)


@pytest.mark.parametrize("value", [None, 0, 0.0])
@pytest.mark.parametrize("token_type", [TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC])
def test_disable_and_sync_take_no_value_but_tolerate_zero(value: Any, token_type: int) -> None:
    made = generate_token(KEY, 1, value=value, token_type=token_type, starting_code=STARTING_CODE)
    assert made == generate_token(KEY, 1, token_type=token_type, starting_code=STARTING_CODE)
    with pytest.raises(ValueError, match="carries no value"):
        generate_token(KEY, 1, value=3, token_type=token_type, starting_code=STARTING_CODE)


# --- starting code 0 -------------------------------------------------------------


def test_starting_code_zero_is_a_real_starting_code() -> None:
    made = generate_token(KEY, 1, value=7, starting_code=0)
    assert made != generate_token(KEY, 1, value=7)
    assert made[1].endswith("007")
    assert decode_token(made[1], KEY, 1, [1], starting_code=0) == (
        7.0,
        TokenType.ADD_TIME,
        2,
        [1, 2],
    )


@pytest.mark.oracle
def test_reference_takes_starting_code_zero_as_absent() -> None:
    import openpaygo

    assert openpaygo.generate_token(
        secret_key=KEY, count=1, value=7, starting_code=0
    ) == openpaygo.generate_token(secret_key=KEY, count=1, value=7)


# --- used counts -------------------------------------------------------------------


@pytest.mark.parametrize("history", [None, []], ids=["none", "empty"])
def test_a_fresh_device_refuses_a_token_entered_twice(history: list[int] | None) -> None:
    _, token = generate_token(KEY, 1, value=1, starting_code=STARTING_CODE)
    value, token_type, count, used = decode_token(
        token, KEY, 1, used_counts=history, starting_code=STARTING_CODE
    )
    assert (value, token_type, count, used) == (1.0, TokenType.ADD_TIME, 2, [2])
    assert decode_token(token, KEY, 2, used_counts=used, starting_code=STARTING_CODE) == (
        None,
        TokenType.ALREADY_USED,
        None,
        None,
    )


@pytest.mark.oracle
def test_reference_loses_the_history_of_a_fresh_device_and_crashes() -> None:
    import openpaygo

    _, token = openpaygo.generate_token(
        secret_key=KEY, count=1, value=1, starting_code=STARTING_CODE
    )
    result = openpaygo.decode_token(
        token=token, secret_key=KEY, count=1, used_counts=[], starting_code=STARTING_CODE
    )
    assert result == (1.0, 1, 2, None)
    with pytest.raises(TypeError):
        openpaygo.decode_token(
            token=token, secret_key=KEY, count=2, used_counts=result[3], starting_code=STARTING_CODE
        )


def test_older_add_time_tokens_can_still_be_entered_once() -> None:
    count, first = generate_token(KEY, 1, value=1, starting_code=STARTING_CODE)
    count, second = generate_token(KEY, count, value=2, starting_code=STARTING_CODE)
    _, _, last, used = decode_token(second, KEY, 1, starting_code=STARTING_CODE)
    assert last is not None
    assert decode_token(first, KEY, last, used, starting_code=STARTING_CODE) == (
        1.0,
        TokenType.ADD_TIME,
        2,
        [2, 4],
    )


def test_used_counts_never_go_below_zero() -> None:
    _, token = generate_token(
        KEY, 1, value=1, token_type=TokenType.SET_TIME, starting_code=STARTING_CODE
    )
    _, _, _, used = decode_token(token, KEY, 1, [1], starting_code=STARTING_CODE)
    assert used == [0, 1, 2, 3]


@pytest.mark.oracle
def test_reference_records_negative_used_counts() -> None:
    import openpaygo

    _, token = generate_token(
        KEY, 1, value=1, token_type=TokenType.SET_TIME, starting_code=STARTING_CODE
    )
    _, _, _, used = openpaygo.decode_token(
        token=token, secret_key=KEY, count=1, used_counts=[1], starting_code=STARTING_CODE
    )
    assert used == list(range(-13, 4))


def test_reference_used_count_lists_are_accepted() -> None:
    _, token = generate_token(KEY, 3, value=1, starting_code=STARTING_CODE)
    _, token_type, _, used = decode_token(
        token, KEY, 3, list(range(-13, 4)), starting_code=STARTING_CODE
    )
    assert token_type == TokenType.ADD_TIME
    assert used == [0, 1, 2, 3, 4]


# --- Disable PAYG / Counter Sync at either parity --------------------------------


@pytest.mark.parametrize(
    ("units", "token_type"), [(998, TokenType.DISABLE_PAYG), (999, TokenType.COUNTER_SYNC)]
)
@pytest.mark.parametrize("extended", [False, True], ids=["standard", "extended"])
def test_special_values_at_an_even_count_keep_their_meaning(
    units: int, token_type: int, extended: bool
) -> None:
    token = _special_token_at(units, 2, extended=extended)
    value, decoded_type, count, used = decode_token(
        token, KEY, 1, [1], starting_code=STARTING_CODE, value_divider=2
    )
    assert (value, decoded_type, count) == (units, token_type, 2)
    assert type(value) is int
    assert used == [0, 1, 2]


@pytest.mark.oracle
def test_reference_reads_998_at_an_even_count_as_add_time_and_divides_it() -> None:
    import openpaygo

    token = _special_token_at(998, 2)
    value, token_type, count, _ = openpaygo.decode_token(
        token=token,
        secret_key=KEY,
        count=1,
        used_counts=[1],
        starting_code=STARTING_CODE,
        value_divider=2,
    )
    assert (value, token_type, count) == (499.0, openpaygo.TokenType.ADD_TIME, 2)


# --- token text --------------------------------------------------------------------


def test_an_extended_token_that_matches_nothing_is_invalid() -> None:
    assert decode_token("123456789012", KEY, 1, [1], starting_code=STARTING_CODE) == (
        None,
        TokenType.INVALID,
        None,
        None,
    )


@pytest.mark.oracle
def test_reference_crashes_on_an_invalid_extended_token() -> None:
    import openpaygo

    with pytest.raises(UnboundLocalError):
        openpaygo.decode_token(
            token="123456789012",
            secret_key=KEY,
            count=1,
            used_counts=[1],
            starting_code=STARTING_CODE,
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-12345678", "no sign"),
        ("+12345678", "no sign"),
        (" 123456789", "space"),
        ("123456789 ", "space"),
        ("\t12345678", "space"),
        ("", "empty"),
        ("12345678a", "only digits"),
        ("12_345_678", "only digits"),
        ("123  456 789", "only digits"),
        ("١٢٣٤٥٦٧٨٩", "only digits"),
        ("1234567890123", "13 digits"),
    ],
)
def test_text_that_is_no_token_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_token(text, KEY, 1, starting_code=STARTING_CODE)


def test_a_token_given_as_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="as text"):
        decode_token(588224011, KEY, 1, starting_code=STARTING_CODE)  # type: ignore[arg-type]


@pytest.mark.oracle
def test_reference_silently_takes_signs_and_spaces() -> None:
    import openpaygo

    count, token = _first_token_starting_with("0")
    # A real token with its leading zero replaced by a space is accepted.
    assert openpaygo.decode_token(
        token=" " + token[1:], secret_key=KEY, count=count - 2, starting_code=STARTING_CODE
    )[1:3] == (openpaygo.TokenType.ADD_TIME, count)
    assert openpaygo.decode_token(
        token="-12345678", secret_key=KEY, count=1, starting_code=STARTING_CODE
    ) == (None, openpaygo.TokenType.INVALID, None, None)


def test_lost_leading_zeros_are_restored() -> None:
    count, token = _first_token_starting_with("0")
    expected = decode_token(token, KEY, count - 2, starting_code=STARTING_CODE)
    assert expected[1] == TokenType.ADD_TIME
    assert decode_token(token.lstrip("0"), KEY, count - 2, starting_code=STARTING_CODE) == expected


def test_lost_leading_restricted_zeros_are_restored() -> None:
    count, token = _first_token_starting_with("1", restricted=True)
    expected = decode_token(
        token, KEY, count - 2, starting_code=STARTING_CODE, restricted_digit_set=True
    )
    assert expected[1] == TokenType.ADD_TIME
    short = token.lstrip("1")
    assert (
        decode_token(short, KEY, count - 2, starting_code=STARTING_CODE, restricted_digit_set=True)
        == expected
    )


def test_grouped_tokens_are_accepted() -> None:
    for text in ("588 224 011", "588-224-011"):
        assert decode_token(text, KEY, 1, starting_code=STARTING_CODE)[:3] == (
            1.0,
            TokenType.ADD_TIME,
            2,
        )


def test_restricted_mode_refuses_digits_other_than_1_to_4() -> None:
    with pytest.raises(ValueError, match="restricted digits"):
        decode_token(
            "314114432231135", KEY, 1, starting_code=STARTING_CODE, restricted_digit_set=True
        )


# --- keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        KEY[:-1] + "z",
        KEY[:-2],
        KEY + "00",
        ("zz" + KEY[2:]).encode(),
        b"\xff" * 32,
    ],
    ids=["non-hex", "short", "long", "non-hex-bytes", "non-ascii-bytes"],
)
def test_a_bad_key_is_refused_without_repeating_it(key: str | bytes) -> None:
    with pytest.raises(ValueError, match="key") as refused:
        generate_token(key, 1, value=1, starting_code=STARTING_CODE)
    shown = str(refused.value)
    assert KEY[4:-4] not in shown
    assert KEY[4:-4].upper() not in shown
    with pytest.raises(ValueError, match="key") as refused:
        decode_token("588224011", key, 1, starting_code=STARTING_CODE)
    assert KEY[4:-4] not in str(refused.value)


def test_module_exports() -> None:
    assert set(compat.__all__) == {
        "OpenPAYGOTokenDecoder",
        "OpenPAYGOTokenEncoder",
        "TokenType",
        "decode_token",
        "generate_token",
    }


def test_restricted_mode_may_be_given_as_the_device_list_column() -> None:
    made = generate_token(KEY, 1, value=1, starting_code=STARTING_CODE, restricted_digit_set=1)
    assert made == (2, "314114432231134")
    assert decode_token(made[1], KEY, 1, starting_code=STARTING_CODE, restricted_digit_set=1)[
        :3
    ] == (1.0, TokenType.ADD_TIME, 2)
    with pytest.raises(ValueError, match="restricted_digit_set"):
        generate_token(KEY, 1, value=1, starting_code=STARTING_CODE, restricted_digit_set=2)


# ---- the fast path of the usual call and the device cache (issue 14) ----


def test_usual_and_unusual_arguments_make_the_same_token() -> None:
    usual = compat.generate_token(KEY, 10, 3, starting_code=STARTING_CODE)
    assert compat.generate_token(KEY, 10, 3.0, starting_code=STARTING_CODE) == usual
    assert compat.generate_token(KEY, 10, 3, 1, STARTING_CODE, 1.0) == usual
    assert compat.generate_token(KEY, 10, 1.5, 1, STARTING_CODE, 2) == usual
    assert compat.generate_token(KEY.encode(), 10, 3, starting_code=STARTING_CODE) == usual
    assert (
        compat.generate_token(bytearray(KEY.encode()), 10, 3, starting_code=STARTING_CODE) == usual
    )
    for kind in (TokenType.DISABLE_PAYG, 3):
        assert compat.generate_token(KEY, 10, None, kind, STARTING_CODE) == compat.generate_token(
            KEY, 10, 0, TokenType.DISABLE_PAYG, STARTING_CODE, 1.0
        )


@pytest.mark.parametrize(
    "arguments",
    [
        {"value": True},
        {"value": 3, "token_type": True},
        {"value": 3, "token_type": 1.0},
        {"value": 3, "token_type": 10},
        {"value": 3, "value_divider": 0},
        {"value": 3, "value_divider": True},
        {"value": 3, "token_type": TokenType.DISABLE_PAYG},
        {"value": None},
    ],
)
def test_the_fast_path_refuses_what_the_checks_refuse(arguments: dict[str, Any]) -> None:
    with pytest.raises(ParameterError):
        compat.generate_token(KEY, 10, starting_code=STARTING_CODE, **arguments)


def test_cached_devices_are_not_confused_by_equal_arguments() -> None:
    compat.generate_token(KEY, 10, 3, starting_code=1)
    compat.generate_token(KEY, 10, 3, restricted_digit_set=True, starting_code=1)
    # Equal to a cached argument (True == 1, 1.0 == 1), yet refused as before.
    with pytest.raises(ParameterError):
        compat.generate_token(KEY, 10, 3, starting_code=True)
    with pytest.raises(ParameterError):
        compat.generate_token(KEY, 10, 3, starting_code=1.0)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        compat.generate_token(KEY, 10, 3, restricted_digit_set=1.0, starting_code=1)  # type: ignore[arg-type]
    # 1 and True are the same restricted mode, as before.
    assert compat.generate_token(
        KEY, 10, 3, restricted_digit_set=1, starting_code=1
    ) == compat.generate_token(KEY, 10, 3, restricted_digit_set=True, starting_code=1)


def test_the_device_cache_is_bounded() -> None:
    for code in range(compat._DEVICE_CACHE_SIZE + 10):
        compat.generate_token(KEY, 0, 1, starting_code=code)
    assert len(compat._DEVICES) <= compat._DEVICE_CACHE_SIZE


class _OtherNumbers(enum.IntEnum):
    """Another IntEnum with the reference's numbers: plain ints to the checks."""

    ADD_TIME = 1
    DISABLE_PAYG = 3


def _checked_generate(
    key: Any,
    count: Any,
    value: Any,
    token_type: Any,
    starting_code: Any,
    value_divider: Any,
    restricted: Any,
    extended: Any,
) -> tuple[int, str]:
    """generate_token through every check and the core's Python path: no fast path, no cache."""
    kind = compat._token_type(token_type)
    divider = compat._check_divider(value_divider)
    units = compat._units(value, divider, kind)
    device = compat._new_device(key, starting_code, restricted)
    made = generate(
        device,
        count=count,
        token_type=compat._TO_CORE[kind],
        units=units,
        extended=extended,
        backend=PythonBackend(),
    )
    return made.count, made.digits


def _answer(make: Any) -> tuple[str, Any]:
    """What a call gives: its result, or the error's class and message."""
    try:
        return "made", make()
    except Exception as error:
        return type(error).__name__, str(error)


_GENERATED = [
    TokenType.ADD_TIME,
    TokenType.SET_TIME,
    TokenType.DISABLE_PAYG,
    TokenType.COUNTER_SYNC,
]


@st.composite
def _generate_arguments(draw: st.DrawFn) -> tuple[Any, ...]:
    """generate_token's arguments, in order: each one usual nine times in ten, else odd.

    The commonest call (Add Time, whole numbers) comes often: it has a path of its own.

    Ints beyond a float's range are left out: the checks raise OverflowError
    for them where the fast path gives the core's ParameterError.
    """

    def pick(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
        return draw(odd if draw(st.integers(0, 9)) == 0 else usual)

    key = pick(
        st.sampled_from([KEY, KEY.upper(), KEY.encode()]),
        st.sampled_from([bytearray(KEY.encode()), "zz", 5]),
    )
    count = pick(st.integers(0, 300), st.sampled_from([-1, True, 3.0, None]))
    token_type = pick(
        st.just(TokenType.ADD_TIME) | st.sampled_from([*_GENERATED, 1, 2, 3, 4]),
        st.sampled_from(
            [TokenType.INVALID, TokenType.ALREADY_USED, *_OtherNumbers, 0, 5, 10, True, 1.0, "1"]
        )
        | st.sampled_from([None, CoreTokenType.ADD_TIME]),
    )
    carries_value = token_type in (1, 2)
    value = pick(
        st.integers(0, 40) | st.floats(0, 40) if carries_value else st.sampled_from([None, 0]),
        st.sampled_from([-2, 996, 1_100, 1_000_000, None, 3, True, float("nan"), "3"]),
    )
    starting_code = pick(
        st.none() | st.integers(0, 999_999_999), st.sampled_from([True, 1.0, -1, 10**9])
    )
    value_divider = pick(
        st.just(1) | st.sampled_from([2, 24, 0.5, 1.5]),
        st.sampled_from([0, -1, float("nan"), float("inf"), True, "2", 100.0]),
    )
    restricted = pick(st.booleans(), st.sampled_from([0, 1, 2, 1.0, None]))
    extended = pick(st.booleans(), st.sampled_from([0, 1, 2, None]))
    return key, count, value, token_type, starting_code, value_divider, restricted, extended


@given(arguments=_generate_arguments())
@settings(max_examples=600, deadline=None)
def test_every_argument_mix_gives_what_the_checks_give(arguments: tuple[Any, ...]) -> None:
    expected = _answer(lambda: _checked_generate(*arguments))
    assert _answer(lambda: generate_token(*arguments)) == expected
    # Twice: the second call finds the device in the cache.
    assert _answer(lambda: generate_token(*arguments)) == expected
