"""The C state store (firmware/lib/pgk_storage.c) against paygkit's own (paygkit.device.storage).

docs/storage-layout.md promises that a memory dump passes between a device
and paygkit either way.  These tests hold the C store to that byte for byte:
records and whole memory images agree for the same saves, a power cut after
any byte write leaves the old or the new state (the property of
tests/device/test_storage.py, checked on the same runs of saves, and with
the same memory image after every cut), and damaged or foreign records are
treated as paygkit treats them.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from paygkit.device.memory import RamMemory
from paygkit.device.state import DeviceConfig, DeviceState, Provisioning, TamperFlag
from paygkit.device.storage import (
    LAYOUT_VERSION,
    REQUIRED_MEMORY_SIZE,
    SLOT_OFFSETS,
    SLOT_SIZE,
    StateStore,
    StorageError,
    encode_record,
)
from paygkit.token import DeviceParams, TokenType, decode, generate
from tests.device.powercut import PowerCut, PowerCutMemory
from tests.device.test_storage import (
    KEY,
    PROVISIONING,
    T0,
    device_states,
    documented_record,
    maximal_state,
    times,
    u32,
    v1_record,
    with_crc,
)
from tests.device.test_storage import RUN as PAYGKIT_RUN
from tests.firmware.conftest import HOST_DIR, LIBRARY_DIR, Compiler, HostProgram

SOURCES = (HOST_DIR / "storage_harness.c", LIBRARY_DIR / "pgk_storage.c")
BLANK = b"\xff" * REQUIRED_MEMORY_SIZE

# pgk_state's word order in the harness's STATE text (see storage_harness.c).
FLAGS, DIVIDER, TAMPER, SERIAL_LENGTH, TEST_CODE_LENGTH, USED_N, USES_N, RESERVED = range(8)
ACTIVE_UNTIL, WAIT_LEFT, LATEST_RTC_SEEN, TEST_ACTIVE_UNTIL = range(8, 12)
STARTING_CODE, LAST_COUNT, INVALID_ATTEMPTS = range(12, 15)
KEY_HEX, USED, USES, SERIAL, TEST_CODE = range(15, 20)


# -- the lists as pgk_state keeps them ---------------------------------------------

# The harness's build: paygkit's DecodeWindows().unordered and DeviceConfig().test_code_max_uses.
UNORDERED = 16
KEPT_USES = 5


def kept_used_counts(used: Sequence[int]) -> tuple[int, ...]:
    """What a load keeps of a record's used counts: those within the unordered window below
    the highest, ascending (paygkit's updated_used_counts keeps exactly these)."""
    if not used:
        return ()
    top = max(used)
    return tuple(sorted({c for c in used if c >= top - UNORDERED}))


def kept_test_code_uses(uses: Sequence[int]) -> tuple[int, ...]:
    """What a load keeps of a record's test code uses: the KEPT_USES latest, in their order."""
    kept: list[int] = []
    for use in uses:
        if len(kept) == KEPT_USES:
            earliest = kept.index(min(kept))
            if use <= kept[earliest]:
                continue
            del kept[earliest]
        kept.append(use)
    return tuple(kept)


def kept(state: DeviceState) -> DeviceState:
    """The state a load of `state`'s record gives in C (pgk_storage.h)."""
    return dataclasses.replace(
        state,
        used_counts=kept_used_counts(state.used_counts),
        test_code_uses=kept_test_code_uses(state.test_code_uses),
    )


# tests/device/test_storage.py's run of saves as C keeps it: its largest state
# becomes the largest pgk_state holds (the largest record, one paygkit's firmware
# never writes, is loaded over in "over-the-largest-record" below).
RUN = tuple(kept(state) for state in PAYGKIT_RUN)

# States with the lists paygkit's firmware writes: those read back unchanged.
kept_states = st.builds(
    lambda state, top, picked, uses: dataclasses.replace(
        state,
        used_counts=tuple(sorted({top - d for d in picked if d <= top})),
        test_code_uses=uses,
    ),
    device_states,
    u32,
    st.sets(st.integers(0, UNORDERED), max_size=UNORDERED + 1),
    st.lists(times, max_size=KEPT_USES).map(tuple),
)


# -- the harness -----------------------------------------------------------------


def _harness(
    compile_host_program: Compiler,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    defines: dict[str, int],
) -> Iterator[CStore]:
    program = compile_host_program(name, SOURCES, defines)
    harness = HostProgram(program, tmp_path_factory.mktemp(name) / "stderr.txt")
    yield CStore(harness)
    harness.close()


@pytest.fixture(scope="module")
def eeprom(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CStore]:
    """The store on byte-rewritable memory, the layout's main procedure."""
    yield from _harness(compile_host_program, tmp_path_factory, "storage_harness", {})


@pytest.fixture(scope="module")
def flash(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CStore]:
    """The store built for NOR flash (PGK_NV_NEEDS_ERASE=1): erase, then program."""
    yield from _harness(
        compile_host_program, tmp_path_factory, "storage_harness_flash", {"PGK_NV_NEEDS_ERASE": 1}
    )


@pytest.fixture(scope="module")
def rtc_32bit(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CStore]:
    """The store of a PGK_RTC_32BIT build: test code use times kept in 32 bits."""
    yield from _harness(
        compile_host_program, tmp_path_factory, "storage_harness_rtc_32bit", {"PGK_RTC_32BIT": 1}
    )


@pytest.fixture(scope="module")
def without_version_1(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CStore]:
    """The smaller build that does not read version 1 records (PGK_STORAGE_READ_VERSION_1=0)."""
    yield from _harness(
        compile_host_program,
        tmp_path_factory,
        "storage_harness_without_version_1",
        {"PGK_STORAGE_READ_VERSION_1": 0},
    )


def _pack_digits(digits: str) -> bytes:
    nibbles = [int(d) for d in digits] + ([0xF] if len(digits) % 2 else [])
    return bytes(nibbles[i] << 4 | nibbles[i + 1] for i in range(0, len(nibbles), 2))


def _unpack_digits(packed: bytes, count: int) -> str:
    return "".join(f"{byte:02x}" for byte in packed)[:count]


def _listed(values: Sequence[int]) -> str:
    return ",".join(map(str, values)) if values else "-"


def _hex(data: bytes) -> str:
    return data.hex() if data else "-"


def state_words(state: DeviceState) -> list[str]:
    """The harness's STATE words for a paygkit state (as the layout stores it)."""
    prov = state.provisioning
    flags = (4 if state.payg_enabled else 0) | (
        1 | (2 if prov.restricted_digits else 0) if prov else 0
    )
    serial = prov.serial.encode("latin-1") if prov else b""
    test_code = (prov.test_code or "") if prov else ""
    numbers = (
        flags,
        prov.time_divider if prov else 0,
        int(state.tamper),
        len(serial),
        len(test_code),
        len(state.used_counts),
        len(state.test_code_uses),
        0,
        state.active_until,
        state.wait_left,
        state.latest_rtc_seen,
        state.test_active_until,
        prov.starting_code if prov else 0,
        state.last_count,
        state.invalid_attempts,
    )
    return [
        *map(str, numbers),
        (prov.key if prov else bytes(16)).hex(),
        _listed(state.used_counts),
        _listed(state.test_code_uses),
        _hex(serial),
        _hex(_pack_digits(test_code)),
    ]


def parse_state(words: Sequence[str]) -> DeviceState:
    """A state the harness printed, as paygkit's DeviceState."""
    flags, divider, tamper, serial_length, digits = (int(w) for w in words[FLAGS:USED_N])
    assert int(words[RESERVED]) == 0
    used = () if words[USED] == "-" else tuple(int(c) for c in words[USED].split(","))
    uses = () if words[USES] == "-" else tuple(int(t) for t in words[USES].split(","))
    assert (len(used), len(uses)) == (int(words[USED_N]), int(words[USES_N]))
    serial = b"" if words[SERIAL] == "-" else bytes.fromhex(words[SERIAL])
    assert len(serial) == serial_length
    provisioning = None
    if flags & 1:
        provisioning = Provisioning(
            serial=serial.decode("latin-1"),
            key=bytes.fromhex(words[KEY_HEX]),
            starting_code=int(words[STARTING_CODE]),
            time_divider=divider,
            restricted_digits=bool(flags & 2),
            test_code=_unpack_digits(bytes.fromhex(words[TEST_CODE]), digits) if digits else None,
        )
    return DeviceState(
        provisioning=provisioning,
        last_count=int(words[LAST_COUNT]),
        used_counts=used,
        payg_enabled=bool(flags & 4),
        active_until=int(words[ACTIVE_UNTIL]),
        invalid_attempts=int(words[INVALID_ATTEMPTS]),
        wait_left=int(words[WAIT_LEFT]),
        tamper=TamperFlag(tamper),
        latest_rtc_seen=int(words[LATEST_RTC_SEEN]),
        test_code_uses=uses,
        test_active_until=int(words[TEST_ACTIVE_UNTIL]),
    )


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What a load gave: a state (and the damage report), or an error and the slot it names."""

    outcome: str
    state: DeviceState | None = None
    recovered: bool = False
    slot: int | None = None


class CStore:
    """The C store and its memory, behind the harness's requests."""

    def __init__(self, harness: HostProgram) -> None:
        self.harness = harness

    def ask(self, request: str) -> str:
        return self.harness.ask(request)

    def start(self, image: bytes = BLANK) -> None:
        """The memory holds `image`; the device has just been switched on."""
        assert self.ask(f"image {image.hex()}") == "ok"

    def dump(self) -> bytes:
        return bytes.fromhex(self.ask("dump"))

    def reboot(self) -> None:
        assert self.ask("reboot") == "ok"

    def cut_after(self, byte_writes: int) -> None:
        assert self.ask(f"cut {byte_writes}") == "ok"

    def load(self) -> Loaded:
        outcome, *rest = self.ask("load").split()
        if outcome != "ok":
            return Loaded(outcome, slot=int(rest[0]))
        return Loaded("ok", parse_state(rest[1:]), recovered=rest[0] == "1")

    def save_words(self, words: Sequence[str]) -> tuple[str, int]:
        outcome, written = self.ask("save " + " ".join(words)).split()
        return outcome, int(written)

    def save(self, state: DeviceState) -> tuple[str, int]:
        return self.save_words(state_words(state))

    def encode(self, state: DeviceState, sequence: int) -> bytes:
        return bytes.fromhex(self.ask(f"encode {sequence} " + " ".join(state_words(state))))


def python_load(image: bytes) -> Loaded:
    """What paygkit's store makes of the same memory, in the harness's terms."""
    store = StateStore(RamMemory(data=image))
    try:
        state = store.load()
    except StorageError as problem:
        text = str(problem)
        slot = 0 if "slot A" in text else 1
        assert f"slot {'AB'[slot]}" in text
        outcome = "newer" if "newer firmware" in text else "refused"
        assert outcome == "newer" or "intact CRC" in text, text
        return Loaded(outcome, slot=slot)
    return Loaded("ok", state, recovered=store.recovered_from_corruption)


def python_image(states: Sequence[DeviceState], start: bytes = BLANK) -> bytes:
    memory = RamMemory(data=start)
    store = StateStore(memory)
    for state in states:
        store.save(state)
    return memory.data


def fresh(state: DeviceState) -> Loaded:
    return Loaded("ok", state, recovered=False)


def image_of(*records: tuple[int, bytes]) -> bytes:
    """A blank memory with these (slot, record) written in."""
    image = bytearray(BLANK)
    for slot, record in records:
        image[SLOT_OFFSETS[slot] : SLOT_OFFSETS[slot] + len(record)] = record
    return bytes(image)


# Slot A newest, at the last sequence number before the wrap: the next save goes to B.
WRAPPING = image_of((0, encode_record(RUN[1], 2**32 - 1)), (1, encode_record(RUN[0], 2**32 - 2)))


V1_START = image_of(
    (
        0,
        v1_record(
            DeviceState(provisioning=PROVISIONING, last_count=3, used_counts=(2, 3, 6)),
            blocked_until=0,
            sequence=1,
        ),
    )
)
# The largest record there is (64 used counts, 16 test code uses) in slot A.
LARGEST_START = image_of((0, encode_record(maximal_state(), 1)))
V1_NEXT = DeviceState(provisioning=PROVISIONING, last_count=8, used_counts=(2, 3, 6, 8))


def test_the_harness_words_round_trip() -> None:
    """The test's own translation, so a failure above is the store's, not the test's."""
    assert parse_state(state_words(maximal_state())) == maximal_state()
    assert _unpack_digits(_pack_digits("999333777"), 9) == "999333777"
    assert state_words(DeviceState(provisioning=PROVISIONING))[KEY_HEX] == KEY.hex()


# -- what a load keeps decides as the whole list would ---------------------------------------

DECIDING_DEVICE = DeviceParams(key=KEY, starting_code=123_456_789)


@settings(max_examples=150, deadline=None)
@given(
    top=st.integers(0, 120),
    spread=st.lists(st.integers(0, 60), max_size=30),
    last_below=st.integers(0, 30),
    offsets=st.lists(st.integers(-40, 8), min_size=1, max_size=6),
    token_type=st.sampled_from(
        (TokenType.ADD_TIME, TokenType.SET_TIME, TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC)
    ),
    order=st.randoms(use_true_random=False),
)
def test_a_load_keeps_what_decides_anything_of_the_used_counts(
    top: int,
    spread: list[int],
    last_below: int,
    offsets: list[int],
    token_type: TokenType,
    order: Any,
) -> None:
    """paygkit's decode on a record's list as stored (any order, repeats, counts far below
    the window, more than paygkit keeps) and on what a C load keeps of it: the same
    decision for every token, and after an accepted one the same list to store."""
    raw = [top, *(max(0, top - d) for d in spread), *(max(0, top - d) for d in spread[:3])]
    order.shuffle(raw)
    last_count = max(0, top - last_below)
    held = kept_used_counts(raw)
    highest = max(last_count, top)
    for offset in offsets:
        made = generate(
            DECIDING_DEVICE,
            count=max(0, highest + offset),
            token_type=token_type,
            units=1 if token_type.carries_value else None,
        )
        whole = decode(DECIDING_DEVICE, made.digits, last_count=last_count, used_counts=raw)
        kept_only = decode(DECIDING_DEVICE, made.digits, last_count=last_count, used_counts=held)
        if whole.token_type in (TokenType.ALREADY_USED, TokenType.INVALID):
            # Not accepted: each gives back the list it was given, as the state to keep.
            assert dataclasses.replace(whole, used_counts=held) == kept_only
        else:
            assert whole == kept_only


@settings(max_examples=300, deadline=None)
@given(
    uses=st.lists(st.integers(0, 8000), max_size=16),
    now=st.integers(0, 9000),
    max_uses=st.just(KEPT_USES),
)
def test_a_load_keeps_what_decides_anything_of_the_test_code_uses(
    uses: list[int], now: int, max_uses: int
) -> None:
    """paygkit's test code rule (Firmware._use_test_code) on a record's uses as stored and on
    the KEPT_USES latest a C load keeps: refused alike, and an accepted use stores the same
    list.  (With more than KEPT_USES recent uses, which paygkit's firmware never stores,
    the wait shown may be shorter: the earliest of them is not kept.)"""
    period = DeviceConfig().test_code_period_seconds
    assert DeviceConfig().test_code_max_uses == max_uses

    def rule(held: Sequence[int]) -> tuple[int, ...] | None:
        recent = tuple(u for u in held if u > now - period)
        return None if len(recent) >= max_uses else (*recent, now)[-16:]

    assert rule(uses) == rule(kept_test_code_uses(uses))


# -- records and images, both ways ---------------------------------------------------------

DOCUMENTED_STATE = DeviceState(
    provisioning=PROVISIONING,
    last_count=3,
    used_counts=(2, 3),
    active_until=T0 + 86400,
    latest_rtc_seen=T0,
    invalid_attempts=3,
    wait_left=60,
)


def test_the_crc_is_zlibs(eeprom: CStore) -> None:
    assert eeprom.ask(f"crc {b'123456789'.hex()}") == "cbf43926"
    record = encode_record(maximal_state(), 7)
    assert int(eeprom.ask(f"crc {record.hex()}"), 16) == zlib.crc32(record)


def test_the_documented_records_are_written_and_read_as_documented(eeprom: CStore) -> None:
    assert eeprom.encode(DOCUMENTED_STATE, 1) == documented_record("example-record")

    image = bytearray(BLANK)
    v1 = documented_record("example-record-v1")
    image[: len(v1)] = v1
    eeprom.start(bytes(image))
    assert eeprom.load() == fresh(
        DeviceState(
            provisioning=PROVISIONING,
            last_count=6,
            used_counts=(2, 3, 4, 6),
            active_until=T0 + 86400,
            latest_rtc_seen=T0,
            invalid_attempts=3,
            wait_left=100,
        )
    )
    assert eeprom.dump() == bytes(image)  # loading writes nothing


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=kept_states, sequence=u32)
def test_any_state_encodes_to_paygkits_record(
    eeprom: CStore, state: DeviceState, sequence: int
) -> None:
    assert eeprom.encode(state, sequence) == encode_record(state, sequence)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=device_states)
