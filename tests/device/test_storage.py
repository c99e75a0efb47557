"""The state store: byte layout, power-cut safety, corruption fallback, wear, memory adapters."""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygkit.device import storage
from paygkit.device.memory import DEFAULT_SIZE, FileMemory, MemoryFileError, RamMemory
from paygkit.device.serial_number import SERIAL_MAX_LENGTH
from paygkit.device.state import (
    MAX_TEST_CODE_USES,
    MAX_USED_COUNTS,
    DeviceState,
    Provisioning,
    TamperFlag,
)
from paygkit.device.storage import (
    LAYOUT_VERSION,
    MAX_RECORD_SIZE,
    REQUIRED_MEMORY_SIZE,
    SLOT_OFFSETS,
    SLOT_SIZE,
    StateStore,
    StorageError,
    decode_record,
    encode_record,
)
from tests.device.powercut import PowerCut, PowerCutMemory

pytestmark = pytest.mark.one_firmware(
    "paygkit's StateStore itself; the C store is held to it byte for byte by "
    "tests/firmware/test_c_storage.py"
)

KEY = bytes.fromhex("dac86b1a29ab82edc5fbbc41ec9530f6")
PROVISIONING = Provisioning(
    serial="SLT240000002",
    key=KEY,
    starting_code=432435255,
    time_divider=4,
    test_code="999333777",
)
T0 = 1_700_000_000

# -- strategies -----------------------------------------------------------------

times = st.integers(-(2**63), 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)
provisionings = st.builds(
    Provisioning,
    serial=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=32),
    key=st.binary(min_size=16, max_size=16),
    starting_code=st.integers(0, 999_999_999),
    time_divider=st.integers(1, 255),
    restricted_digits=st.booleans(),
    test_code=st.none() | st.text("0123456789", min_size=1, max_size=20),
)
device_states = st.builds(
    DeviceState,
    provisioning=st.none() | provisionings,
    last_count=u32,
    used_counts=st.lists(u32, max_size=MAX_USED_COUNTS).map(tuple),
    payg_enabled=st.booleans(),
    active_until=times,
    invalid_attempts=u32,
    wait_left=st.integers(0, 2**63 - 1),
    tamper=st.integers(0, 7).map(TamperFlag),
    latest_rtc_seen=times,
    test_code_uses=st.lists(times, max_size=MAX_TEST_CODE_USES).map(tuple),
    test_active_until=times,
)


def maximal_state() -> DeviceState:
    """A state using every byte of the layout: the largest record there is."""
    return DeviceState(
        provisioning=Provisioning(
            serial="S" * SERIAL_MAX_LENGTH,
            key=KEY,
            starting_code=999_999_999,
            time_divider=255,
            restricted_digits=True,
            test_code="9" * storage.TEST_CODE_MAX_DIGITS,
        ),
        last_count=2**32 - 1,
        used_counts=tuple(range(1000, 1000 + MAX_USED_COUNTS)),
        active_until=-(2**63),
        invalid_attempts=2**32 - 1,
        wait_left=2**63 - 1,
        tamper=TamperFlag.RTC_SLOW | TamperFlag.RTC_FAST | TamperFlag.RTC_BACKWARDS,
        latest_rtc_seen=T0,
        test_code_uses=tuple(T0 + i for i in range(MAX_TEST_CODE_USES)),
        test_active_until=T0 + 30,
    )


def fresh_load(memory: RamMemory) -> tuple[DeviceState, bool]:
    """What a device restarting on these bytes loads, and whether it reports damage."""
    store = StateStore(RamMemory(data=memory.data))
    return store.load(), store.recovered_from_corruption


def slot_record(memory: RamMemory, slot: int) -> tuple[int, DeviceState]:
    offset = SLOT_OFFSETS[slot]
    return decode_record(memory.data[offset : offset + SLOT_SIZE])


