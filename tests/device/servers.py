"""Real device links for tests: the simulator served on a pty or a TCP port in a thread,
and a scripted fake device on a pty (for answers the simulator never gives).

Each is a context manager that stops its thread on exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.serve import PtyEndpoint, open_pty, serve_pty, serve_tcp
from paygkit.device.simulator import SimulatedDevice

WAIT = 20.0  # seconds before a server that does not start counts as a failure


@contextlib.contextmanager
def pty_simulator(
    sim: SimulatedDevice | None = None, symlink: Path | None = None
) -> Iterator[tuple[str, SimulatedDevice]]:
    """The simulator served on a new pty; yields (device path, simulator)."""
    device = sim if sim is not None else SimulatedDevice(RamMemory())
    stop = threading.Event()
    opened: list[PtyEndpoint] = []
    ready = threading.Event()

    def on_ready(endpoint: PtyEndpoint) -> None:
        opened.append(endpoint)
        ready.set()

    thread = threading.Thread(
        target=serve_pty,
        kwargs={
            "interpreter": CommandInterpreter(device, newline="\r\n"),
            "stop": stop,
            "symlink": symlink,
            "ready": on_ready,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(WAIT), "the pty server did not start"
    try:
        yield opened[0].path, device
    finally:
        stop.set()
        thread.join(WAIT)


@contextlib.contextmanager
def tcp_simulator(sim: SimulatedDevice | None = None) -> Iterator[tuple[str, SimulatedDevice]]:
    """The simulator served on an ephemeral TCP port; yields ("tcp:127.0.0.1:PORT", simulator)."""
    device = sim if sim is not None else SimulatedDevice(RamMemory())
    stop = threading.Event()
    ready = threading.Event()
    address: list[tuple[str, int]] = []

    def on_ready(bound: tuple[str, int]) -> None:
        address.append(bound)
        ready.set()

    thread = threading.Thread(
        target=serve_tcp,
        kwargs={
            "make_interpreter": lambda: CommandInterpreter(device, newline="\r\n"),
            "stop": stop,
            "ready": on_ready,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(WAIT), "the TCP server did not start"
    host, port = address[0]
    try:
        yield f"tcp:{host}:{port}", device
    finally:
        stop.set()
        thread.join(WAIT)


@contextlib.contextmanager
def scripted_pty(answer: Callable[[str], bytes | None]) -> Iterator[tuple[str, list[str]]]:
    """A fake device on a pty: `answer(line)` gives the bytes to send back (None: stay silent).

    Yields (device path, the lines received so far).
    """
    received: list[str] = []
    stop = threading.Event()
    with open_pty() as endpoint:

        def serve() -> None:
            buffer = b""
            while not stop.is_set():
                if not select.select([endpoint.master_fd], [], [], 0.05)[0]:
                    continue
                try:
                    data = os.read(endpoint.master_fd, 4096)
                except OSError:
                    return
                buffer += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.decode("ascii", "replace").strip()
                    if not line:
                        continue
                    received.append(line)
                    reply = answer(line)
                    if reply:
                        with contextlib.suppress(OSError):
                            os.write(endpoint.master_fd, reply)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield endpoint.path, received
        finally:
            stop.set()
            thread.join(WAIT)
