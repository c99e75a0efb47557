"""A channel over a TCP connection (`paygkit device simulate --serve tcp:PORT`)."""

from __future__ import annotations

import contextlib
import select
import socket

from paygkit.device.host.errors import LinkError

READ_SIZE = 4096


class TcpChannel:
    instant = False

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def connect(cls, host: str, port: int, *, timeout: float, target: str) -> TcpChannel:
        """Connect to `host:port`; LinkError naming `target` if nobody listens there."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            raise LinkError(
                f"cannot connect to {target} ({error.strerror or error}); is the device server "
                f"running (paygkit device simulate --serve tcp:{port})?"
            ) from None
        # Command lines are short and answered one at a time: send each at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError:
            raise EOFError from None

    def read(self, timeout: float) -> bytes:
        if not select.select([self._sock], [], [], timeout)[0]:
            return b""
        try:
            data = self._sock.recv(READ_SIZE)
        except OSError:
            raise EOFError from None
        if not data:
            raise EOFError
        return data

    def discard_input(self) -> None:
        while select.select([self._sock], [], [], 0)[0]:
            try:
                if not self._sock.recv(READ_SIZE):
                    return
            except OSError:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
