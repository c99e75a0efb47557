"""paygkit.token.explain: the step-by-step story of a token matches generate()."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

import paygkit.token as token_pkg
from paygkit.token import (
    ChainBackend,
    DeviceParams,
    ParameterError,
    PythonBackend,
    TokenExplanation,
    TokenType,
    explain,
    generate,
)
from paygkit.token.siphash import siphash24
from tests.conftest import load_vectors

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
STD_LIMIT, STD_SUBTRACT = 999_999_999, 73_741_825
EXT_LIMIT, EXT_SUBTRACT = 999_999_999_999, 99_511_627_777


def _device(*, restricted: bool = False, time_divider: int = 1) -> DeviceParams:
    return DeviceParams.create(
        KEY, STARTING_CODE, restricted_digits=restricted, time_divider=time_divider
    )


def test_first_vector_story() -> None:
    story = explain(_device(), count=1, units=1)
    assert story.value.value == 1
    assert story.value.source == "units"
    assert story.starting_code_base == 10
    assert story.token_base == 11
    assert story.masked_starting_code == 516_959_011
    assert story.new_count == 2
    assert len(story.steps) == 2
    assert story.steps_skipped == 0
    assert story.chain_end == story.steps[-1].output_code
    assert story.token_value == 588_224_011
    assert story.digits == "588224011"
    assert story.grouped == "588 224 011"
    assert story.restricted_conversion is None
    assert story.token.digits == story.digits


@pytest.mark.parametrize(
    ("restricted", "extended"),
    [(False, False), (False, True), (True, False), (True, True)],
    ids=["standard", "extended", "restricted", "restricted-extended"],
)
@pytest.mark.parametrize("count", [0, 1, 2, 9, 40])
def test_final_digits_equal_generate(
    restricted: bool, extended: bool, count: int, backend: ChainBackend
) -> None:
    device = _device(restricted=restricted)
    for token_type, days in [(TokenType.ADD_TIME, 3), (TokenType.SET_TIME, 30)]:
        story = explain(
            device,
            count=count,
            token_type=token_type,
            days=days,
            extended=extended,
            backend=backend,
        )
        made = generate(device, count=count, token_type=token_type, days=days, extended=extended)
        assert story.digits == made.digits
        assert story.new_count == made.count
        assert story.extended is extended
        assert story.restricted is restricted
        assert (story.restricted_conversion is not None) is restricted


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: f"{v['token']}-c{v['count']}")
def test_every_published_vector(vector: dict[str, Any]) -> None:
    device = DeviceParams.create(
        vector["key"], vector["starting_code"], restricted_digits=vector["restricted_digit_set"]
    )
    story = explain(
        device,
        count=vector["count"],
        token_type=TokenType[vector["token_type"]],
        units=vector["value_raw"] if TokenType[vector["token_type"]].carries_value else None,
        extended=vector["extended_token"],
    )
    assert story.digits == vector["token"]
    assert story.new_count == vector["new_count"]


def test_step_one_is_one_chain_step_standard() -> None:
    device = _device()
    story = explain(device, count=5, token_type=TokenType.SET_TIME, days=30)
    first = story.steps[0]
    assert first.count == 1
    assert first.input_code == story.masked_starting_code
    assert first.output_code == PythonBackend().std_walk(device.key, story.masked_starting_code, 1)
    assert first.message == story.masked_starting_code.to_bytes(4, "big") * 2
    assert first.message_hex == " ".join(f"{b:02x}" for b in first.message)
    assert first.digest == siphash24(device.key, first.message)
    assert len(first.digest_hex) == 16
    assert int(first.digest_hex, 16) == first.digest


def test_step_one_is_one_chain_step_extended() -> None:
    device = _device()
    story = explain(device, count=5, units=12_345, extended=True)
    first = story.steps[0]
    assert story.modulus == 1_000_000
    assert story.base_digits == 6
    assert story.token_base == (STARTING_CODE % 1_000_000 + 12_345) % 1_000_000
    assert first.message == story.masked_starting_code.to_bytes(8, "big")
    assert first.folded == first.digest >> 24
    assert first.output_code == PythonBackend().ext_walk(device.key, story.masked_starting_code, 1)


def test_steps_form_the_chain(backend: ChainBackend) -> None:
    device = _device()
    story = explain(device, count=40, days=2, max_steps_shown=12, backend=backend)
    assert [step.count for step in story.steps] == list(range(1, 13))
    for before, after in zip(story.steps, story.steps[1:], strict=False):
        assert after.input_code == before.output_code
    for step in story.steps:
        assert step.output_code == PythonBackend().std_walk(device.key, step.input_code, 1)
    assert story.steps_skipped == story.new_count - 12
    assert story.chain_end == backend.std_walk(
        device.key, story.masked_starting_code, story.new_count
    )
    assert story.token_value == story.chain_end - story.chain_end % 1000 + story.token_base


@pytest.mark.parametrize("shown", [0, 1, 3, 8, 50])
@pytest.mark.parametrize("count", [0, 1, 6, 20])
def test_number_of_shown_steps(shown: int, count: int) -> None:
    story = explain(_device(), count=count, units=5, max_steps_shown=shown)
    assert len(story.steps) == min(story.new_count, shown)
    assert story.steps_skipped == story.new_count - len(story.steps)
    assert story.steps_total == story.new_count


def _first_corrected_step(*, extended: bool) -> Any:
    device = _device()
    story = explain(device, count=200, units=1, extended=extended, max_steps_shown=200)
    corrected = [step for step in story.steps if step.corrected]
    assert corrected, "no step above the limit in 200 steps"
    return corrected[0], story


def test_standard_correction_is_shown() -> None:
    step, story = _first_corrected_step(extended=False)
    assert step.folded > STD_LIMIT
    assert step.output_code == step.folded - STD_SUBTRACT
    assert story.fold_limit == STD_LIMIT
    assert story.fold_subtract == STD_SUBTRACT
    plain = next(s for s in story.steps if not s.corrected)
    assert plain.folded == plain.output_code <= STD_LIMIT


def test_extended_correction_is_shown() -> None:
    step, story = _first_corrected_step(extended=True)
    assert step.folded > EXT_LIMIT
    assert step.output_code == step.folded - EXT_SUBTRACT
    assert story.fold_subtract == EXT_SUBTRACT


@pytest.mark.parametrize("extended", [False, True])
def test_restricted_conversion(extended: bool) -> None:
    story = explain(_device(restricted=True), count=3, days=7, extended=extended)
    conversion = story.restricted_conversion
    assert conversion is not None
    assert conversion.value == story.token_value
    assert len(conversion.bits) == (40 if extended else 30)
    assert "".join(conversion.pairs) == conversion.bits
    assert int(conversion.bits, 2) == story.token_value
    assert conversion.digits == "".join(str(int(pair, 2) + 1) for pair in conversion.pairs)
    assert conversion.digits == story.digits
    assert len(story.digits) == (20 if extended else 15)


def test_first_restricted_vector() -> None:
    story = explain(_device(restricted=True), count=1, units=1)
    assert story.token_value == 588_224_011
    assert story.digits == "314114432231134"


def test_value_from_days_and_time_divider() -> None:
    story = explain(_device(time_divider=4), count=1, days=Decimal("1.5"))
    assert story.value.value == 6
    assert story.value.source == "days"
    assert story.value.days == Decimal("1.5")
    assert story.value.units == 6
    assert "x time divider 4 = 6 units" in story.value.note
    rounded = explain(_device(), count=1, days=2.5)
    assert rounded.value.value == 2
    assert "rounded half to even" in rounded.value.note


@pytest.mark.parametrize(
    ("token_type", "value"), [(TokenType.DISABLE_PAYG, 998), (TokenType.COUNTER_SYNC, 999)]
)
def test_fixed_values(token_type: TokenType, value: int) -> None:
    story = explain(_device(), count=4, token_type=token_type)
    assert story.value.value == value
    assert story.value.source == "fixed"
    assert story.value.units is None
    assert story.value.days_carried is None
    assert story.new_count == 5
    assert "odd" in story.count_note
    assert story.digits == generate(_device(), count=4, token_type=token_type).digits


def test_count_parity_note() -> None:
    add = explain(_device(), count=2, units=1)
    assert add.new_count == 4
    assert "even" in add.count_note
    assert "Add Time" in add.count_note
    set_time = explain(_device(), count=2, token_type=TokenType.SET_TIME, units=1)
    assert set_time.new_count == 3
    assert "odd" in set_time.count_note


def test_refuses_what_generate_refuses() -> None:
    with pytest.raises(ParameterError, match="carries no value"):
        explain(_device(), count=1, token_type=TokenType.DISABLE_PAYG, days=3)
    with pytest.raises(ParameterError, match="at most 995"):
        explain(_device(), count=1, units=996)
    with pytest.raises(ParameterError, match="count"):
        explain(_device(), count=-1, units=1)


@pytest.mark.parametrize("shown", [-1, 1001, True, 2.0])
def test_refuses_bad_max_steps(shown: Any) -> None:
    with pytest.raises(ParameterError, match="max_steps_shown"):
        explain(_device(), count=1, units=1, max_steps_shown=shown)


def test_results_are_frozen() -> None:
    story = explain(_device(), count=1, units=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        story.digits = "000000000"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        story.steps[0].output_code = 0  # type: ignore[misc]


def test_exported_from_package() -> None:
    for name in ("explain", "TokenExplanation", "HashStep", "ValueExplanation"):
        assert name in token_pkg.__all__
    assert isinstance(explain(_device(), count=1, units=1), TokenExplanation)
    assert "RestrictedConversion" in token_pkg.__all__


def test_the_walkthrough_is_imported_only_when_first_asked_for() -> None:
    """Issuing and checking tokens never load it; once asked for, every way of
    reaching `explain` gives the function, whichever comes first."""
    check = """
import sys
import paygkit.token as token
assert "paygkit.token.walkthrough" not in sys.modules
import paygkit.token.walkthrough as walkthrough
from paygkit.token import TokenExplanation, explain
assert token.explain is explain is walkthrough.explain and callable(explain)
assert TokenExplanation is walkthrough.TokenExplanation
assert token.__getattr__("HashStep") is walkthrough.HashStep
"""
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
