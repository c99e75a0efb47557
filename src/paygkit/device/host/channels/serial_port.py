"""A channel over a serial port (a USB UART, a pty, a pyserial URL), 115200 8N1, raw."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from paygkit.device.host.errors import LinkError

BAUD_RATE = 115200
# How long one read of the port blocks at most: the link polls in steps this short.
READ_TIMEOUT = 0.05


class SerialPortChannel:
    instant = False

    def __init__(self, port: Any) -> None:
        self._port = port

    @classmethod
    def open(cls, path: str, *, target: str) -> SerialPortChannel:
        """Open the port `path`; LinkError naming `target` if it cannot be opened."""
        try:
            import serial  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - pyserial is a dependency
            raise LinkError("serial ports need pyserial: pip install pyserial") from None
        try:
            port = serial.serial_for_url(
                path, baudrate=BAUD_RATE, bytesize=8, parity="N", stopbits=1, timeout=READ_TIMEOUT
            )
        except (serial.SerialException, OSError, ValueError) as error:
            raise LinkError(
                f"cannot open the serial port {target} ({error}); check the path, the cable and "
                "that no other program has the port open"
            ) from None
        # Answers left from an earlier program must not be read as ours.
        with contextlib.suppress(Exception):
            port.reset_input_buffer()
        return cls(port)

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except Exception as error:  # pyserial raises SerialException / OSError subclasses
            raise EOFError from error

    def read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            try:
                waiting = self._port.in_waiting
                data: bytes = self._port.read(max(1, waiting))
            except Exception as error:
                raise EOFError from error
            if data or time.monotonic() >= deadline:
                return data

    def discard_input(self) -> None:
        with contextlib.suppress(Exception):
            self._port.reset_input_buffer()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._port.close()