def with_crc(record: bytearray) -> bytes:
    """A record whose CRC is recomputed after a deliberate change of its bytes."""
    end = len(record) - 4
    record[end:] = struct.pack("<I", zlib.crc32(bytes(record[:end])))
    return bytes(record)


def v1_record(state: DeviceState, *, blocked_until: int, sequence: int) -> bytes:
    """The record paygkit 0.1 wrote (layout version 1): the same bytes, but the i64 at
    payload offset 28 (record offset 28) was blocked_until, an RTC time."""
    record = bytearray(encode_record(dataclasses.replace(state, wait_left=0), sequence))
    record[4] = 1
    struct.pack_into("<q", record, 28, blocked_until)
    return with_crc(record)


# A run of saves whose states differ in many fields, as token entries produce.
RUN = (
    DeviceState(provisioning=PROVISIONING, latest_rtc_seen=T0),
    DeviceState(
        provisioning=PROVISIONING,
        last_count=2,
        used_counts=(2,),
        active_until=T0 + 7 * 86400,
        latest_rtc_seen=T0 + 5,
    ),
    DeviceState(
        provisioning=PROVISIONING,
        last_count=2,
        used_counts=(2,),
        active_until=T0 + 7 * 86400,
        invalid_attempts=3,
        wait_left=120,
        latest_rtc_seen=T0 + 10,
        tamper=TamperFlag.RTC_SLOW,
    ),
    DeviceState(
        provisioning=PROVISIONING,
        last_count=7,
        used_counts=(2, 3, 4, 5, 6, 7),
        payg_enabled=False,
        active_until=T0 + 86400,
        latest_rtc_seen=T0 + 200,
        test_code_uses=(T0 + 150, T0 + 160),
        test_active_until=T0 + 190,
    ),
    maximal_state(),
    DeviceState(provisioning=PROVISIONING, last_count=9, used_counts=(9,), active_until=T0),
)

# -- layout and round trip ---------------------------------------------------------


@settings(max_examples=300)
@given(state=device_states, sequence=u32)
def test_any_state_round_trips_through_a_record(state: DeviceState, sequence: int) -> None:
    record = encode_record(state, sequence)
    assert len(record) <= MAX_RECORD_SIZE
    assert decode_record(record) == (sequence, state)


@settings(max_examples=60)
@given(states=st.lists(device_states, min_size=1, max_size=5))
def test_every_saved_state_is_what_a_restart_loads(states: list[DeviceState]) -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.load()
    for state in states:
        store.save(state)
        assert fresh_load(memory) == (state, False)


def test_the_largest_record_fits_a_slot_and_two_slots_fit_the_default_memory() -> None:
    record = encode_record(maximal_state(), 1)
    assert len(record) == MAX_RECORD_SIZE
    assert MAX_RECORD_SIZE <= SLOT_SIZE
    assert 2 * SLOT_SIZE == REQUIRED_MEMORY_SIZE == DEFAULT_SIZE


def test_record_header_is_as_documented() -> None:
    record = encode_record(RUN[0], 0x01020304)
    magic, version, reserved, length, sequence = struct.unpack_from("<4sBBHI", record)
    assert (magic, version, reserved, sequence) == (b"PGKS", LAYOUT_VERSION, 0, 0x01020304)
    assert len(record) == 12 + length + 4
    assert record[-4:] == struct.pack("<I", zlib.crc32(record[:-4]))


def documented_record(marker: str) -> bytes:
    doc = (Path(__file__).parents[2] / "docs" / "storage-layout.md").read_text(encoding="utf-8")
    block = doc.split(f"<!-- {marker} -->")[1].split("```")[1]
    return bytes.fromhex("".join(line.partition(":")[2] for line in block.splitlines()))


def test_documented_example_record_matches_the_code() -> None:
    state = DeviceState(
        provisioning=PROVISIONING,
        last_count=3,
        used_counts=(2, 3),
        active_until=T0 + 86400,
        latest_rtc_seen=T0,
        invalid_attempts=3,
        wait_left=60,
    )
    assert encode_record(state, 1) == documented_record("example-record")