def test_other_lists_are_kept_as_a_load_keeps_them(eeprom: CStore, state: DeviceState) -> None:
    """pgk_state holds the lists in paygkit's own form: given others, it keeps what a load
    keeps (the harness reads its lists as a load does)."""
    assert eeprom.encode(state, 1) == encode_record(kept(state), 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states=st.lists(kept_states, min_size=1, max_size=5))
def test_saves_made_by_c_are_loaded_by_paygkit_and_leave_the_same_image(
    eeprom: CStore, states: list[DeviceState]
) -> None:
    eeprom.start()
    assert eeprom.load() == fresh(DeviceState())
    for number, state in enumerate(states, start=1):
        outcome, _ = eeprom.save(state)
        assert outcome in ("ok", "unchanged")
        image = eeprom.dump()
        assert python_load(image) == fresh(state)
        assert image == python_image(states[:number])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states=st.lists(kept_states | device_states, min_size=1, max_size=5))
def test_saves_made_by_paygkit_are_loaded_by_c(eeprom: CStore, states: list[DeviceState]) -> None:
    """Also with lists paygkit's firmware never writes: C keeps of them what decides anything
    (test_a_load_keeps_what_decides_anything), the rest of the state as stored."""
    memory = RamMemory()
    store = StateStore(memory)
    store.load()
    for state in states:
        store.save(state)
        eeprom.start(memory.data)
        assert eeprom.load() == fresh(kept(state))
    # And C carries on where paygkit stopped, as paygkit itself would.
    eeprom.save(RUN[3])
    store.save(RUN[3])
    assert eeprom.dump() == memory.data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=kept_states | device_states, blocked_until=times, sequence=u32, newer=kept_states)
