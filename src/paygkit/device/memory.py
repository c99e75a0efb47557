"""Adapters for the `Memory` port: a RAM buffer for tests and a file for the simulator.

Both behave like an erased EEPROM when new (every byte 0xFF), have a fixed
size, and refuse an access outside it: a bounds error in the storage code must
show up as an error, never as a silently grown or truncated memory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from paygkit.device.storage import StorageError

try:  # POSIX only; elsewhere a state file is simply not locked.
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_SIZE = 1024
ERASED = 0xFF


class MemoryFileError(StorageError):
    """A memory file cannot be used: wrong size, or in use by another device."""


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise ValueError(f"the memory size must be an integer number of bytes, not {size!r}")
    if size <= 0:
        raise ValueError(f"the memory size must be a positive number of bytes, got {size}")
    return size


def _check_range(size: int, offset: int, length: int, action: str) -> None:
    for name, value in (("offset", offset), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"cannot {action}: the {name} must be an integer, not {value!r}")
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError(
            f"cannot {action} {length} bytes at offset {offset}: "
            f"the memory has {size} bytes (offsets 0..{size - 1})"
        )


def _as_bytes(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"memory writes take bytes, not {type(data).__name__}")
    return bytes(data)


class RamMemory:
    """Memory in a bytearray, for tests: it counts the bytes written to measure wear.

    `RamMemory()` is a blank 1024-byte memory; `RamMemory(data=snapshot)` starts
    from a copy of earlier contents (its size is then the snapshot's).
    """

    def __init__(self, size: int | None = None, data: bytes | None = None) -> None:
        if data is None:
            self._buffer = bytearray([ERASED]) * _check_size(DEFAULT_SIZE if size is None else size)
        else:
            contents = _as_bytes(data)
            if size is not None and _check_size(size) != len(contents):
                raise ValueError(
                    f"the initial data has {len(contents)} bytes but the memory size is {size}; "
                    "leave out size to take the data's length"
                )
            _check_size(len(contents))
            self._buffer = bytearray(contents)
        self.write_count = 0

    @property
    def size(self) -> int:
        return len(self._buffer)

    @property
    def data(self) -> bytes:
        """A snapshot of the whole memory."""
        return bytes(self._buffer)

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self.size, offset, length, "read")
        return bytes(self._buffer[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        contents = _as_bytes(data)
        _check_range(self.size, offset, len(contents), "write")
        self._buffer[offset : offset + len(contents)] = contents
        self.write_count += len(contents)

    def __repr__(self) -> str:
        return f"RamMemory(size={self.size}, write_count={self.write_count})"


class FileMemory:
    """Memory backed by a file of fixed size, for the simulator and Python-capable devices.

    A missing file is created blank (0xFF, like erased flash).  Every write is
    flushed to the disk (os.fsync) before `write` returns, in the order made,
    which is what the power-cut guarantee of the state store relies on.  The
    file is locked while open, so two simulated devices never share one.
    Use it as a context manager, or call `close()`.
    """

    def __init__(self, path: str | os.PathLike[str], size: int = DEFAULT_SIZE) -> None:
        self._fd: int | None = None
        self._path = Path(path)
        self._size = _check_size(size)
        created = self._create_blank()
        fd = os.open(self._path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            self._lock(fd)
            actual = os.fstat(fd).st_size
            if actual == 0:
                # An empty file (say, from mktemp) holds no state yet: make it blank.
                self._write_all(fd, 0, bytes([ERASED]) * self._size)
                os.fsync(fd)
            elif actual != self._size:
                raise MemoryFileError(
                    f"{self._path} holds {actual} bytes but this device memory is {self._size} "
                    f"bytes: it was made for another memory size or is not a device memory file; "
                    f"open it with size={actual}, or use another path"
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if created:
            self._sync_directory()

    def _create_blank(self) -> bool:
        try:
            fd = os.open(
                self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600
            )
        except FileExistsError:
            return False
        try:
            self._write_all(fd, 0, bytes([ERASED]) * self._size)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _sync_directory(self) -> None:
        # The new file's directory entry must be durable too, or a power cut
        # right after creation could lose the whole file.
        try:
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(dir_fd)

    def _lock(self, fd: int) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MemoryFileError(
                f"{self._path} is already in use by another device; "
                "stop that device (or close its FileMemory) first, or use another path"
            ) from None

    @staticmethod
    def _write_all(fd: int, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

    def _open_fd(self, action: str) -> int:
        if self._fd is None:
            raise ValueError(f"cannot {action}: the memory file {self._path} is closed")
        return self._fd

    @property
    def path(self) -> Path:
        return self._path

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._fd is None

    def read(self, offset: int, length: int) -> bytes:
        fd = self._open_fd("read")
        _check_range(self._size, offset, length, "read")
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise MemoryFileError(
                f"{self._path} was shortened while in use: read {len(data)} of {length} bytes "
                f"at offset {offset}"
            )
        return data

    def write(self, offset: int, data: bytes) -> None:
        fd = self._open_fd("write")
        contents = _as_bytes(data)
        _check_range(self._size, offset, len(contents), "write")
        self._write_all(fd, offset, contents)
        os.fsync(fd)

    def close(self) -> None:
        """Release the file (and its lock); later reads and writes raise ValueError."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> FileMemory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # the os module may be gone at shutdown
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"FileMemory(path={str(self._path)!r}, size={self._size}, {state})"