def test_documented_version_1_example_is_read_as_documented() -> None:
    documented = documented_record("example-record-v1")
    stored = DeviceState(
        provisioning=PROVISIONING,
        last_count=3,
        used_counts=(2, 3, 4, 6),
        active_until=T0 + 86400,
        latest_rtc_seen=T0,
        invalid_attempts=3,
    )
    assert v1_record(stored, blocked_until=T0 + 100, sequence=7) == documented
    assert decode_record(documented) == (
        7,
        dataclasses.replace(stored, last_count=6, wait_left=100),
    )


@pytest.mark.parametrize("fill", [0xFF, 0x00], ids=["erased", "zeroed"])
def test_blank_memory_loads_an_unprovisioned_state(fill: int) -> None:
    store = StateStore(RamMemory(data=bytes([fill]) * 1024))
    assert store.load() == DeviceState()
    assert not store.recovered_from_corruption


def test_memory_too_small_is_refused_with_the_size_needed() -> None:
    with pytest.raises(StorageError, match=r"has 1023 bytes .* needs 1024"):
        StateStore(RamMemory(1023))


# -- wear ------------------------------------------------------------------------


def test_saving_an_unchanged_state_writes_nothing() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    assert store.load() == DeviceState()
    assert store.save(DeviceState()) is False
    assert memory.write_count == 0

    assert store.save(RUN[1]) is True
    written = memory.write_count
    assert written > 0
    assert store.bytes_written == written
    assert store.save(RUN[1]) is False
    assert store.save(dataclasses.replace(RUN[1])) is False
    assert memory.write_count == written

    # A store that never loaded looks at the memory first.
    restarted = StateStore(memory)
    assert restarted.save(RUN[1]) is False
    assert memory.write_count == written


def test_only_the_bytes_that_differ_are_rewritten() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.save(RUN[2])
    before = memory.write_count
    # Slot A holds RUN[1]; this state differs from it in one 8-byte field.
    store.save(dataclasses.replace(RUN[1], active_until=RUN[1].active_until + 1))
    rewritten = memory.write_count - before
    # uncommit + commit mark, sequence, one field, CRC: far fewer than the record's bytes
    assert rewritten <= 2 + 4 + 8 + 4
    assert rewritten < len(encode_record(RUN[1], 3)) // 4


def test_saves_alternate_between_the_slots() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.load()
    for number, state in enumerate(RUN[:4], start=1):
        assert store.save(state)
        newest = (number - 1) % 2
        assert slot_record(memory, newest) == (number, state)
        if number > 1:
            assert slot_record(memory, 1 - newest) == (number - 1, RUN[number - 2])


def test_sequence_numbers_wrap_around() -> None:
    memory = RamMemory()
    memory.write(SLOT_OFFSETS[0], encode_record(RUN[1], 2**32 - 1))
    memory.write(SLOT_OFFSETS[1], encode_record(RUN[0], 2**32 - 2))
    store = StateStore(memory)
    assert store.load() == RUN[1]
    assert store.save(RUN[2])
    assert slot_record(memory, 1) == (0, RUN[2])
    assert fresh_load(memory) == (RUN[2], False)
    assert store.save(RUN[3])
    assert slot_record(memory, 0) == (1, RUN[3])
    assert fresh_load(memory) == (RUN[3], False)


# -- power cuts --------------------------------------------------------------------


def run_saves(memory: PowerCutMemory, states: tuple[DeviceState, ...]) -> int:
    """Save the states in turn; the number of saves that returned."""
    store = StateStore(memory)
    store.load()
    done = 0
    try:
        for state in states:
            store.save(state)
            done += 1
    except PowerCut:
        pass
    return done