@example(  # the wait left is beyond 64 bits and is clamped
    state=DeviceState(latest_rtc_seen=-(2**63)),
    blocked_until=2**63 - 1,
    sequence=1,
    newer=DeviceState(),
)
def test_a_version_1_record_is_read_and_replaced_as_paygkit_does(
    eeprom: CStore, state: DeviceState, blocked_until: int, sequence: int, newer: DeviceState
) -> None:
    image = bytearray(BLANK)
    record = v1_record(state, blocked_until=blocked_until, sequence=sequence)
    image[: len(record)] = record
    memory = RamMemory(data=bytes(image))
    python = StateStore(memory)
    upgraded = python.load()
    eeprom.start(bytes(image))
    assert eeprom.load() == fresh(kept(upgraded))
    # Saving what was loaded changes nothing and writes nothing ...
    if kept(upgraded) == upgraded:
        assert eeprom.save(upgraded) == ("unchanged", 0)
        assert eeprom.dump() == bytes(image)
    # ... and a change is written as version 2 into the other slot, as paygkit writes it.
    python.save(newer)
    eeprom.save(newer)
    assert eeprom.dump() == memory.data


def test_a_build_without_version_1_refuses_a_version_1_record_and_keeps_it(
    without_version_1: CStore,
) -> None:
    without_version_1.start(V1_START)
    assert without_version_1.load() == Loaded("refused", slot=0)
    assert without_version_1.save(V1_NEXT) == ("not-loaded", 0)
    assert without_version_1.dump() == V1_START
    # An older version 1 record next to a newer version 2 one is no obstacle.
    start = python_image((V1_NEXT,), V1_START)
    without_version_1.start(start)
    assert without_version_1.load() == fresh(V1_NEXT)
    assert without_version_1.save(RUN[1])[0] == "ok"
    assert without_version_1.dump() == python_image((RUN[1],), start)


