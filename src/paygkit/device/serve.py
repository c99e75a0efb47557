"""Serving the device protocol over stdin/stdout, a TCP port on localhost and a pty.

The device side of a connection: what `paygkit device simulate --serve` runs.
Each server is one function running a loop until its `stop` event is set (or
its input ends); the loops wait in `selectors` with a short timeout, so they
use no CPU while idle and notice `stop` within `POLL_SECONDS`.  The protocol
itself is a `CommandInterpreter`: the servers only move bytes.

Each server runs in the thread that calls it, one command at a time: several
TCP clients of one device take turns command by command, so no locking is
needed around the device.  Run a server in a thread of its own to keep the
caller free, and set its `stop` event to end it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from paygkit.device.interpreter import CommandInterpreter, error_line
from paygkit.device.wire import ErrorCode

POLL_SECONDS = 0.1
READ_SIZE = 4096
# A client that does not read its answers is dropped once this much waits for it.
MAX_PENDING_OUTPUT = 1 << 20
# How long an answer may wait for a serial reader before it is dropped.
PTY_WRITE_TIMEOUT = 2.0
DEFAULT_MAX_CLIENTS = 8


def _fd_selector() -> selectors.BaseSelector:
    # poll() takes any fd, also a regular file or /dev/null as stdin/stdout
    # (always ready); epoll refuses those.
    if hasattr(selectors, "PollSelector"):
        return selectors.PollSelector()
    return selectors.SelectSelector()  # pragma: no cover - platforms without poll()


class ServeError(Exception):
    """A server cannot start (port in use, symlink path taken); the message says why."""


def _write_all(fd: int, data: bytes, stop: threading.Event, timeout: float | None) -> bool:
    """Write everything to a (possibly non-blocking) fd; False if it timed out or stopped."""
    view = memoryview(data)
    deadline = None if timeout is None else time.monotonic() + timeout
    with _fd_selector() as selector:
        selector.register(fd, selectors.EVENT_WRITE)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                written = 0
            view = view[written:]
            if not view:
                break
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return False
            selector.select(POLL_SECONDS)
    return True


def _serve_fd(
    interpreter: CommandInterpreter,
    read_fd: int,
    write_fd: int,
    stop: threading.Event,
    *,
    end_on_quit: bool,
    write_timeout: float | None,
) -> None:
    with _fd_selector() as selector:
        selector.register(read_fd, selectors.EVENT_READ)
        while not stop.is_set():
            if not selector.select(POLL_SECONDS):
                continue
            try:
                data = os.read(read_fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as error:
                if error.errno == errno.EIO:  # a pty whose other side is gone
                    return
                raise
            if not data:
                return  # end of input
            answer = interpreter.feed(data)
            while True:
                if answer:
                    try:
                        _write_all(write_fd, answer, stop, write_timeout)
                    except BrokenPipeError:
                        return  # nobody reads the answers any more
                if not interpreter.closed:
                    break
                if end_on_quit:
                    return
                interpreter.closed = False
                answer = interpreter.feed(b"")  # the lines sent after the QUIT


# --- stdin / stdout ------------------------------------------------------------------------


def serve_stdio(
    interpreter: CommandInterpreter,
    *,
    stop: threading.Event | None = None,
    input_fd: int = 0,
    output_fd: int = 1,
) -> None:
    """Serve one interpreter on stdin/stdout until end of input, QUIT, or `stop`."""
    _serve_fd(
        interpreter,
        input_fd,
        output_fd,
        stop or threading.Event(),
        end_on_quit=True,
        write_timeout=None,
    )


# --- TCP on localhost ----------------------------------------------------------------------


@dataclass
class _Client:
    sock: socket.socket
    interpreter: CommandInterpreter
    pending: bytearray = field(default_factory=bytearray)
    closing: bool = False


def serve_tcp(
    make_interpreter: Callable[[], CommandInterpreter],
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    stop: threading.Event,
    ready: Callable[[tuple[str, int]], None] | None = None,
    max_clients: int = DEFAULT_MAX_CLIENTS,
) -> None:
    """Serve the protocol on a TCP port, one `make_interpreter()` per client, until `stop`.

    `port=0` takes a free port; `ready` is called with the bound address once
    clients can connect.  Clients beyond `max_clients` are told so and closed.
    """
    try:
        server = socket.create_server((host, port))
    except OSError as error:
        raise ServeError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); "
            "choose another port, or 0 for any free one"
        ) from None
    clients: dict[int, _Client] = {}
    with server, selectors.DefaultSelector() as selector:
        server.setblocking(False)
        selector.register(server, selectors.EVENT_READ)
        if ready is not None:
            address = server.getsockname()
            ready((str(address[0]), int(address[1])))

        def drop(client: _Client) -> None:
            clients.pop(client.sock.fileno(), None)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(client.sock)
            client.sock.close()

        def watch(client: _Client) -> None:
            events = selectors.EVENT_READ
            if client.pending:
                events |= selectors.EVENT_WRITE
            selector.modify(client.sock, events, client)

        try:
            while not stop.is_set():
                for key, events in selector.select(POLL_SECONDS):
                    if key.fileobj is server:
                        _accept(server, selector, clients, max_clients, make_interpreter)
                        continue
                    client: _Client = key.data
                    if events & selectors.EVENT_READ and not client.closing:
                        try:
                            data = client.sock.recv(READ_SIZE)
                        except (BlockingIOError, InterruptedError):
                            data = None
                        except OSError:
                            drop(client)
                            continue
                        if data == b"":
                            drop(client)
                            continue
                        if data:
                            client.pending += client.interpreter.feed(data)
                            client.closing = client.interpreter.closed
                    if client.pending:
                        try:
                            sent = client.sock.send(client.pending)
                        except (BlockingIOError, InterruptedError):
                            sent = 0
                        except OSError:
                            drop(client)
                            continue
                        del client.pending[:sent]
                    finished = client.closing and not client.pending
                    if finished or len(client.pending) > MAX_PENDING_OUTPUT:
                        drop(client)
                    else:
                        watch(client)
        finally:
            for client in list(clients.values()):
                drop(client)


def _accept(
    server: socket.socket,
    selector: selectors.BaseSelector,
    clients: dict[int, _Client],
    max_clients: int,
    make_interpreter: Callable[[], CommandInterpreter],
) -> None:
    try:
        sock, _ = server.accept()
    except (BlockingIOError, InterruptedError):
        return
    if len(clients) >= max_clients:
        with contextlib.suppress(OSError):
            busy = error_line(ErrorCode.BUSY, "too many clients; try again later")
            sock.send(busy.encode("ascii") + b"\r\n")
        sock.close()
        return
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = _Client(sock, make_interpreter())
    clients[sock.fileno()] = client
    selector.register(sock, selectors.EVENT_READ, client)


# --- pseudo-terminal -----------------------------------------------------------------------


@dataclass
class PtyEndpoint:
    """An open pty pair: tools open `path` like a serial port; the server uses `master_fd`."""

    master_fd: int
    slave_fd: int
    path: str
    symlink: Path | None = None

    def close(self) -> None:
        if self.symlink is not None:
            with contextlib.suppress(OSError):
                if self.symlink.is_symlink() and os.readlink(self.symlink) == self.path:
                    self.symlink.unlink()
            self.symlink = None
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master_fd = self.slave_fd = -1


@contextlib.contextmanager
def open_pty(symlink: str | os.PathLike[str] | None = None) -> Iterator[PtyEndpoint]:
    """A pty pair in raw mode (no echo, bytes as sent), with an optional symlink to it.

    The server keeps the slave side open too, so that tools may open and
    close the device path as often as they like without ending the server.
    An existing symlink at `symlink` is replaced; any other file there is not.
    """
    import tty  # POSIX only; imported here so that the other servers load everywhere

    master_fd, slave_fd = os.openpty()
    endpoint = PtyEndpoint(master_fd, slave_fd, os.ttyname(slave_fd))
    try:
        tty.setraw(slave_fd)
        os.set_blocking(master_fd, False)
        if symlink is not None:
            endpoint.symlink = _make_symlink(Path(symlink), endpoint.path)
        yield endpoint
    finally:
        endpoint.close()


def _make_symlink(symlink: Path, target: str) -> Path:
    if symlink.is_symlink():
        symlink.unlink()
    elif symlink.exists():
        raise ServeError(
            f"{symlink} exists and is not a symlink; choose another path for the pty symlink"
        )
    try:
        symlink.symlink_to(target)
    except OSError as error:
        raise ServeError(f"cannot make the symlink {symlink} ({error.strerror or error})") from None
    return symlink


def serve_pty(
    interpreter: CommandInterpreter,
    *,
    stop: threading.Event,
    symlink: str | os.PathLike[str] | None = None,
    ready: Callable[[PtyEndpoint], None] | None = None,
) -> None:
    """Serve one interpreter on a new pty until `stop`; `ready` gets the endpoint (its path)."""
    with open_pty(symlink) as endpoint:
        if ready is not None:
            ready(endpoint)
        serve_pty_endpoint(interpreter, endpoint, stop=stop)


def serve_pty_endpoint(
    interpreter: CommandInterpreter, endpoint: PtyEndpoint, *, stop: threading.Event
) -> None:
    """Serve one interpreter on an already open pty until `stop`.

    A serial line has no end: QUIT is answered and the line stays open, and
    answers nobody reads within PTY_WRITE_TIMEOUT are dropped rather than
    blocking the device.
    """
    _serve_fd(
        interpreter,
        endpoint.master_fd,
        endpoint.master_fd,
        stop,
        end_on_quit=False,
        write_timeout=PTY_WRITE_TIMEOUT,
    )