def test_a_power_cut_after_any_byte_write_leaves_the_old_or_the_new_state() -> None:
    counter = PowerCutMemory(RamMemory())
    assert run_saves(counter, RUN) == len(RUN)
    total = counter.bytes_written

    history = (DeviceState(), *RUN)  # history[i] is the state after i saves
    seen = set()
    for budget in range(total + 1):
        ram = RamMemory()
        done = run_saves(PowerCutMemory(ram, budget), RUN)
        loaded, recovered = fresh_load(ram)
        if done == len(RUN):
            assert loaded == RUN[-1]
        else:
            # cut during save number done + 1: never older than the last save that returned
            assert loaded in (history[done], history[done + 1]), budget
        assert not recovered, f"an interrupted save was reported as damage (budget {budget})"
        seen.add(history.index(loaded))

        # The restarted device saves again over whatever the cut left behind.
        store = StateStore(ram)
        store.load()
        store.save(RUN[-1] if loaded != RUN[-1] else RUN[0])
        assert fresh_load(ram)[0] == (RUN[-1] if loaded != RUN[-1] else RUN[0])
    # every state was both still-old and already-new at some cut point
    assert seen == set(range(len(history)))


def test_power_cut_memory_counts_and_cuts_byte_writes() -> None:
    ram = RamMemory()
    memory = PowerCutMemory(ram, budget=3)
    memory.write(0, b"\x01\x02")
    with pytest.raises(PowerCut):
        memory.write(10, b"\x03\x04\x05")
    assert ram.read(0, 2) == b"\x01\x02"
    assert ram.read(10, 3) == b"\x03\xff\xff"
    with pytest.raises(PowerCut):
        memory.read(0, 1)


# -- corruption ----------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_damage_to_any_byte_of_the_newest_record_falls_back_to_the_older(mask: int) -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.save(RUN[3])
    newest = SLOT_OFFSETS[1]
    length = len(encode_record(RUN[3], 2))
    good = memory.data
    for position in range(newest, newest + length):
        damaged = bytearray(good)
        damaged[position] ^= mask
        assert fresh_load(RamMemory(data=bytes(damaged))) == (RUN[1], True), position


def test_damage_after_the_end_of_a_record_is_harmless() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.save(RUN[3])
    end = SLOT_OFFSETS[1] + len(encode_record(RUN[3], 2))
    memory.write(end, b"\x00" * (SLOT_OFFSETS[1] + SLOT_SIZE - end))
    assert fresh_load(memory) == (RUN[3], False)


def test_damage_to_the_older_record_keeps_the_newest_and_is_reported() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.save(RUN[3])
    memory.write(SLOT_OFFSETS[0] + 20, b"\x5a")
    assert fresh_load(memory) == (RUN[3], True)


def test_a_save_after_a_fallback_replaces_the_damaged_record() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.save(RUN[3])
    memory.write(SLOT_OFFSETS[1] + 30, b"\x5a")
    restarted = StateStore(memory)
    assert restarted.load() == RUN[1]
    assert restarted.recovered_from_corruption
    restarted.save(RUN[2])
    assert slot_record(memory, 0) == (1, RUN[1])  # the intact record was not touched
    assert fresh_load(memory) == (RUN[2], False)


def test_both_records_damaged_gives_an_unprovisioned_state_and_reports_it() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.save(RUN[3])
    memory.write(SLOT_OFFSETS[0] + 40, b"\x5a")
    memory.write(SLOT_OFFSETS[1] + 40, b"\x5a")
    assert fresh_load(memory) == (DeviceState(), True)


def test_a_newer_layout_version_is_reported_not_reset() -> None:
    memory = RamMemory()
    StateStore(memory).save(RUN[1])
    newer = bytearray(encode_record(RUN[2], 2))
    newer[4] = LAYOUT_VERSION + 1
    memory.write(SLOT_OFFSETS[1], with_crc(newer))
    before = memory.data
    store = StateStore(memory)
    with pytest.raises(StorageError, match=r"version 3, newer than version 2.*Update paygkit"):
        store.load()
    with pytest.raises(StorageError, match="newer"):
        store.save(RUN[3])
    assert memory.data == before