# -- wear ------------------------------------------------------------------------------


def test_an_unchanged_state_writes_nothing_and_a_change_only_what_differs(eeprom: CStore) -> None:
    eeprom.start()
    eeprom.load()
    assert eeprom.save(DeviceState()) == ("unchanged", 0)
    assert eeprom.dump() == BLANK

    memory = RamMemory()
    store = StateStore(memory)
    one_field_changed = dataclasses.replace(RUN[1], active_until=RUN[1].active_until + 1)
    for state in (RUN[1], RUN[2], one_field_changed):
        before = memory.write_count
        store.save(state)
        written = memory.write_count - before
        assert eeprom.save(state) == ("ok", written)
        assert eeprom.save(dataclasses.replace(state)) == ("unchanged", 0)
    assert eeprom.dump() == memory.data
    # Slot A held RUN[1]: uncommit + commit mark, sequence, one field, CRC.
    assert written <= 2 + 4 + 8 + 4

    eeprom.reboot()  # a restarted device knows what its memory holds
    assert eeprom.load() == fresh(state)
    assert eeprom.save(state) == ("unchanged", 0)


def test_a_slot_that_does_not_read_back_as_written_is_reported(eeprom: CStore) -> None:
    start = python_image((RUN[1], RUN[2]))
    eeprom.start(start)
    eeprom.load()
    # A worn cell in slot A, where the next save goes, at a payload byte that changes.
    held, wanted = encode_record(RUN[1], 1), encode_record(RUN[3], 3)
    worn = next(i for i in range(12, len(held)) if held[i] != wanted[i])
    assert eeprom.ask(f"stuck {SLOT_OFFSETS[0] + worn}") == "ok"
    assert eeprom.save(RUN[3])[0] == "verify"
    eeprom.reboot()
    assert eeprom.load() == Loaded("ok", RUN[2], recovered=True)


