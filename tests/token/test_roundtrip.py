"""Every token paygkit makes, paygkit reads back: type, units and count.

Standard, extended and restricted-digit tokens, any time divider, on both
backends (the pure-Python one with small counts, as it hashes slowly).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygkit.token import (
    ChainBackend,
    DeviceParams,
    PythonBackend,
    TokenType,
    decode,
    generate,
    load_c_backend,
    parse_token,
)
from tests.token.strategies import TokenRequest, keys, starting_codes, token_requests

C_ENGINE = load_c_backend()

ENGINES = [
    pytest.param(PythonBackend(), 40, id="python"),
    pytest.param(
        C_ENGINE,
        2000,
        id="c",
        marks=pytest.mark.skipif(C_ENGINE is None, reason="C extension not built"),
    ),
]

ROUNDTRIP_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize(("backend", "max_count"), ENGINES)
@ROUNDTRIP_SETTINGS
@given(
    data=st.data(),
    key=keys,
    starting_code=st.just(0) | starting_codes,
    divider=st.integers(1, 255),
    restricted=st.booleans(),
)
def test_generated_tokens_decode_back(
    backend: ChainBackend,
    max_count: int,
    data: st.DataObject,
    key: bytes,
    starting_code: int | None,
    divider: int,
    restricted: bool,
) -> None:
    device = DeviceParams.create(
        key, starting_code, time_divider=divider, restricted_digits=restricted
    )
    count = data.draw(st.integers(0, max_count), label="count")
    request = data.draw(token_requests(), label="request")
    if request.units is None:
        made = generate(
            device,
            count=count,
            token_type=request.token_type,
            extended=request.extended,
            backend=backend,
        )
    else:
        # Half the time through days, which must come back as the same units.
        by_days = data.draw(st.booleans(), label="by days")
        made = generate(
            device,
            count=count,
            token_type=request.token_type,
            days=Fraction(request.units, divider) if by_days else None,
            units=None if by_days else request.units,
            extended=request.extended,
            backend=backend,
        )
    assert made.units == request.units
    assert made.count > count
    assert made.count % 2 == (0 if request.token_type is TokenType.ADD_TIME else 1)

    parsed = parse_token(made.digits, restricted=restricted)
    assert parsed.extended == request.extended
    if restricted:
        assert set(made.digits) <= set("1234")

    result = decode(device, made.grouped, last_count=count, backend=backend)
    assert result.token_type is request.token_type
    assert result.units == request.units
    if result.count != made.count:
        # A Counter Sync token is also valid below the last count, so if its
        # digits happen to occur earlier on the chain (about one chance in
        # 10^6 per count for extended tokens) the device takes the earlier
        # match, as the reference does.  That must be a true match.
        assert request.token_type is TokenType.COUNTER_SYNC
        assert result.count is not None
        assert result.count < made.count
        parsed_value = parse_token(made.digits, restricted=restricted).value
        modulus = 10**6 if request.extended else 1000
        start = device.starting_code - device.starting_code % modulus + parsed_value % modulus
        find = backend.ext_find if request.extended else backend.std_find
        matches = find(device.key, start, parsed_value // modulus, made.count)
        assert result.count == matches[0]
        assert made.count in matches
    assert result.extended == request.extended
    if request.units is not None:
        assert result.days == Fraction(request.units, divider)
    if request.token_type is not TokenType.COUNTER_SYNC:
        # Counter Sync may be re-entered within its window; nothing else may.
        again = decode(
            device,
            made.digits,
            last_count=result.last_count,
            used_counts=result.used_counts,
            backend=backend,
        )
        if again.token_type is not TokenType.ALREADY_USED:
            # The token's digits also occur further along the chain (about one
            # chance in 10^6 per count); the protocol, reference included,
            # then accepts it there.
            assert again.count is not None
            assert again.count > made.count


@pytest.mark.parametrize(("backend", "max_count"), ENGINES)
@ROUNDTRIP_SETTINGS
@given(
    key=keys,
    starting_code=starting_codes,
    restricted=st.booleans(),
    requests=st.lists(token_requests(), min_size=1, max_size=6),
    first=st.integers(0, 40),
)
def test_a_servers_tokens_decode_in_order(
    backend: ChainBackend,
    max_count: int,
    key: bytes,
    starting_code: int | None,
    restricted: bool,
    requests: list[TokenRequest],
    first: int,
) -> None:
    """Tokens issued one after another are each accepted by a device that follows along."""
    device = DeviceParams.create(key, starting_code, restricted_digits=restricted)
    server_count = device_count = min(first, max_count)
    used: tuple[int, ...] = ()
    for request in requests:
        made = generate(
            device,
            count=server_count,
            token_type=request.token_type,
            units=request.units,
            extended=request.extended,
            backend=backend,
        )
        server_count = made.count
        result = decode(
            device, made.digits, last_count=device_count, used_counts=used, backend=backend
        )
        assert (result.token_type, result.units, result.count) == (
            made.token_type,
            made.units,
            made.count,
        )
        device_count, used = result.last_count, result.used_counts
    assert device_count == server_count


@pytest.mark.parametrize(("backend", "max_count"), ENGINES)
def test_counter_sync_digits_found_earlier_on_the_chain(
    backend: ChainBackend, max_count: int
) -> None:
    # Found by hypothesis: this extended Counter Sync token, made at count 21,
    # also matches at count 7.  The reference takes the first match and moves
    # the device back to 7; paygkit never takes a Counter Sync at or below the
    # device's count (SPEC 3.1), so the match at 21 is the one it accepts.
    device = DeviceParams.create(b"@\x16\x1e\xa2\xa6\x00\x88\x7f\xfc\xa37$\xf2\x8d\xf1\xc1")
    made = generate(
        device, count=19, token_type=TokenType.COUNTER_SYNC, extended=True, backend=backend
    )
    assert (made.count, made.digits) == (21, "925756898946")
    result = decode(device, made.digits, last_count=19, backend=backend)
    assert (result.token_type, result.count, result.last_count) == (
        TokenType.COUNTER_SYNC,
        21,
        21,
    )