@pytest.mark.parametrize(
    ("offset", "value", "problem"),
    [
        (12 + 1, 0, "time divider 0"),  # time divider of a provisioned state
        (12 + 0, 0x08, "unknown flag bits"),
        (12 + 2, 0x10, "unknown tamper bits"),
        (5, 1, "reserved byte"),
        (4, 0, "layout version 0"),
        (28 + 7, 0x80, r"wait_left -\d+ is outside 0\.\."),  # a negative wait
    ],
)
def test_an_intact_record_with_impossible_values_is_reported(
    offset: int, value: int, problem: str
) -> None:
    memory = RamMemory()
    StateStore(memory).save(RUN[1])
    bad = bytearray(encode_record(RUN[2], 2))
    bad[offset] = value
    memory.write(SLOT_OFFSETS[1], with_crc(bad))
    before = memory.data
    with pytest.raises(StorageError, match=problem) as caught:
        StateStore(memory).load()
    assert "slot B" in str(caught.value)
    assert KEY.hex() not in str(caught.value)
    assert memory.data == before


# -- version 1 records -------------------------------------------------------------------


@settings(max_examples=200)
@given(state=device_states, blocked_until=times, sequence=u32)
def test_a_version_1_record_is_read_into_a_version_2_state(
    state: DeviceState, blocked_until: int, sequence: int
) -> None:
    loaded_sequence, loaded = decode_record(
        v1_record(state, blocked_until=blocked_until, sequence=sequence)
    )
    assert loaded_sequence == sequence
    assert loaded.wait_left == min(2**63 - 1, max(0, blocked_until - state.latest_rtc_seen))
    assert loaded.last_count == max(state.last_count, *state.used_counts, 0)
    assert loaded == dataclasses.replace(
        state, wait_left=loaded.wait_left, last_count=loaded.last_count
    )
    # And it is written back as version 2 unchanged.
    following = (sequence + 1) % 2**32
    assert decode_record(encode_record(loaded, following)) == (following, loaded)


@pytest.mark.parametrize(
    ("last_count", "used_counts", "expected"),
    [
        (3, (2, 3, 4, 6), 6),  # a reference-rule Counter Sync moved the count back
        (9, (2, 3, 4, 6), 9),
        (5, (), 5),
        (0, (0,), 0),
    ],
)
def test_a_version_1_last_count_is_raised_to_the_highest_used_count(
    last_count: int, used_counts: tuple[int, ...], expected: int
) -> None:
    state = DeviceState(provisioning=PROVISIONING, last_count=last_count, used_counts=used_counts)
    assert decode_record(v1_record(state, blocked_until=0, sequence=1))[1].last_count == expected


@pytest.mark.parametrize(
    ("blocked_until", "wait_left"),
    [(T0 + 120, 120), (T0, 0), (T0 - 5000, 0), (0, 0), (2**63 - 1, 2**63 - 1 - T0)],
)
def test_a_version_1_wait_is_what_was_left_at_the_latest_rtc_seen(
    blocked_until: int, wait_left: int
) -> None:
    state = DeviceState(provisioning=PROVISIONING, invalid_attempts=3, latest_rtc_seen=T0)
    record = v1_record(state, blocked_until=blocked_until, sequence=1)
    assert decode_record(record)[1].wait_left == wait_left


def test_a_version_1_wait_beyond_64_bits_is_clamped() -> None:
    state = DeviceState(latest_rtc_seen=-(2**63))
    record = v1_record(state, blocked_until=2**63 - 1, sequence=1)
    assert decode_record(record)[1].wait_left == 2**63 - 1


