"""A memory that loses power after a set number of byte writes, for power-cut tests.

EEPROM writes land one byte at a time, so a power cut can stop a multi-byte
write after any byte.  `PowerCutMemory` splits every write into single bytes
and lets exactly `budget` of them through; the next byte write raises
`PowerCut`, and from then on the memory is off (every access raises).  The
bytes that did land stay in the wrapped memory, which a test then hands to a
fresh device or store, as a restart would.
"""

from __future__ import annotations

from paygkit.device.clocks import RecordingFeedback
from paygkit.device.ports import Feedback, FeedbackKind, Memory


class PowerCut(Exception):  # noqa: N818 - the name the device tests share
    """The simulated power failed during a write."""


class PowerCutMemory:
    """Wraps a Memory; `budget=None` never cuts (use it to count a run's byte writes)."""

    def __init__(self, inner: Memory, budget: int | None = None) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"the budget is a number of byte writes, got {budget}")
        self.inner = inner
        self.budget = budget
        self.bytes_written = 0
        self.cut = False

    @property
    def size(self) -> int:
        return self.inner.size

    def _check_power(self) -> None:
        if self.cut:
            raise PowerCut("the power is off")

    def read(self, offset: int, length: int) -> bytes:
        self._check_power()
        return self.inner.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._check_power()
        for index, byte in enumerate(bytes(data)):
            if self.budget is not None and self.bytes_written >= self.budget:
                self.cut = True
                raise PowerCut(
                    f"power cut after {self.bytes_written} byte writes "
                    f"({index} of the {len(data)} bytes written at offset {offset})"
                )
            self.inner.write(offset + index, bytes([byte]))
            self.bytes_written += 1


class CutAtFeedback(RecordingFeedback):
    """Feedback that loses power instead of giving its `after`-th token signal (key echoes
    aside): the cut falls between the save and the LED."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def emit(self, feedback: Feedback) -> None:
        if feedback.kind is not FeedbackKind.KEY_PRESS:
            if self.after == 0:
                raise PowerCut("power cut before the feedback")
            self.after -= 1
        super().emit(feedback)
