"""A token's digits can match at two counts; certification takes the device's lowest one.

The code part of a standard token has about a million values, so among the hundreds of
counts below a device's count a token made at one count now and then also matches
another.  paygkit's decode (and so the C library) answers ALREADY_USED with the lowest
such count: certification must take that answer, and still refuse any other count.
"""

from __future__ import annotations

import pytest

from paygkit.certify.params import CertParams
from paygkit.certify.runner import _also_a_token_at
from paygkit.token import TokenType, decode, generate

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010

pytestmark = pytest.mark.one_firmware("certification's judgement of an answer: no device runs")


def _coincidence(params: CertParams) -> tuple[str, int, int]:
    """A token made at one count whose digits also match at a lower one (searched for)."""
    device = params.token_params()
    seen: dict[str, int] = {}
    for last in range(0, 20_000, 2):
        token = generate(device, count=last + 1, days=1)
        if token.digits in seen:
            return token.digits, seen[token.digits], token.count
        seen[token.digits] = token.count
    raise AssertionError("no coincidence in 10,000 tokens: the search is too short")


def test_a_lower_count_the_digits_also_match_is_taken() -> None:
    params = CertParams.create(KEY, STARTING_CODE)
    digits, lower, made_at = _coincidence(params)
    assert lower < made_at
    # paygkit's own device answers the lower count, as the device under test did.
    after = decode(params.token_params(), digits, last_count=made_at, used_counts=(made_at,))
    assert after.token_type is TokenType.ALREADY_USED
    assert after.count == lower
    assert _also_a_token_at(params, digits, lower)
    assert _also_a_token_at(params, digits, made_at)


def test_a_count_the_digits_do_not_match_is_not_taken() -> None:
    params = CertParams.create(KEY, STARTING_CODE)
    token = generate(params.token_params(), count=101, days=1)
    assert _also_a_token_at(params, token.digits, token.count)
    for count in (1, 2, token.count - 2, token.count - 1, token.count + 1, token.count + 2):
        assert not _also_a_token_at(params, token.digits, count)
    assert not _also_a_token_at(params, "*12#", 5)
    assert not _also_a_token_at(params, token.digits, 0)