def test_a_version_1_record_is_upgraded_by_the_next_save_not_by_loading() -> None:
    old = DeviceState(
        provisioning=PROVISIONING,
        last_count=3,
        used_counts=(2, 3, 4, 6),
        invalid_attempts=3,
        latest_rtc_seen=T0,
    )
    memory = RamMemory()
    memory.write(SLOT_OFFSETS[0], v1_record(old, blocked_until=T0 + 90, sequence=41))
    writes = memory.write_count
    store = StateStore(memory)
    upgraded = store.load()
    assert upgraded == dataclasses.replace(old, last_count=6, wait_left=90)
    assert not store.recovered_from_corruption
    assert store.save(upgraded) is False  # nothing changed: nothing written
    assert memory.write_count == writes

    changed = dataclasses.replace(upgraded, wait_left=30)
    assert store.save(changed)
    assert memory.read(SLOT_OFFSETS[1] + 4, 1) == bytes([LAYOUT_VERSION])
    assert slot_record(memory, 1) == (42, changed)
    assert memory.read(SLOT_OFFSETS[0] + 4, 1) == b"\x01"  # untouched until the next save
    assert fresh_load(memory) == (changed, False)
    # Should the new record be damaged, the version 1 one is read again, the same way.
    memory.write(SLOT_OFFSETS[1] + 40, b"\x5a")
    assert fresh_load(memory) == (upgraded, True)


def test_a_power_cut_during_the_first_save_over_a_version_1_record() -> None:
    old = DeviceState(provisioning=PROVISIONING, last_count=3, used_counts=(2, 3, 6))
    image = RamMemory()
    image.write(SLOT_OFFSETS[0], v1_record(old, blocked_until=0, sequence=1))
    upgraded = dataclasses.replace(old, last_count=6)
    new = dataclasses.replace(upgraded, last_count=8, used_counts=(2, 3, 6, 8))
    counter = PowerCutMemory(RamMemory(data=image.data))
    assert run_saves(counter, (new,)) == 1
    seen = set()
    for budget in range(counter.bytes_written + 1):
        ram = RamMemory(data=image.data)
        run_saves(PowerCutMemory(ram, budget), (new,))
        loaded, recovered = fresh_load(ram)
        assert loaded in (upgraded, new), budget
        assert not recovered
        seen.add(loaded == new)
    assert seen == {False, True}


# -- states that do not fit -------------------------------------------------------------


def _provisioned(**changes: object) -> DeviceState:
    return DeviceState(provisioning=dataclasses.replace(PROVISIONING, **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (DeviceState(used_counts=tuple(range(65))), r"65 used counts .* at most 64"),
        (_provisioned(serial="X" * 33), r"33 characters long; the layout holds 1 to 32"),
        (_provisioned(serial="ümlaut"), "printable ASCII"),
        (DeviceState(test_code_uses=tuple(range(17))), r"17 test code use times .* at most 16"),
        (_provisioned(test_code="12a4"), "digits 0-9"),
        (_provisioned(test_code=""), "digits 0-9"),
        (_provisioned(test_code="1" * 21), "1 to 20 digits"),
        (_provisioned(key=KEY[:15]), "16 bytes, but it is 15 bytes"),
        (_provisioned(time_divider=0), r"time divider 0 is outside 1\.\.255"),
        (_provisioned(starting_code=1_000_000_000), "starting code 1000000000"),
        (DeviceState(last_count=-1), "last_count -1"),
        (DeviceState(active_until=2**63), "active_until"),
        (DeviceState(wait_left=-1), r"wait_left -1 is outside 0\.\."),
        (DeviceState(payg_enabled=1), "payg_enabled must be True or False"),  # type: ignore[arg-type]
    ],
)
def test_a_state_that_does_not_fit_is_refused_and_memory_is_untouched(
    state: DeviceState, message: str
) -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    before, writes = memory.data, memory.write_count
    with pytest.raises(StorageError, match=message) as caught:
        store.save(state)
    assert KEY.hex() not in str(caught.value)
    assert memory.data == before
    assert memory.write_count == writes
    assert fresh_load(memory) == (RUN[1], False)