def test_a_store_that_did_not_load_refuses_to_save(eeprom: CStore) -> None:
    eeprom.start()
    assert eeprom.save(RUN[1]) == ("not-loaded", 0)
    assert eeprom.dump() == BLANK


def test_sequence_numbers_wrap_around(eeprom: CStore) -> None:
    eeprom.start(WRAPPING)
    assert eeprom.load() == fresh(RUN[1])
    eeprom.save(RUN[2])
    eeprom.save(RUN[3])
    assert eeprom.dump() == python_image((RUN[2], RUN[3]), WRAPPING)
    assert python_load(eeprom.dump()) == fresh(RUN[3])


# -- power cuts ---------------------------------------------------------------------------


def python_run(
    start: bytes, states: Sequence[DeviceState], budget: int | None
) -> tuple[int, bytes, int]:
    """paygkit's saves of `states` with the power cut after `budget` byte writes:
    (saves that returned, the memory left, byte writes made)."""
    ram = RamMemory(data=start)
    memory = PowerCutMemory(ram, budget)
    store = StateStore(memory)
    store.load()
    done = 0
    try:
        for state in states:
            store.save(state)
            done += 1
    except PowerCut:
        pass
    return done, ram.data, memory.bytes_written


def c_run(store: CStore, start: bytes, states: Sequence[DeviceState], budget: int) -> int:
    """The C store's saves, the power cut after `budget` byte writes; the saves that returned."""
    store.start(start)
    assert store.load().outcome == "ok"
    store.cut_after(budget)
    done = 0
    for state in states:
        outcome, _ = store.save(state)
        if outcome not in ("ok", "unchanged"):
            assert outcome == "nv"  # the port's failed write, as the power went
            break
        done += 1
    return done


