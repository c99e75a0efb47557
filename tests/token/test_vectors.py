"""The 80 published test vectors, generated and decoded on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from paygkit.token import ChainBackend, DeviceParams, TokenType, decode, generate
from tests.conftest import load_vectors

VECTORS = load_vectors()


def _vector_id(vector: dict[str, Any]) -> str:
    shape = ("ext" if vector["extended_token"] else "std") + (
        "-restricted" if vector["restricted_digit_set"] else ""
    )
    value = vector["value_raw"]
    return f"{vector['serial_number']}-{vector['token_type']}-{value}-c{vector['count']}-{shape}"


def _device(vector: dict[str, Any]) -> DeviceParams:
    return DeviceParams.create(
        vector["key"],
        vector["starting_code"],
        restricted_digits=vector["restricted_digit_set"],
    )


def test_all_eighty_vectors_are_present() -> None:
    assert len(VECTORS) == 80


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_generate_matches_vector(vector: dict[str, Any], backend: ChainBackend) -> None:
    made = generate(
        _device(vector),
        count=vector["count"],
        token_type=TokenType[vector["token_type"]],
        units=vector["value_raw"],
        extended=vector["extended_token"],
        backend=backend,
    )
    assert made.digits == vector["token"]
    assert made.count == vector["new_count"]


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_decode_matches_vector(vector: dict[str, Any], backend: ChainBackend) -> None:
    result = decode(_device(vector), vector["token"], last_count=vector["count"], backend=backend)
    assert result.token_type is TokenType[vector["token_type"]]
    assert result.count == vector["new_count"]
    assert result.units == vector["value_raw"]
    assert result.extended == vector["extended_token"]
