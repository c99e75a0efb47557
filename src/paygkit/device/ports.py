"""The ports a device is given: its clocks, its non-volatile memory, its feedback.

The PAYG logic never reads real time, files or terminals itself; adapters for
each port are passed in, so the same logic runs in tests (fakes), in the
simulator (a file or RAM, and manual clocks that move only when told to) and
on a Python-capable device.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """The real-time clock: seconds, kept running by a backup battery while off.

    It only needs to advance by one each second; it may be tampered with,
    which is why the logic also watches an independent tick source.
    """

    def now(self) -> int: ...


class TickSource(Protocol):
    """An independent seconds counter (the MCU's own oscillator) that restarts at power-on.

    Compared with the RTC it reveals a stopped, slowed or sped-up RTC.
    """

    def ticks(self) -> int: ...


class Memory(Protocol):
    """Non-volatile memory (EEPROM/flash) of a fixed size, byte-addressed."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...


class Led(enum.Enum):
    RED = "red"
    GREEN = "green"


class FeedbackKind(enum.Enum):
    """What the device signals; the LED pattern of each follows the reference firmware."""

    INVALID = "invalid"  # red x10
    ALREADY_USED = "already_used"  # green x1
    TIME_CHANGED = "time_changed"  # green x2 (Add Time / Set Time)
    COUNTER_SYNCED = "counter_synced"  # green x3
    PAYG_DISABLED = "payg_disabled"  # green x5
    ENTRY_LOCKED = "entry_locked"  # red x1 (waiting period running)
    TEST_CODE = "test_code"  # green x2, test activation
    STATUS = "status"  # '#' pressed with no token being typed
    TAMPER = "tamper"  # red x3, clock tamper detected
    KEY_PRESS = "key_press"  # a key was accepted (display only, no LED)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One signal to the user: an LED pattern and a short display text."""

    kind: FeedbackKind
    led: Led | None
    blinks: int
    text: str


class FeedbackSink(Protocol):
    def emit(self, feedback: Feedback) -> None: ...