def test_the_key_is_never_shown() -> None:
    memory = RamMemory()
    store = StateStore(memory)
    store.save(RUN[1])
    store.load()
    for text in (repr(store), repr(store.load()), repr(memory)):
        assert KEY.hex() not in text.lower()
        assert repr(KEY) not in text


# -- memory adapters ----------------------------------------------------------------------


def test_ram_memory_is_bounds_checked() -> None:
    memory = RamMemory(16)
    with pytest.raises(ValueError, match=r"cannot read 4 bytes at offset 14: the memory has 16"):
        memory.read(14, 4)
    with pytest.raises(ValueError, match="cannot write"):
        memory.write(-1, b"\x00")
    with pytest.raises(ValueError, match="cannot write"):
        memory.write(15, b"\x00\x00")
    assert memory.data == b"\xff" * 16
    assert memory.write_count == 0


def test_ram_memory_from_data() -> None:
    memory = RamMemory(data=b"\x01\x02\x03")
    assert memory.size == 3
    assert memory.read(1, 2) == b"\x02\x03"
    with pytest.raises(ValueError, match="3 bytes but the memory size is 4"):
        RamMemory(4, data=b"\x01\x02\x03")


def test_file_memory_is_created_blank_and_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "device.mem"
    with FileMemory(path) as memory:
        assert path.read_bytes() == b"\xff" * DEFAULT_SIZE
        assert StateStore(memory).load() == DeviceState()
        StateStore(memory).save(RUN[3])
    assert memory.closed
    with FileMemory(path) as again:
        store = StateStore(again)
        assert store.load() == RUN[3]
        store.save(RUN[4])
    with FileMemory(path) as third:
        assert StateStore(third).load() == RUN[4]


def test_file_memory_syncs_every_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FileMemory(tmp_path / "device.mem") as memory:
        synced: list[int] = []
        real_fsync = os.fsync

        def recording_fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", recording_fsync)
        memory.write(10, b"abc")
        memory.write(20, b"d")
        assert len(synced) == 2
        assert memory.read(10, 3) == b"abc"


def test_file_memory_refuses_a_file_of_the_wrong_size(tmp_path: Path) -> None:
    path = tmp_path / "other.bin"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(MemoryFileError, match=r"holds 100 bytes but this device memory is 1024"):
        FileMemory(path)
    assert path.read_bytes() == b"\x00" * 100
    with FileMemory(path, size=100) as memory:
        assert memory.read(0, 100) == b"\x00" * 100
        with pytest.raises(StorageError, match="needs 1024"):
            StateStore(memory)


def test_an_empty_file_becomes_a_blank_memory(tmp_path: Path) -> None:
    path = tmp_path / "empty.mem"
    path.touch()
    with FileMemory(path) as memory:
        assert StateStore(memory).load() == DeviceState()
    assert path.read_bytes() == b"\xff" * DEFAULT_SIZE


def test_file_memory_is_bounds_checked_and_closed_memory_refuses_access(tmp_path: Path) -> None:
    memory = FileMemory(tmp_path / "device.mem", size=32)
    with pytest.raises(ValueError, match="cannot write 2 bytes at offset 31"):
        memory.write(31, b"\x00\x00")
    with pytest.raises(ValueError, match="cannot read"):
        memory.read(0, 33)
    memory.close()
    with pytest.raises(ValueError, match="is closed"):
        memory.read(0, 1)
    assert (tmp_path / "device.mem").read_bytes() == b"\xff" * 32


def test_a_memory_file_is_used_by_one_device_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "device.mem"
    with FileMemory(path), pytest.raises(MemoryFileError, match="already in use"):
        FileMemory(path)
    with FileMemory(path) as reopened:
        assert reopened.size == DEFAULT_SIZE