def check_power_cuts(
    store: CStore, start: bytes, states: Sequence[DeviceState], *, same_image: bool
) -> None:
    """tests/device/test_storage.py's power-cut property, for the C store: after a cut at
    any byte write the old or the new state loads, never damage; a restarted device saves
    over whatever the cut left.  `same_image`: the memory is also paygkit's, byte for byte."""
    first = python_load(start)
    assert first.outcome == "ok"
    assert first.state is not None
    history = (kept(first.state), *states)
    _, _, total = python_run(start, states, None)
    if not same_image:  # an erase counts as a write: the run's count is the C store's own
        total = 0
        while c_run(store, start, states, total) < len(states):
            total += 1
    seen = set()
    for budget in range(total + 1):
        done = c_run(store, start, states, budget)
        image = store.dump()
        if same_image:
            expected_done, expected_image, _ = python_run(start, states, budget)
            assert (done, image) == (expected_done, expected_image), budget
        store.reboot()
        loaded = store.load()
        assert loaded.outcome == "ok", budget
        assert not loaded.recovered, budget
        if done == len(states):
            assert loaded.state == states[-1]
        else:
            assert loaded.state in (history[done], history[done + 1]), budget
        python = python_load(image)
        assert python.state is not None
        assert dataclasses.replace(python, state=kept(python.state)) == loaded
        seen.add(history.index(loaded.state))

        # The restarted device saves again over whatever the cut left behind.
        following = states[0] if loaded.state == states[-1] else states[-1]
        assert store.save(following)[0] == "ok"
        assert python_load(store.dump()) == fresh(following)
        store.reboot()
        assert store.load() == fresh(following)
    assert seen == set(range(len(history)))


def test_after_a_failed_save_the_next_save_is_what_loads(eeprom: CStore) -> None:
    """A port may report a failed write that landed all the same (a bus error after the
    write, a read-back glitch).  The firmware then gave no feedback and saves the state it
    still holds: that, and not the half-reported one, must be what loads."""
    start = python_image((RUN[1], RUN[2]))
    _, _, total = python_run(start, (RUN[3],), None)
    for lie_at in range(total):
        for retried in (RUN[2], RUN[3]):
            eeprom.start(start)
            eeprom.load()
            assert eeprom.ask(f"lie {lie_at}") == "ok"
            assert eeprom.save(RUN[3])[0] == "nv"
            assert eeprom.save(retried)[0] in ("ok", "unchanged")
            eeprom.reboot()
            assert eeprom.load() == fresh(retried), lie_at


@pytest.mark.parametrize(
    ("start", "states"),
    [
        (BLANK, RUN),
        (WRAPPING, RUN[2:]),
        (V1_START, (V1_NEXT, RUN[1])),
        (LARGEST_START, RUN[1:4]),
    ],
    ids=["from-blank-a-first", "wrapping-b-first", "over-version-1", "over-the-largest-record"],
)
def test_a_power_cut_after_any_byte_write_leaves_the_old_or_the_new_state(
    eeprom: CStore, start: bytes, states: tuple[DeviceState, ...]
) -> None:
    check_power_cuts(eeprom, start, states, same_image=True)


@pytest.mark.parametrize(
    ("start", "states"),
    [(BLANK, RUN), (WRAPPING, RUN[2:])],
    ids=["from-blank-a-first", "wrapping-b-first"],
)
def test_a_power_cut_on_flash_leaves_the_old_or_the_new_state(
    flash: CStore, start: bytes, states: tuple[DeviceState, ...]
) -> None:
    check_power_cuts(flash, start, states, same_image=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(kept_states, max_size=2),
    then=st.lists(kept_states, min_size=1, max_size=3),
    cut=st.floats(0, 1),
)
def test_a_power_cut_in_random_saves_leaves_paygkits_image_and_the_old_or_new_state(
    eeprom: CStore, first: list[DeviceState], then: list[DeviceState], cut: float
) -> None:
    start = python_image(first)
    _, _, total = python_run(start, then, None)
    budget = round(cut * total)
    done = c_run(eeprom, start, then, budget)
    expected_done, expected_image, _ = python_run(start, then, budget)
    assert (done, eeprom.dump()) == (expected_done, expected_image)
    eeprom.reboot()
    loaded = eeprom.load()
    history = (python_load(start).state, *then)
    assert loaded.outcome == "ok"
    assert not loaded.recovered
    assert loaded.state in history[done : done + 2]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=kept_states, uses=st.lists(times, max_size=KEPT_USES))
def test_a_32_bit_build_keeps_the_low_32_bits_of_each_use(
    rtc_32bit: CStore, state: DeviceState, uses: list[int]
) -> None:
    """Use times a 32-bit RTC can give (0 .. 2^32 - 1) load and save byte for byte; others,
    which only another writer stores, are kept as the device compares them: their low 32
    bits."""
    stored = dataclasses.replace(state, test_code_uses=tuple(uses))
    image = python_image((stored,))
    rtc_32bit.start(image)
    low = dataclasses.replace(stored, test_code_uses=tuple(u % 2**32 for u in uses))
    assert rtc_32bit.load() == fresh(low)
    if low == stored:
        assert rtc_32bit.save(stored) == ("unchanged", 0)
    rtc_32bit.save(RUN[3])
    assert rtc_32bit.dump() == python_image((RUN[3],), image)


