"""Batch provisioning: serial numbers that never overlap, keys, starting codes, counts,
and a test code that no token of the batch can equal."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paygkit.device.firmware import OutcomeKind
from paygkit.device.simulator import SimulatedDevice
from paygkit.factory.batch import (
    BatchError,
    BatchSpec,
    CountStart,
    SecretsSource,
    SerialRegistry,
    auto_test_code,
    can_collide,
    collisions_with_test_code,
    make_batch,
)
from paygkit.factory.devicelist import DeviceRecord
from paygkit.token import TokenType, generate

KEY = bytes.fromhex("bc41ec9530f6dac86b1a29ab82edc5fb")


def test_serials_keys_and_codes(tmp_path: Path) -> None:
    batch = make_batch(
        BatchSpec(200, "SLT22", digits=7, time_divider=4, hardware_model="M", version="V"),
        state_file=tmp_path / "serials.json",
    )
    serials = [r.serial for r in batch.records]
    assert serials == [f"SLT22{n:07d}" for n in range(1, 201)]
    assert len({r.key for r in batch.records}) == 200
    assert all(100_000_000 <= r.starting_code <= 999_999_999 for r in batch.records)
    assert len({r.starting_code for r in batch.records}) > 190
    assert {(r.count, r.time_divider, r.hardware_model, r.version) for r in batch.records} == {
        (1, 4, "M", "V")
    }
    assert batch.warnings == ()
    assert (batch.first_serial, batch.last_serial) == ("SLT220000001", "SLT220000200")
    description = json.dumps(batch.description())
    assert not any(r.key.hex() in description for r in batch.records)


def test_a_second_batch_continues_where_the_first_ended(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    first = make_batch(BatchSpec(3, "AB"), state_file=state)
    second = make_batch(BatchSpec(2, "AB"), state_file=state)
    other = make_batch(BatchSpec(1, "CD", digits=4), state_file=state)
    assert [r.serial for r in first.records + second.records] == [f"AB{n:08d}" for n in range(1, 6)]
    assert other.records[0].serial == "CD0001"
    registry = SerialRegistry(state)
    assert registry.last("AB") == (5, 8)
    assert registry.last("CD") == (1, 4)
    assert registry.last("EF") is None
    data = json.loads(state.read_text())
    assert data["format"] == "paygkit-serials"
    assert not list(tmp_path.glob("*.tmp"))


def test_jumping_ahead_is_allowed_going_back_is_not(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    make_batch(BatchSpec(3, "AB"), state_file=state)
    jumped = make_batch(BatchSpec(1, "AB"), state_file=state, first_number=100)
    assert jumped.records[0].serial == "AB00000100"
    with pytest.raises(BatchError, match=r"AB00000050 was issued already.*start at 101"):
        make_batch(BatchSpec(1, "AB"), state_file=state, first_number=50)
    with pytest.raises(BatchError, match="--digits 8"):
        make_batch(BatchSpec(1, "AB", digits=6), state_file=state)
    assert SerialRegistry(state).last("AB") == (100, 8)  # refused batches reserve nothing


def test_serials_never_run_past_their_digits(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    make_batch(BatchSpec(98, "Z", digits=2), state_file=state)
    with pytest.raises(BatchError, match="run past Z99"):
        make_batch(BatchSpec(2, "Z", digits=2), state_file=state)
    assert make_batch(BatchSpec(1, "Z", digits=2), state_file=state).records[0].serial == "Z99"


def test_concurrent_batches_never_overlap(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    made: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            batch = make_batch(BatchSpec(40, "P"), state_file=state)
            made.append([r.serial for r in batch.records])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    serials = [serial for batch in made for serial in batch]
    assert sorted(serials) == [f"P{n:08d}" for n in range(1, 321)]


def test_damaged_state_file_is_not_overwritten(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    state.write_text("{not json")
    with pytest.raises(BatchError, match="never delete it"):
        make_batch(BatchSpec(1, "AB"), state_file=state)
    assert state.read_text() == "{not json"


def test_without_a_state_file_there_is_a_warning() -> None:
    batch = make_batch(BatchSpec(2, "X", digits=3), first_number=7)
    assert [r.serial for r in batch.records] == ["X007", "X008"]
    assert "--state-file" in batch.warnings[0]


def test_shared_key_warns() -> None:
    batch = make_batch(BatchSpec(5, "K", shared_key=True))
    assert len({r.key for r in batch.records}) == 1
    assert len({r.starting_code for r in batch.records}) > 1
    assert any("one key for the whole batch" in w for w in batch.warnings)


def test_count_start() -> None:
    assert {r.count for r in make_batch(BatchSpec(20, "C")).records} == {1}
    counts = [
        r.count for r in make_batch(BatchSpec(300, "C", count_start=CountStart.RANDOM)).records
    ]
    assert set(counts) == set(range(1, 11))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (BatchSpec(0, "A"), "number of devices"),
        (BatchSpec(1, "A B"), "prefix"),
        (BatchSpec(1, "A;"), "prefix"),
        (BatchSpec(1, "A" * 30, digits=5), "at most 32"),
        (BatchSpec(1, "A", time_divider=0), "time divider"),
        (BatchSpec(1, "A", test_code="12x"), "digits only"),
        (BatchSpec(1, "A", restricted=True, test_code="1239"), "1-4"),
    ],
)
def test_bad_specs(spec: BatchSpec, message: str) -> None:
    with pytest.raises(BatchError, match=message):
        make_batch(spec)


def test_progress_is_reported() -> None:
    seen: list[int] = []
    make_batch(BatchSpec(2500, "G"), progress=seen.append)
    assert seen == [1000, 2000, 2500]


# --- the test code -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "restricted", "expected"),
    [
        ("123456789", False, True),
        ("123456789012", False, True),
        ("12345678", False, False),
        ("1234567890", False, False),
        ("123412341234123", True, True),
        ("12341234123412341234", True, True),
        ("123412341", True, False),
        ("1234", True, False),
    ],
)
def test_which_lengths_can_collide(code: str, restricted: bool, expected: bool) -> None:
    assert can_collide(code, restricted) is expected


@pytest.mark.parametrize(
    ("restricted", "extended", "token_type"),
    [
        (False, False, TokenType.ADD_TIME),
        (False, False, TokenType.DISABLE_PAYG),
        (False, True, TokenType.SET_TIME),
        (True, False, TokenType.ADD_TIME),
        (True, True, TokenType.ADD_TIME),
    ],
)
def test_a_token_used_as_test_code_is_found(
    restricted: bool, extended: bool, token_type: TokenType
) -> None:
    record = DeviceRecord("T1", 516959010, KEY, count=3, time_divider=2, restricted=restricted)
    token = generate(
        record.params(),
        count=40,
        token_type=token_type,
        units=7 if token_type.carries_value else None,
        extended=extended,
    )
    assert token.count in collisions_with_test_code(record, token.digits, counts=100)
    # Outside the counts checked it is not found; a different code is not found.
    assert token.count not in collisions_with_test_code(record, token.digits, counts=30)
    other = token.digits[:-1] + ("1" if token.digits[-1] != "1" else "2")
    assert token.count not in collisions_with_test_code(record, other, counts=100)


def test_why_a_collision_matters_the_device_swallows_the_token() -> None:
    record = DeviceRecord("T1", 516959010, KEY)
    token = generate(record.params(), count=1, days=1)
    with SimulatedDevice() as sim:
        sim.provision(serial="T1", starting_code=516959010, key=KEY, test_code=token.digits)
        assert sim.enter_token(token.digits).kind is OutcomeKind.TEST_CODE
        assert sim.status().count == 1  # the customer's token was never applied


class Scripted(SecretsSource):
    """Random, except for the first key and starting code drawn."""

    def __init__(self, key: bytes, code: int) -> None:
        self.keys: Iterator[bytes] = iter([key])
        self.codes: Iterator[int] = iter([code - 100_000_000])

    def key(self) -> bytes:
        return next(self.keys, None) or super().key()

    def below(self, limit: int) -> int:
        if limit == 900_000_000:
            value = next(self.codes, None)
            if value is not None:
                return value
        return super().below(limit)


@pytest.mark.parametrize("shared", [False, True])
def test_colliding_parameters_are_drawn_again(shared: bool) -> None:
    clashing = DeviceRecord("X", 516959010, KEY)
    token = generate(clashing.params(), count=5, days=3)
    spec = BatchSpec(3, "R", test_code=token.digits, test_code_counts=20, shared_key=shared)
    batch = make_batch(spec, rng=Scripted(KEY, 516959010))
    assert batch.redrawn == 1
    first = batch.records[0]
    assert first.starting_code != 516959010
    assert (first.key == KEY) is shared
    for record in batch.records:
        assert record.test_code == token.digits
        assert collisions_with_test_code(record, token.digits, counts=20) == []
    assert "checked against every token" in batch.test_code_note


def test_a_test_code_of_another_length_is_not_checked() -> None:
    batch = make_batch(BatchSpec(3, "R", test_code="12345678"), rng=Scripted(KEY, 516959010))
    assert batch.redrawn == 0
    assert batch.records[0].key == KEY
    assert "not a token length" in batch.test_code_note


def test_auto_test_code() -> None:
    code = auto_test_code(False)
    assert len(code) == 8
    assert not can_collide(code, False)
    restricted = auto_test_code(True)
    assert set(restricted) <= set("1234")
    assert not can_collide(restricted, True)
