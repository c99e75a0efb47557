"""The fast paths (issue 14) give exactly the answers of the plain ones.

- The C generate_batch checks the usual requests itself and builds results in
  C: every request, usual or not, must give what the Python batch gives, and
  every refusal the same error.
- The batch kernels (AVX-512, AVX2, scalar: whichever this CPU runs) must
  agree with the single-chain walk, on any number of threads.
- decode stops its search at the first match above the device's highest
  count: the result must be the one the whole window gives.
- units_maker (generate_units without its Python frame, for paygkit.compat)
  makes a token only where the checked path makes the same one, and leaves
  every other request (None) to generate_units.
"""

from __future__ import annotations

import gc
import random
from array import array
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygkit.token import (
    MAX_COUNT,
    ChainBackend,
    DecodeWindows,
    DeviceParams,
    ParameterError,
    PythonBackend,
    TokenRequest,
    TokenType,
    decode,
    generate,
    generate_batch,
    load_c_backend,
)
from paygkit.token.coding import generate_units, units_maker

COMPILED = load_c_backend()
needs_c = pytest.mark.skipif(COMPILED is None, reason="C extension not built")


def device(rng: random.Random, restricted: bool = False, divider: int = 1) -> DeviceParams:
    return DeviceParams(
        key=rng.randbytes(16),
        starting_code=rng.randint(0, 999_999_999),
        time_divider=divider,
        restricted_digits=restricted,
    )


