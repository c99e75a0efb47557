"""What a link needs of a channel: bytes out, bytes in within a time, and closing."""

from __future__ import annotations

from typing import Protocol


class Channel(Protocol):
    """A byte pipe to one device.  Every method raises EOFError once the other side is gone."""

    # True when an answer is complete as soon as `write` returns (in-process):
    # waiting for more bytes is pointless.
    instant: bool

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """What arrived within `timeout` (b"" if nothing)."""
        ...

    def discard_input(self) -> None:
        """Drop whatever arrived and was not read yet."""
        ...

    def close(self) -> None: ...
