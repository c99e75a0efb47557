"""Power-loss-safe storage of `DeviceState` in a byte-addressed non-volatile memory.

The layout (documented for firmware authors in docs/storage-layout.md):

* two slots, A at offset 0 and B at offset 512, each able to hold one record;
* a record is a 12-byte header (magic "PGKS", layout version, reserved byte,
  payload length, 32-bit sequence number), the payload, and a CRC-32 of
  header and payload; all integers little-endian, nothing aligned;
* `save` writes the new record, with the next sequence number, into the slot
  that does NOT hold the newest valid record, so the newest one is never
  touched while it is still the state to come back to;
* the first magic byte is the commit mark: before a slot is rewritten it is
  cleared (0x00), the rest of the record is written, and the commit mark is
  written last.  A power cut after any single byte write therefore leaves the
  slot either uncommitted (the old state loads) or complete (the new state
  loads); the CRC then only has to catch real damage (bit rot, a torn flash
  page), not interrupted saves.

Wear: `save` writes nothing when the state equals the one last loaded or
saved, and rewrites only the bytes of a slot that differ from what it holds.

Versions: records are written in layout version 2.  Version 1 records (the
same bytes, but payload offset 28 held `blocked_until`, an RTC time, where
version 2 holds `wait_left`, powered-on seconds) are still read, so a device
keeps its state through a firmware update; `_upgrade_v1` says how.  Loading
writes nothing: a version 1 record is replaced by the next save.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

from paygkit.device.ports import Memory
from paygkit.device.serial_number import SERIAL_MAX_LENGTH
from paygkit.device.state import (
    MAX_TEST_CODE_USES,
    MAX_USED_COUNTS,
    DeviceState,
    Provisioning,
    TamperFlag,
)
from paygkit.token import MAX_STARTING_CODE

__all__ = [
    "COMMIT_MARK",
    "HEADER_SIZE",
    "LAYOUT_VERSION",
    "MAGIC",
    "MAX_PAYLOAD_SIZE",
    "MAX_RECORD_SIZE",
    "REQUIRED_MEMORY_SIZE",
    "SLOT_OFFSETS",
    "SLOT_SIZE",
    "TEST_CODE_MAX_DIGITS",
    "StateStore",
    "StorageError",
    "decode_record",
    "encode_record",
    "read_back_error",
]


class StorageError(Exception):
    """The memory cannot hold or give back a device state; the message says why and what to do."""


MAGIC = b"PGKS"
COMMIT_MARK = MAGIC[0]
UNCOMMITTED = 0x00  # what the commit mark is cleared to before a slot is rewritten
ERASED = 0xFF  # a blank memory, or an erased flash page
LAYOUT_VERSION = 2
# The oldest layout this model still reads (and upgrades on the next save).
OLDEST_READ_VERSION = 1

# magic, layout version, reserved (0), payload length, sequence number
_HEADER = struct.Struct("<4sBBHI")
# flags, time divider, tamper, serial length, test code digits, used counts,
# test code uses, reserved (0); active_until, wait_left (v1: blocked_until),
# latest_rtc_seen, test_active_until; starting code, last count, invalid
# attempts; key
_FIXED = struct.Struct("<8B4q3I16s")
_CRC = struct.Struct("<I")

HEADER_SIZE = _HEADER.size  # 12
FIXED_PAYLOAD_SIZE = _FIXED.size  # 68
TEST_CODE_MAX_DIGITS = 20  # as long as the longest token
MAX_PAYLOAD_SIZE = (
    FIXED_PAYLOAD_SIZE
    + 4 * MAX_USED_COUNTS
    + 8 * MAX_TEST_CODE_USES
    + SERIAL_MAX_LENGTH
    + (TEST_CODE_MAX_DIGITS + 1) // 2
)
MAX_RECORD_SIZE = HEADER_SIZE + MAX_PAYLOAD_SIZE + _CRC.size
SLOT_SIZE = 512
SLOT_OFFSETS = (0, SLOT_SIZE)
SLOT_NAMES = ("A", "B")
REQUIRED_MEMORY_SIZE = 2 * SLOT_SIZE
assert MAX_RECORD_SIZE <= SLOT_SIZE, "a maximal record must fit one slot"

FLAG_PROVISIONED = 0x01
FLAG_RESTRICTED_DIGITS = 0x02
FLAG_PAYG_ENABLED = 0x04
_KNOWN_FLAGS = FLAG_PROVISIONED | FLAG_RESTRICTED_DIGITS | FLAG_PAYG_ENABLED
_KNOWN_TAMPER = int(TamperFlag.RTC_SLOW | TamperFlag.RTC_FAST | TamperFlag.RTC_BACKWARDS)

_U32_MAX = 2**32 - 1
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_SEQUENCE_MODULUS = 2**32
# The layout's byte range for a serial, wider than the serial grammar the firmware
# provisions with: devices provisioned under the older rule must keep loading and
# saving (docs/storage-layout.md, "The serial").
_SERIAL_FIRST = 0x20
_SERIAL_LAST = 0x7E


class _LayoutError(Exception):
    """A value the layout cannot hold; the caller adds where it was found."""


# -- checking a state against the layout --------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int, high: int, what: str) -> None:
    if not _is_int(value):
        raise _LayoutError(f"{name} must be an integer, not {type(value).__name__}")
    assert isinstance(value, int)
    if not low <= value <= high:
        raise _LayoutError(f"{name} {value} is outside {low}..{high} ({what})")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _LayoutError(f"{name} must be True or False, not {value!r}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _check_provisioning(prov: object) -> None:
    if not isinstance(prov, Provisioning):
        raise _LayoutError(
            f"provisioning must be a Provisioning or None, not {type(prov).__name__}"
        )
    if not isinstance(prov.serial, str):
        raise _LayoutError(f"the serial must be text, not {type(prov.serial).__name__}")
    if not 1 <= len(prov.serial) <= SERIAL_MAX_LENGTH:
        raise _LayoutError(
            f"the serial {_shown(prov.serial)} is {len(prov.serial)} characters long; the "
            f"layout holds 1 to {SERIAL_MAX_LENGTH}: use a shorter serial"
        )
    if any(not _SERIAL_FIRST <= ord(c) <= _SERIAL_LAST for c in prov.serial):
        raise _LayoutError(
            f"the serial {_shown(prov.serial)} has characters other than printable ASCII; "
            "use letters, digits and punctuation only"
        )
    # The key's value is never shown, only what is wrong with its shape.
    if not isinstance(prov.key, bytes) or len(prov.key) != 16:
        shape = f"{len(prov.key)} bytes" if isinstance(prov.key, bytes) else "not bytes"
        raise _LayoutError(f"the key must be exactly 16 bytes, but it is {shape}")
    _check_int(
        "the starting code", prov.starting_code, 0, MAX_STARTING_CODE, "a 9-digit starting code"
    )
    _check_int("the time divider", prov.time_divider, 1, 255, "value units per day")
    _check_bool("restricted_digits", prov.restricted_digits)
    code = prov.test_code
    if code is not None and (
        not isinstance(code, str)
        or not 1 <= len(code) <= TEST_CODE_MAX_DIGITS
        or not all("0" <= c <= "9" for c in code)
    ):
        raise _LayoutError(
            f"the test code {code!r} must be 1 to {TEST_CODE_MAX_DIGITS} digits 0-9, "
            "or None for a device without a test code"
        )


def _check_state(state: object) -> None:
    """Raise _LayoutError unless `state` fits the layout exactly (so it reads back equal)."""
    if not isinstance(state, DeviceState):
        raise _LayoutError(f"the state must be a DeviceState, not {type(state).__name__}")
    if state.provisioning is not None:
        _check_provisioning(state.provisioning)
    _check_int("last_count", state.last_count, 0, _U32_MAX, "an unsigned 32-bit count")
    if not isinstance(state.used_counts, tuple):
        raise _LayoutError("used_counts must be a tuple of counts")
    if len(state.used_counts) > MAX_USED_COUNTS:
        raise _LayoutError(
            f"it has {len(state.used_counts)} used counts but the layout holds at most "
            f"{MAX_USED_COUNTS} (state.MAX_USED_COUNTS): keep only the unordered-entry window"
        )
    for count in state.used_counts:
        _check_int("a used count", count, 0, _U32_MAX, "an unsigned 32-bit count")
    _check_bool("payg_enabled", state.payg_enabled)
    _check_int("active_until", state.active_until, _I64_MIN, _I64_MAX, "signed 64-bit seconds")
    _check_int("invalid_attempts", state.invalid_attempts, 0, _U32_MAX, "an unsigned 32-bit number")
    _check_int(
        "wait_left", state.wait_left, 0, _I64_MAX, "non-negative 64-bit seconds of powered-on time"
    )
    if not isinstance(state.tamper, TamperFlag) or int(state.tamper) & ~_KNOWN_TAMPER:
        raise _LayoutError(f"the tamper flags {state.tamper!r} are not a combination of TamperFlag")
    _check_int(
        "latest_rtc_seen", state.latest_rtc_seen, _I64_MIN, _I64_MAX, "signed 64-bit seconds"
    )
    if not isinstance(state.test_code_uses, tuple):
        raise _LayoutError("test_code_uses must be a tuple of times")
    if len(state.test_code_uses) > MAX_TEST_CODE_USES:
        raise _LayoutError(
            f"it has {len(state.test_code_uses)} test code use times but the layout holds at "
            f"most {MAX_TEST_CODE_USES} (state.MAX_TEST_CODE_USES): keep only the recent ones"
        )
    for when in state.test_code_uses:
        _check_int("a test code use time", when, _I64_MIN, _I64_MAX, "signed 64-bit seconds")
    _check_int(
        "test_active_until", state.test_active_until, _I64_MIN, _I64_MAX, "signed 64-bit seconds"
    )


# -- records -------------------------------------------------------------------


def _pack_digits(digits: str) -> bytes:
    """Two digits a byte, the first in the high nibble; an odd count is padded with 0xF."""
    nibbles = [int(d) for d in digits]
    if len(nibbles) % 2:
        nibbles.append(0xF)
    return bytes(high << 4 | low for high, low in zip(nibbles[::2], nibbles[1::2], strict=True))


def _unpack_digits(packed: bytes, count: int) -> str:
    nibbles = [n for byte in packed for n in (byte >> 4, byte & 0xF)]
    if any(n > 9 for n in nibbles[:count]) or any(n != 0xF for n in nibbles[count:]):
        raise _LayoutError(f"the test code bytes {packed.hex()} are not {count} packed digits")
    return "".join(str(n) for n in nibbles[:count])


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _check_storable(state: DeviceState) -> None:
    try:
        _check_state(state)
    except _LayoutError as problem:
        raise StorageError(f"cannot store the device state: {problem}") from None


def encode_record(state: DeviceState, sequence: int) -> bytes:
    """The record (header, payload, CRC) that stores `state` with this sequence number.

    Raises StorageError when the state does not fit the layout.
    """
    _check_storable(state)
    if not _is_int(sequence) or not 0 <= sequence <= _U32_MAX:
        raise StorageError(f"the sequence number {sequence!r} is not an unsigned 32-bit number")
    prov = state.provisioning
    flags = FLAG_PAYG_ENABLED if state.payg_enabled else 0
    serial = b""
    test_code = ""
    if prov is not None:
        flags |= FLAG_PROVISIONED | (FLAG_RESTRICTED_DIGITS if prov.restricted_digits else 0)
        serial = prov.serial.encode("ascii")
        test_code = prov.test_code or ""
    payload = b"".join(
        (
            _FIXED.pack(
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
                prov.key if prov else bytes(16),
            ),
            struct.pack(f"<{len(state.used_counts)}I", *state.used_counts),
            struct.pack(f"<{len(state.test_code_uses)}q", *state.test_code_uses),
            serial,
            _pack_digits(test_code),
        )
    )
    header = _HEADER.pack(MAGIC, LAYOUT_VERSION, 0, len(payload), sequence)
    return header + payload + _CRC.pack(_crc(header + payload))


def _upgrade_v1(state: DeviceState, blocked_until: int) -> DeviceState:
    """The version 2 state of a version 1 record (whose wait field is `blocked_until`).

    * wait_left: what was left of the wait by the latest RTC time the device
      stored, max(0, blocked_until - latest_rtc_seen).  The firmware caps it
      at the wait for invalid_attempts when it powers on.
    * last_count: version 1 firmware built on the reference rule may have
      moved its count back with a Counter Sync; the counts it accepted above
      it are still in used_counts.  last_count is the highest count ever
      accepted and never goes down (SPEC 3.1), so it is raised to them.
    """
    wait_left = min(_I64_MAX, max(0, blocked_until - state.latest_rtc_seen))
    last_count = max(state.last_count, max(state.used_counts, default=0))
    return replace(state, wait_left=wait_left, last_count=last_count)


def _decode_payload(payload: bytes, version: int = LAYOUT_VERSION) -> DeviceState:
    if len(payload) < FIXED_PAYLOAD_SIZE:
        raise _LayoutError(f"the payload is {len(payload)} bytes, shorter than its fixed part")
    (
        flags,
        time_divider,
        tamper,
        serial_length,
        test_code_length,
        used_count,
        use_count,
        reserved,
        active_until,
        wait_field,
        latest_rtc_seen,
        test_active_until,
        starting_code,
        last_count,
        invalid_attempts,
        key,
    ) = _FIXED.unpack_from(payload)
    if flags & ~_KNOWN_FLAGS or reserved:
        raise _LayoutError(
            f"unknown flag bits are set (flags {flags:#04x}, reserved {reserved:#04x})"
        )
    if tamper & ~_KNOWN_TAMPER:
        raise _LayoutError(f"unknown tamper bits are set ({tamper:#04x})")
    if used_count > MAX_USED_COUNTS or use_count > MAX_TEST_CODE_USES:
        raise _LayoutError(f"it lists {used_count} used counts and {use_count} test code uses")
    if serial_length > SERIAL_MAX_LENGTH or test_code_length > TEST_CODE_MAX_DIGITS:
        raise _LayoutError(
            f"the serial length {serial_length} or test code length {test_code_length} is too long"
        )
    packed_code_length = (test_code_length + 1) // 2
    expected = (
        FIXED_PAYLOAD_SIZE + 4 * used_count + 8 * use_count + serial_length + packed_code_length
    )
    if len(payload) != expected:
        raise _LayoutError(
            f"the payload is {len(payload)} bytes but its fields add up to {expected}"
        )
    position = FIXED_PAYLOAD_SIZE
    used_counts = struct.unpack_from(f"<{used_count}I", payload, position)
    position += 4 * used_count
    test_code_uses = struct.unpack_from(f"<{use_count}q", payload, position)
    position += 8 * use_count
    serial_bytes = payload[position : position + serial_length]
    position += serial_length
    code_bytes = payload[position : position + packed_code_length]

    provisioning = None
    if flags & FLAG_PROVISIONED:
        serial = serial_bytes.decode("latin-1")
        provisioning = Provisioning(
            serial=serial,
            key=key,
            starting_code=starting_code,
            time_divider=time_divider,
            restricted_digits=bool(flags & FLAG_RESTRICTED_DIGITS),
            test_code=_unpack_digits(code_bytes, test_code_length) if test_code_length else None,
        )
    elif (
        flags & FLAG_RESTRICTED_DIGITS
        or time_divider
        or serial_length
        or test_code_length
        or starting_code
        or key != bytes(16)
    ):
        raise _LayoutError("an unprovisioned state carries provisioning fields")
    state = DeviceState(
        provisioning=provisioning,
        last_count=last_count,
        used_counts=used_counts,
        payg_enabled=bool(flags & FLAG_PAYG_ENABLED),
        active_until=active_until,
        invalid_attempts=invalid_attempts,
        wait_left=wait_field,
        tamper=TamperFlag(tamper),
        latest_rtc_seen=latest_rtc_seen,
        test_code_uses=test_code_uses,
        test_active_until=test_active_until,
    )
    if version == 1:
        state = _upgrade_v1(state, blocked_until=wait_field)
    _check_state(state)  # what save refuses, load refuses too
    return state


class _Kind(enum.Enum):
    EMPTY = "empty"  # blank, or a save that was cut before its commit mark
    DAMAGED = "damaged"  # committed, but the bytes no longer check out
    VALID = "valid"
    REFUSED = "refused"  # intact (CRC good) but with values this layout cannot hold
    NEWER = "newer"  # intact, written with a newer layout version


@dataclass(frozen=True)
class _Slot:
    index: int
    kind: _Kind
    sequence: int = 0
    state: DeviceState | None = None
    version: int = 0
    problem: str = ""

    @property
    def name(self) -> str:
        return SLOT_NAMES[self.index]


def _read_slot(index: int, raw: bytes) -> _Slot:
    if raw[0] in (UNCOMMITTED, ERASED):
        return _Slot(index, _Kind.EMPTY)
    magic, version, reserved, length, sequence = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        return _Slot(index, _Kind.DAMAGED, problem=f"bad magic {magic.hex()}")
    end = HEADER_SIZE + length
    if end + _CRC.size > SLOT_SIZE:
        return _Slot(index, _Kind.DAMAGED, problem=f"payload length {length} overruns the slot")
    (stored_crc,) = _CRC.unpack_from(raw, end)
    if _crc(raw[:end]) != stored_crc:
        return _Slot(index, _Kind.DAMAGED, sequence, problem="CRC mismatch")
    if version > LAYOUT_VERSION:
        return _Slot(index, _Kind.NEWER, sequence, version=version)
    try:
        if not OLDEST_READ_VERSION <= version <= LAYOUT_VERSION or reserved:
            raise _LayoutError(f"layout version {version} / reserved byte {reserved} is not known")
        state = _decode_payload(raw[HEADER_SIZE:end], version)
    except _LayoutError as problem:
        return _Slot(index, _Kind.REFUSED, sequence, version=version, problem=str(problem))
    return _Slot(index, _Kind.VALID, sequence, state, version)


def decode_record(raw: bytes) -> tuple[int, DeviceState]:
    """The sequence number and state of one slot's bytes; StorageError if it holds none."""
    slot = _read_slot(0, bytes(raw[:SLOT_SIZE]).ljust(SLOT_SIZE, bytes([ERASED])))
    if slot.state is None:
        raise StorageError(f"the bytes hold no valid record ({slot.kind.value} {slot.problem})")
    return slot.sequence, slot.state