def test_flash_saves_are_read_by_paygkit(flash: CStore) -> None:
    flash.start()
    flash.load()
    for state in RUN:
        assert flash.save(state)[0] == "ok"
        assert python_load(flash.dump()) == fresh(state)
        assert flash.save(state) == ("unchanged", 0)


# -- damage and foreign records --------------------------------------------------------------


def two_saves() -> bytes:
    """RUN[1] in slot A (sequence 1), RUN[3] in slot B (sequence 2)."""
    return python_image((RUN[1], RUN[3]))


@pytest.mark.parametrize("fill", [0xFF, 0x00], ids=["erased", "zeroed"])
def test_blank_memory_loads_an_unprovisioned_state(eeprom: CStore, fill: int) -> None:
    eeprom.start(bytes([fill]) * REQUIRED_MEMORY_SIZE)
    assert eeprom.load() == fresh(DeviceState())


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_damage_to_any_byte_of_the_newest_record_falls_back_to_the_older(
    eeprom: CStore, mask: int
) -> None:
    good = two_saves()
    newest = SLOT_OFFSETS[1]
    for position in range(newest, newest + len(encode_record(RUN[3], 2))):
        damaged = bytearray(good)
        damaged[position] ^= mask
        eeprom.start(bytes(damaged))
        assert eeprom.load() == Loaded("ok", RUN[1], recovered=True), position


def test_damage_elsewhere_is_harmless_or_falls_back_as_paygkit_does(eeprom: CStore) -> None:
    good = two_saves()
    end = SLOT_OFFSETS[1] + len(encode_record(RUN[3], 2))
    after_end = good[:end] + b"\x00" * (REQUIRED_MEMORY_SIZE - end)
    older_damaged = bytearray(good)
    older_damaged[SLOT_OFFSETS[0] + 20] ^= 0x5A
    both_damaged = bytearray(older_damaged)
    both_damaged[SLOT_OFFSETS[1] + 40] ^= 0x5A
    for image, expected in (
        (after_end, fresh(RUN[3])),
        (bytes(older_damaged), Loaded("ok", RUN[3], recovered=True)),
        (bytes(both_damaged), Loaded("ok", DeviceState(), recovered=True)),
    ):
        eeprom.start(image)
        assert eeprom.load() == expected == python_load(image)


def test_a_save_after_a_fallback_replaces_the_damaged_record(eeprom: CStore) -> None:
    damaged = bytearray(two_saves())
    damaged[SLOT_OFFSETS[1] + 30] ^= 0x5A
    eeprom.start(bytes(damaged))
    assert eeprom.load() == Loaded("ok", RUN[1], recovered=True)
    assert eeprom.save(RUN[2])[0] == "ok"
    image = eeprom.dump()
    assert image[:SLOT_SIZE] == bytes(damaged[:SLOT_SIZE])  # the intact record was not touched
    assert image == python_image((RUN[2],), bytes(damaged))
    assert python_load(image) == fresh(RUN[2])


def test_a_newer_layout_version_is_reported_not_reset(eeprom: CStore) -> None:
    newer = bytearray(encode_record(RUN[2], 2))
    newer[4] = LAYOUT_VERSION + 1
    image = image_of((0, encode_record(RUN[1], 1)), (1, with_crc(newer)))
    eeprom.start(image)
    assert eeprom.load() == Loaded("newer", slot=1) == python_load(image)
    assert eeprom.save(RUN[3]) == ("not-loaded", 0)
    assert eeprom.dump() == image


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (12 + 1, 0),  # time divider of a provisioned state
        (12 + 0, 0x08),  # unknown flag bit
        (12 + 2, 0x10),  # unknown tamper bit
        (5, 1),  # header reserved byte
        (12 + 7, 1),  # payload reserved byte
        (4, 0),  # layout version 0
        (28 + 7, 0x80),  # a negative wait
        (12 + 3, 33),  # serial length over 32
        (12 + 5, 65),  # 65 used counts
        (12 + 6, 17),  # 17 test code uses
        (12 + 4, 21),  # 21 test code digits
        (52 + 3, 0x3C),  # starting code over 999 999 999
        (84 + 5, 0x07),  # a control character in the serial (RUN[2]: one used count)
        (96, 0xA9),  # a test code nibble that is no digit
        (100, 0x70),  # the nibble after an odd test code is not F
    ],
)
def test_an_intact_record_with_impossible_values_is_reported(
    eeprom: CStore, offset: int, value: int
) -> None:
    bad = bytearray(encode_record(RUN[2], 2))
    bad[offset] = value
    image = image_of((0, encode_record(RUN[1], 1)), (1, with_crc(bad)))
    eeprom.start(image)
    assert eeprom.load() == Loaded("refused", slot=1) == python_load(image)
    assert eeprom.save(RUN[3]) == ("not-loaded", 0)
    assert eeprom.dump() == image


