"""Build the firmware and boot it in QEMU's micro:bit machine, for tests and tools.

    with boot(elf) as board:
        board.stream.write_line("PING")
        print(board.stream.read_line())

QEMU's UART0 is a TCP server on 127.0.0.1 (`board.target` is its `tcp:HOST:PORT`, the form
`paygkit.device.host` opens).  It serves one client at a time: `board.disconnect()` lets
another (a paygkit device link) connect; what the guest sends in between is dropped.  TCP
rather than a pty: a pty needs raw-mode set-up on both
ends, and QEMU drops what the guest sends while no one has the pty open, so a boot banner can
be lost.  The server is started with `wait=on`, so the emulated chip does not run until our
connection is in place and no byte of its output is lost; QEMU says on stderr when it is
listening, and only then do we connect, so we never talk to some other program that took the
port first.  If QEMU cannot bind the port it chose (another process got it between our probe
and QEMU's bind) it exits and we try another.

Every wait has a bound that only turns a hang into a failure: nothing depends on how fast
the machine is.  QEMU is always killed when the `with` block ends, and on Linux also when
the Python process that started it dies.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
# The same override scripts/system-deps checks, for trying another QEMU build.
QEMU = os.environ.get("PAYGKIT_QEMU_ARM", "qemu-system-arm")
CROSS = "arm-none-eabi-"
TOOLS = (f"{CROSS}gcc", QEMU, "make")
REQUIRE_ENV = "PAYGKIT_REQUIRE_FIRMWARE"

# Failure bounds, far above what any of these takes on a loaded machine.
START_TIMEOUT = 60.0
ANSWER_TIMEOUT = 30.0
BUILD_TIMEOUT = 300.0

_LISTENING = "waiting for connection"


class QemuError(RuntimeError):
    """QEMU did not start, exited early, or the guest did not answer in time."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def require_tools() -> None:
    """Skip the calling test when a tool is missing, or fail if PAYGKIT_REQUIRE_FIRMWARE=1."""
    missing = missing_tools()
    if not missing:
        return
    message = f"firmware tools missing: {', '.join(missing)} (scripts/system-deps firmware)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}")
    pytest.skip(f"{message}; set {REQUIRE_ENV}=1 to fail")


def build(build_dir: Path, *variables: str, target: str = "all") -> Path:
    """`make -C firmware` into build_dir, with make variables such as "RAM_SIZE=8192";
    the bring-up ELF's path."""
    run = subprocess.run(
        [
            "make",
            "-C",
            str(FIRMWARE),
            "--no-print-directory",
            f"BUILD={build_dir}",
            *variables,
            target,
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if run.returncode != 0:
        raise QemuError(f"firmware build failed:\n{run.stdout}\n{run.stderr}")
    return build_dir / "microbit" / "bringup.elf"


class LineStream:
    """The guest's UART as bytes and CRLF-ended lines over the connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def write_line(self, line: str) -> None:
        self.write(line.encode("ascii") + b"\r\n")

    def read(self, timeout: float = ANSWER_TIMEOUT) -> bytes:
        """Whatever is buffered or arrives next (at least one byte), or QemuError."""
        if not self._buffer:
            self._fill(time.monotonic() + timeout)
        data, self._buffer = self._buffer, b""
        return data

    def read_line(self, timeout: float = ANSWER_TIMEOUT) -> str:
        """The next line, without its end; QemuError if none comes within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for end in (b"\r\n", b"\n"):
                if end in self._buffer:
                    line, self._buffer = self._buffer.split(end, 1)
                    return line.decode("ascii", errors="replace")
            self._fill(deadline)

    def expect(self, prefix: str, timeout: float = ANSWER_TIMEOUT) -> str:
        """Skip lines until one starts with prefix (the banner after a reset, say)."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            try:
                line = self.read_line(max(0.0, deadline - time.monotonic()))
            except QemuError as error:
                raise QemuError(f"no line starting {prefix!r}; got {seen!r}") from error
            if line.startswith(prefix):
                return line
            seen.append(line)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self._sock], [], [], remaining)[0]:
            raise QemuError(f"the guest sent nothing in time (buffered: {self._buffer!r})")
        data = self._sock.recv(4096)
        if not data:
            raise QemuError("QEMU closed the serial connection")
        self._buffer += data


class QemuBoard:
    """A running `qemu-system-arm -M microbit` and the connection to its UART."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        port: int,
        sock: socket.socket,
        stderr: list[str],
        drain: threading.Thread,
    ) -> None:
        self.process = process
        self.port = port
        self.stream = LineStream(sock)
        self._sock = sock
        self._stderr = stderr  # appended to by the drain thread
        self._drain = drain

    @property
    def target(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        """What QEMU wrote on stderr so far (for failure messages)."""
        return "".join(self._stderr)

    def disconnect(self) -> None:
        """Close our connection to the UART, so that another client can have it."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def close(self) -> None:
        self.disconnect()
        _stop(self.process, self._drain)


def _die_with_parent() -> None:
    """In the child before exec: on Linux, have the kernel kill QEMU if the Python process
    that started it dies (a killed test run), so no emulator is left behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: close() and the with block still stop it


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _command(elf: Path, port: int, extra: list[str]) -> list[str]:
    return [
        QEMU,
        "-M",
        "microbit",
        # No window, no monitor and no default devices: stdin, stdout and the host's
        # terminal stay out of it, and the only character device is the UART's socket.
        "-display",
        "none",
        "-monitor",
        "none",
        "-nodefaults",
        "-kernel",
        str(elf),
        "-serial",
        f"tcp:127.0.0.1:{port},server=on,wait=on",
        *extra,
    ]


def _stop(process: subprocess.Popen[str], drain: threading.Thread) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    # The pipe reaches its end once QEMU is gone; close it only after its reader.
    drain.join(timeout=ANSWER_TIMEOUT)
    if process.stderr is not None and not drain.is_alive():
        process.stderr.close()


def _start_once(elf: Path, extra: list[str], deadline: float) -> QemuBoard | None:
    """A started board, or None when QEMU could not bind its port (try another)."""
    port = _free_port()
    process = subprocess.Popen(
        _command(elf, port, extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )
    lines: list[str] = []
    listening = threading.Event()

    def drain() -> None:
        # Reading stderr to its end keeps a chatty QEMU from blocking on a full pipe.
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if _LISTENING in line:
                listening.set()
        listening.set()  # EOF: QEMU has exited; the caller sees it by poll()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not listening.wait(max(0.0, deadline - time.monotonic())):
            raise QemuError(f"QEMU did not start listening in time: {''.join(lines)}")
        if process.poll() is not None or not any(_LISTENING in line for line in lines):
            _stop(process, reader)
            text = "".join(lines)
            if "Address already in use" in text:
                return None
            raise QemuError(f"QEMU exited with {process.returncode}: {text}")
        sock = socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        _stop(process, reader)
        raise
    return QemuBoard(process, port, sock, lines, reader)


def start(elf: Path, extra: list[str] | None = None) -> QemuBoard:
    """Boot elf; the caller must close() the board (or use boot())."""
    deadline = time.monotonic() + START_TIMEOUT
    for _ in range(5):
        board = _start_once(Path(elf), list(extra or ()), deadline)
        if board is not None:
            return board
    raise QemuError("QEMU could not bind a free port five times in a row")


@contextlib.contextmanager
def boot(elf: Path, extra: list[str] | None = None) -> Iterator[QemuBoard]:
    """A booted board for the `with` block; QEMU is killed when it ends, however it ends."""
    board = start(elf, extra)
    try:
        yield board
    finally:
        board.close()