def read_back_error(slot: int) -> StorageError:
    """The error of a save whose slot (0 = A, 1 = B) did not read back as written."""
    return StorageError(
        f"slot {SLOT_NAMES[slot]} did not read back as written: the memory may be "
        "worn out or faulty; the previous state is still stored in the other slot"
    )


def _is_newer(a: int, b: int) -> bool:
    """Serial-number order (RFC 1982): sequence numbers may wrap around 2^32."""
    return a != b and (a - b) % _SEQUENCE_MODULUS < _SEQUENCE_MODULUS // 2


def _changed_runs(old: bytes, new: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) runs where `new` differs from `old`: only those are rewritten."""
    start = None
    for i, (was, wanted) in enumerate(zip(old, new, strict=True)):
        if was != wanted and start is None:
            start = i
        elif was == wanted and start is not None:
            yield start, new[start:i]
            start = None
    if start is not None:
        yield start, new[start:]


# -- the store ------------------------------------------------------------------


class StateStore:
    """Loads and saves a `DeviceState` in a `Memory`, surviving a power cut at any byte."""

    def __init__(self, memory: Memory) -> None:
        size = memory.size
        if size < REQUIRED_MEMORY_SIZE:
            raise StorageError(
                f"the memory has {size} bytes but the state layout needs {REQUIRED_MEMORY_SIZE} "
                f"(two {SLOT_SIZE}-byte slots, each holding a record of up to {MAX_RECORD_SIZE} "
                f"bytes); give the device at least {REQUIRED_MEMORY_SIZE} bytes"
            )
        self._memory = memory
        self._known = False  # whether _last/_newest/_sequence describe the memory
        self._last: DeviceState = DeviceState()
        self._newest: int | None = None
        self._sequence = 0
        self._recovered = False
        self.bytes_written = 0

    @property
    def memory(self) -> Memory:
        return self._memory

    @property
    def recovered_from_corruption(self) -> bool:
        """The last load() found a damaged record and loaded the other slot (or a blank state).

        The state loaded is then the newest intact one, which may be one save
        older than the last save made.  A save cut short by a power cut is not
        damage: it leaves its slot uncommitted, and this stays False.
        """
        return self._recovered

    def load(self) -> DeviceState:
        """The newest valid state; DeviceState() (unprovisioned) if the memory holds none."""
        slots = [
            _read_slot(i, self._memory.read(offset, SLOT_SIZE))
            for i, offset in enumerate(SLOT_OFFSETS)
        ]
        for slot in slots:
            if slot.kind is _Kind.NEWER:
                raise StorageError(
                    f"slot {slot.name} of the device memory holds a state of storage layout "
                    f"version {slot.version}, newer than version {LAYOUT_VERSION} that this "
                    "firmware model reads: it was written by newer firmware. Update paygkit to a "
                    "version that knows it; the memory was left as it is"
                )
        intact = [s for s in slots if s.kind in (_Kind.VALID, _Kind.REFUSED)]
        newest = None
        for slot in intact:
            if newest is None or _is_newer(slot.sequence, newest.sequence):
                newest = slot
        if newest is not None and newest.state is None:
            raise StorageError(
                f"slot {newest.name} of the device memory (sequence {newest.sequence}) has an "
                f"intact CRC but values this layout cannot hold: {newest.problem}. It was "
                "written by other software or a faulty firmware; nothing was changed. Erase "
                "the memory and provision the device again"
            )
        self._recovered = any(s.kind is _Kind.DAMAGED for s in slots)
        if newest is None:
            self._remember(DeviceState(), None, 0)
        else:
            assert newest.state is not None
            self._remember(newest.state, newest.index, newest.sequence)
        return self._last

    def save(self, state: DeviceState) -> bool:
        """Store `state` unless it equals the state last loaded or saved; True if written.

        A state that does not fit the layout raises StorageError before any
        byte is written.  When save() returns, the new state is the one a
        later load() gives, even after a power cut.
        """
        _check_storable(state)  # before anything is read or written
        if not self._known:
            self.load()
        if state == self._last:
            return False
        sequence = (self._sequence + 1) % _SEQUENCE_MODULUS if self._newest is not None else 1
        target = 1 - self._newest if self._newest is not None else 0
        record = encode_record(state, sequence)
        offset = SLOT_OFFSETS[target]
        self._known = False  # until the record is committed the cached view may be stale
        written = self._write_record(offset, record)
        if self._memory.read(offset, len(record)) != record:
            raise read_back_error(target)
        self.bytes_written += written
        self._remember(state, target, sequence)
        return True

    def _write_record(self, offset: int, record: bytes) -> int:
        memory = self._memory
        current = memory.read(offset, len(record))
        written = 0
        if current[0] == COMMIT_MARK:
            # Uncommit first: from here until the last write the slot loads as
            # empty, whatever mix of old and new bytes it holds.
            memory.write(offset, bytes([UNCOMMITTED]))
            written += 1
        for start, run in _changed_runs(current[1:], record[1:]):
            memory.write(offset + 1 + start, run)
            written += len(run)
        memory.write(offset, record[:1])  # the commit mark, always last
        return written + 1

    def _remember(self, state: DeviceState, newest: int | None, sequence: int) -> None:
        self._last = state
        self._newest = newest
        self._sequence = sequence
        self._known = True

    def __repr__(self) -> str:
        newest = "none" if self._newest is None else SLOT_NAMES[self._newest]
        return (
            f"StateStore(memory={self._memory!r}, newest_slot={newest}, "
            f"sequence={self._sequence}, bytes_written={self.bytes_written})"
        )
