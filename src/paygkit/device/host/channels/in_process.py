"""A channel to a command interpreter in this process (a simulator, a test's device)."""

from __future__ import annotations

from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.simulator import SimulatedDevice


class InProcessChannel:
    """Bytes written are fed to `interpreter` at once; its answers wait to be read.

    `owned` is a simulator this channel opened and closes with it (None when
    the caller keeps the device).
    """

    instant = True

    def __init__(
        self, interpreter: CommandInterpreter, owned: SimulatedDevice | None = None
    ) -> None:
        self._interpreter = interpreter
        self._owned = owned
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        if self._interpreter.closed:
            raise EOFError
        self._pending += self._interpreter.feed(data)

    def read(self, timeout: float) -> bytes:
        data, self._pending = bytes(self._pending), bytearray()
        if not data and self._interpreter.closed:
            raise EOFError
        return data

    def discard_input(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