def mixed_requests(rng: random.Random, n: int) -> list[TokenRequest]:
    """Usual and unusual requests: every type, days of every number kind, extended, restricted."""
    requests = []
    for _ in range(n):
        params = device(rng, restricted=rng.random() < 0.3, divider=rng.choice((1, 2, 24)))
        count = rng.choice((0, 1, 2, 7, 50, 51, 300))
        kind = rng.randrange(8)
        extended = rng.random() < 0.2
        if kind == 0:
            requests.append(TokenRequest(params, count, TokenType.DISABLE_PAYG, extended=extended))
        elif kind == 1:
            requests.append(TokenRequest(params, count, TokenType.COUNTER_SYNC))
        elif kind == 2:
            requests.append(TokenRequest(params, count, days=rng.choice((1.5, 0.25, 2.0))))
        elif kind == 3:
            requests.append(TokenRequest(params, count, days=Fraction(7, 3)))
        elif kind == 4:
            requests.append(TokenRequest(params, count, days=Decimal("1.5")))
        elif kind == 5:
            units = rng.randint(0, 999_999 if extended else 995)
            units = 997 if units in (998, 999) else units
            requests.append(
                TokenRequest(params, count, TokenType.SET_TIME, units=units, extended=extended)
            )
        else:
            requests.append(TokenRequest(params, count, days=rng.randint(0, 995 // 24)))
    return requests


@needs_c
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_c_batch_equals_python_batch(threads: int) -> None:
    requests = mixed_requests(random.Random(14), 1500)
    made = generate_batch(requests, backend=COMPILED, threads=threads)
    assert made == generate_batch(requests[:300], backend=PythonBackend()) + made[300:]
    assert made[300:] == [
        generate(
            r.device,
            count=r.count,
            token_type=r.token_type,
            days=r.days,
            units=r.units,
            extended=r.extended,
            backend=COMPILED,
        )
        for r in requests[300:]
    ]
    assert [type(token.units) for token in made] == [
        type(token.units) for token in generate_batch(requests, backend=PythonBackend())
    ]


@needs_c
def test_c_tokens_are_left_to_reference_counting() -> None:
    # A token holds only ints, bools, None, a string and a TokenType member, so it can
    # never be in a cycle: the C code keeps it out of the cycle collector, which walked
    # a batch's tokens over and over (a third of the batch's time at count 50).
    rng = random.Random(8)
    requests = [TokenRequest(device(rng), 50, days=rng.randint(1, 995)) for _ in range(300)]
    made = generate_batch(requests, backend=COMPILED)
    one = generate(requests[0].device, count=50, days=requests[0].days, backend=COMPILED)
    assert not any(gc.is_tracked(token) for token in [*made, one])
    assert made == generate_batch(requests, backend=PythonBackend())
    assert one == made[0]
    assert hash(one) == hash(made[0])


@needs_c
def test_c_batch_of_nothing_and_of_a_tuple() -> None:
    assert generate_batch([], backend=COMPILED) == []
    requests = tuple(mixed_requests(random.Random(3), 5))
    assert generate_batch(requests, backend=COMPILED) == generate_batch(
        requests, backend=PythonBackend()
    )


BAD_REQUESTS = [
    {"count": -1, "days": 1},
    {"count": True, "days": 1},
    {"count": 2**31, "days": 1},
    {"count": 2**31 - 1, "days": 1},
    {"count": 1.0, "days": 1},
    {"count": 0, "days": True},
    {"count": 0, "days": -1},
    {"count": 0, "days": 996},
    {"count": 0, "units": 996},
    {"count": 0, "units": -3},
    {"count": 0, "units": 1.0},
    {"count": 0, "days": 1, "units": 1},
    {"count": 0},
    {"count": 0, "token_type": TokenType.DISABLE_PAYG, "days": 1},
    {"count": 0, "token_type": TokenType.INVALID},
    {"count": 0, "token_type": "add_time", "days": 1},
    {"count": 0, "units": 998, "extended": True},
    {"count": 0, "units": 1_000_000, "extended": True},
    {"count": 0, "days": float("nan")},
    {"count": 0, "days": [1]},
]


@needs_c
@pytest.mark.parametrize("fields", BAD_REQUESTS)
def test_c_batch_refuses_as_the_python_batch(fields: dict[str, object]) -> None:
    rng = random.Random(5)
    good = [TokenRequest(device(rng), 4, days=2) for _ in range(3)]
    bad = TokenRequest(device(rng), **fields)  # type: ignore[arg-type]
    requests = [*good, bad, *good]
    with pytest.raises(ParameterError) as python_error:
        generate_batch(requests, backend=PythonBackend())
    with pytest.raises(ParameterError) as c_error:
        generate_batch(requests, backend=COMPILED)
    assert str(c_error.value) == str(python_error.value)
    assert str(c_error.value).startswith("request 3: ")


@needs_c
def test_every_batch_kernel_walks_the_same_chains() -> None:
    from paygkit.token import _chain as compiled_module

    rng = random.Random(16)
    n = 700
    keys = rng.randbytes(16 * n)
    codes = array("I", [rng.randrange(1_000_000_000) for _ in range(n)])
    steps = array("I", [rng.choice((0, 1, 2, rng.randrange(80))) for _ in range(n)])
    expected = [
        compiled_module.std_walk(keys[16 * i : 16 * i + 16], codes[i], steps[i]) for i in range(n)
    ]
    kernels = compiled_module.batch_kernels()
    assert kernels[-1] == "scalar"
    for kernel in kernels:
        for threads in (1, 2, 5):
            out = array("I", bytes(4 * n))
            compiled_module.std_walk_batch(keys, codes, steps, out, threads, kernel)
            assert out.tolist() == expected, (kernel, threads)
        assert compiled_module.lockstep_walk(3, kernel) in (4, 8, 16)
    with pytest.raises(ValueError, match="no batch kernel"):
        compiled_module.lockstep_walk(1, "sse9")


def backends() -> list[ChainBackend]:
    return [PythonBackend()] + ([COMPILED] if COMPILED is not None else [])


class WholeWindow:
    """A backend that knows no early stop: decode must search the whole window with it."""

    def __init__(self, inner: ChainBackend) -> None:
        self.inner = inner
        self.name = "whole-window " + inner.name
        self.std_walk = inner.std_walk
        self.ext_walk = inner.ext_walk
        self.siphash24 = inner.siphash24
        self.std_walk_many = inner.std_walk_many

    def std_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]:
        return self.inner.std_find(key, code, high, max_count)

    def ext_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]:
        return self.inner.ext_find(key, code, high, max_count)


@given(
    key=st.binary(min_size=16, max_size=16),
    starting_code=st.integers(0, 999_999_999),
    token_count=st.integers(0, 60),
    last_count=st.integers(0, 60),
    used=st.lists(st.integers(0, 60), max_size=6),
    extended=st.booleans(),
    token_type=st.sampled_from(list(TokenType)[:4]),
    high_digits=st.integers(0, 999) | st.none(),
    reset=st.booleans(),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_early_stop_decides_as_the_whole_window(
    key: bytes,
    starting_code: int,
    token_count: int,
    last_count: int,
    used: list[int],
    extended: bool,
    token_type: TokenType,
    high_digits: int | None,
    reset: bool,
) -> None:
    # Small windows put the token at every place relative to them: ahead,
    # unordered, too old, used; a changed first digit makes most tokens invalid.
    params = DeviceParams(
        key=key,
        starting_code=starting_code,
        windows=DecodeWindows(forward=40, counter_sync=50, unordered=8),
    )
    units = None if token_type in (TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC) else 7
    made = generate(
        params, count=token_count, token_type=token_type, units=units, extended=extended
    )
    digits = made.digits
    if high_digits is not None and not extended:
        # Only the last three digits (the value) kept: the high digits of a
        # random count's chain value, so some count is likely to match.
        digits = f"{high_digits % 10:01d}{digits[1:]}"
    for backend in backends():
        fast = decode(
            params,
            digits,
            last_count=last_count,
            used_counts=used,
            accept_reset_token=reset,
            backend=backend,
        )
        whole = decode(
            params,
            digits,
            last_count=last_count,
            used_counts=used,
            accept_reset_token=reset,
            backend=WholeWindow(backend),
        )
        assert fast == whole


# A chain whose value at count 52 has the high digits of its value at count 2:
# with units 0 the two counts make the same Add Time token (found by search).
TWICE_KEY = bytes.fromhex("759ab98d9f2c946a9a06bcbe714e1c36")
TWICE_STARTING_CODE = 132_929_087


@pytest.mark.parametrize("backend", backends(), ids=lambda backend: backend.name)
@pytest.mark.parametrize(
    ("last_count", "used", "kind", "count"),
    [
        (0, (), TokenType.ADD_TIME, 2),  # both ahead: the first wins, the search stops there
        (10, (), TokenType.ADD_TIME, 2),  # 2 unordered and unused: it wins
        (10, (2,), TokenType.ADD_TIME, 52),  # 2 used: 52, above the last count, wins
        (30, (), TokenType.ADD_TIME, 52),  # 2 too old for unordered entry: 52 wins
        (60, (), TokenType.ADD_TIME, 52),  # both behind, 52 unordered and unused
        (60, (52,), TokenType.ALREADY_USED, 2),  # both refused: the first is reported
    ],
)
def test_a_token_made_at_two_counts_decodes_as_the_whole_window_says(
    backend: ChainBackend, last_count: int, used: tuple[int, ...], kind: TokenType, count: int
) -> None:
    params = DeviceParams(key=TWICE_KEY, starting_code=TWICE_STARTING_CODE)
    token = generate(params, count=0, units=0, backend=backend)
    assert token.count == 2
    assert generate(params, count=50, units=0, backend=backend).digits == token.digits
    fast = decode(params, token.digits, last_count=last_count, used_counts=used, backend=backend)
    whole = decode(
        params, token.digits, last_count=last_count, used_counts=used, backend=WholeWindow(backend)
    )
    assert fast == whole
    assert (fast.token_type, fast.count) == (kind, count)


@pytest.mark.parametrize("backend", backends(), ids=lambda backend: backend.name)
def test_find_keeps_every_match_up_to_the_first_above_stop(backend: ChainBackend) -> None:
    assert isinstance(backend, PythonBackend) or backend is COMPILED
    start = TWICE_STARTING_CODE
    high = backend.std_walk(TWICE_KEY, start, 2) // 1000
    full = backend.std_find(TWICE_KEY, start, high, 64)
    assert full == [2, 52]
    find = backend.std_find
    assert find(TWICE_KEY, start, high, 64, None) == full  # type: ignore[call-arg]
    for stop, expected in (
        (-1, [2]),
        (0, [2]),
        (1, [2]),
        (2, [2, 52]),
        (51, [2, 52]),
        (52, [2, 52]),
        (64, [2, 52]),
    ):
        assert find(TWICE_KEY, start, high, 64, stop) == expected  # type: ignore[call-arg]


# ---- units_maker: what paygkit.compat calls for each token ----

GENERATED = (TokenType.ADD_TIME, TokenType.SET_TIME, TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC)

# The usual requests, and every kind of argument the checks refuse or convert.
maker_counts = st.integers(0, 300) | st.sampled_from(
    [-1, MAX_COUNT, MAX_COUNT + 1, 2**64, True, 3.0, None, "3"]
)
maker_types = st.sampled_from(GENERATED) | st.sampled_from([*TokenType, "add_time", 1, None])
maker_units = st.integers(0, 1_000) | st.sampled_from(
    [None, -1, 995, 996, 998, 999, 1_000_000, 2**64, True, False, 3.0, Fraction(3), "3"]
)
maker_extended = st.booleans() | st.sampled_from([0, 1, None, "yes"])


def _answer(make: Any) -> tuple[str, str]:
    """What a call gives: the token with its fields' types (repr), or the error."""
    try:
        return "made", repr(make())
    except Exception as error:
        return type(error).__name__, str(error)


@given(
    seed=st.integers(0, 2**32),
    restricted=st.booleans(),
    divider=st.sampled_from((1, 2, 24)),
    count=maker_counts,
    token_type=maker_types,
    units=maker_units,
    extended=maker_extended,
)
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
def test_units_maker_makes_only_what_the_checks_make(
    seed: int,
    restricted: bool,
    divider: int,
    count: Any,
    token_type: Any,
    units: Any,
    extended: Any,
) -> None:
    params = device(random.Random(seed), restricted=restricted, divider=divider)
    arguments = (params, count, token_type, units, extended)
    checked = _answer(
        lambda: generate(
            params,
            count=count,
            token_type=token_type,
            units=units,
            extended=extended,
            backend=PythonBackend(),
        )
    )
    maker = units_maker()
    # None hands the request to generate_units; any other answer must be the checks' own.
    assert _answer(lambda: maker(*arguments)) in (("made", "None"), checked)
    assert _answer(lambda: generate_units(*arguments)) == checked