def test_a_payload_longer_than_its_fields_is_reported(eeprom: CStore) -> None:
    record = encode_record(RUN[2], 2)
    longer = bytearray(record[:-4] + b"\x00")
    struct.pack_into("<H", longer, 6, len(longer) - 12)
    image = image_of((0, encode_record(RUN[1], 1)), (1, with_crc(longer + bytes(4))))
    eeprom.start(image)
    assert eeprom.load() == Loaded("refused", slot=1) == python_load(image)


def test_an_unprovisioned_record_with_provisioning_fields_is_reported(eeprom: CStore) -> None:
    for offset, value in ((12 + 0, 0x06), (13, 1), (52, 1), (64, 1)):
        bad = bytearray(encode_record(DeviceState(), 2))
        bad[offset] = value
        image = image_of((0, encode_record(RUN[1], 1)), (1, with_crc(bad)))
        eeprom.start(image)
        assert eeprom.load() == Loaded("refused", slot=1) == python_load(image), offset


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """Saved memories with random bytes changed; the CRC of a slot may be recomputed after,
    so that intact records with impossible values come up too."""
    image = bytearray(python_image(draw(st.lists(device_states, max_size=3))))
    for _ in range(draw(st.integers(1, 4))):
        slot = draw(st.sampled_from(SLOT_OFFSETS))
        position = slot + draw(st.integers(0, 95) | st.integers(0, SLOT_SIZE - 1))
        image[position] = draw(st.integers(0, 255))
    for slot in SLOT_OFFSETS:
        version = draw(st.none() | st.integers(0, 4))
        if version is not None:
            image[slot + 4] = version
        (length,) = struct.unpack_from("<H", image, slot + 6)
        end = slot + 12 + length
        if draw(st.booleans()) and end + 4 <= slot + SLOT_SIZE:
            struct.pack_into("<I", image, end, zlib.crc32(bytes(image[slot:end])))
    return bytes(image)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=damaged_images())
def test_any_damaged_memory_loads_as_paygkit_loads_it(eeprom: CStore, image: bytes) -> None:
    expected = python_load(image)
    if expected.state is not None:
        expected = dataclasses.replace(expected, state=kept(expected.state))
    event(f"{expected.outcome}{' recovered' if expected.recovered else ''}")
    eeprom.start(image)
    assert eeprom.load() == expected
    assert eeprom.dump() == image
    if expected.outcome == "ok":  # and the next save goes where paygkit's goes
        eeprom.save(RUN[3])
        assert eeprom.dump() == python_image((RUN[3],), image)


# -- states that do not fit -----------------------------------------------------------------


def _changed(state: DeviceState, words: dict[int, str]) -> list[str]:
    """The harness words of `state` with some replaced (by their index)."""
    changed = state_words(state)
    for index, word in words.items():
        changed[index] = word
    return changed


PROVISIONED = DeviceState(provisioning=PROVISIONING)


@pytest.mark.parametrize(
    "words",
    [
        _changed(DeviceState(), {USED_N: "65", USED: ",".join(["1"] * 64)}),
        _changed(DeviceState(), {USES_N: "17", USES: ",".join(["1"] * 16)}),
        _changed(PROVISIONED, {SERIAL_LENGTH: "33"}),
        _changed(PROVISIONED, {SERIAL_LENGTH: "0", SERIAL: "-"}),
        _changed(PROVISIONED, {SERIAL: "534c1f323430303030303032"}),  # a control character
        _changed(PROVISIONED, {SERIAL: "534cff323430303030303032"}),  # not ASCII
        _changed(PROVISIONED, {TEST_CODE_LENGTH: "21"}),
        _changed(PROVISIONED, {TEST_CODE: "99a333777f"}),
        _changed(PROVISIONED, {TEST_CODE: "9993337770"}),  # the odd digit's pad is not F
        _changed(PROVISIONED, {DIVIDER: "0"}),
        _changed(PROVISIONED, {STARTING_CODE: "1000000000"}),
        _changed(PROVISIONED, {FLAGS: "13"}),  # an unknown flag bit
        _changed(PROVISIONED, {TAMPER: "8"}),
        _changed(PROVISIONED, {RESERVED: "1"}),
        _changed(PROVISIONED, {WAIT_LEFT: "-1"}),
        _changed(DeviceState(), {KEY_HEX: "01" + "00" * 15}),  # unprovisioned with a key
        _changed(DeviceState(), {FLAGS: "6"}),  # unprovisioned with restricted digits
        _changed(DeviceState(), {STARTING_CODE: "5"}),
        _changed(DeviceState(), {DIVIDER: "1"}),
    ],
)
def test_a_state_that_does_not_fit_is_refused_and_memory_is_untouched(
    eeprom: CStore, words: list[str]
) -> None:
    start = python_image((RUN[1],))
    eeprom.start(start)
    eeprom.load()
    assert eeprom.save_words(words) == ("state", 0)
    assert eeprom.ask("encode 1 " + " ".join(words)) == "state"
    assert eeprom.dump() == start
    assert eeprom.load() == fresh(RUN[1])
