"""The host side of the device protocol (docs/device-protocol.md): open a link, send, read.

`open_link(target)` connects to a device and returns a `DeviceLink`, which
sends one command line at a time and reads its answer up to the final `OK` /
`ERR` line.  Factory flashing and certification drive devices only through
it.  Targets:

| target | link |
|---|---|
| `sim:` | a `SimulatedDevice` on RAM memory in this process |
| `sim:PATH` | a `SimulatedDevice` on the state file PATH in this process |
| `tcp:HOST:PORT` | a TCP connection (`paygkit device simulate --serve tcp:PORT`) |
| `pty:PATH`, `serial:PATH`, or any path or pyserial URL | a serial port, 115200 8N1, raw |

Parsing rule for answer lines (`AnswerLine`): a line `XX:value` whose tag is
letters followed by a colon (the reference read-back `SN:`, `SC:`, `SK:`) is
`tag="XX"`, `words=(value,)`, no fields.  Any other line is split into words
like a shell would (so `text="a \\"b\\""` is one field); the first word is the
tag, `name=value` words are fields, the others are words in order.  A final
line `ERR CODE message` is `tag="ERR"`, `words=(CODE, *message words)`.

Keys never leave this module in a message, a repr or the transcript: the
`SK:` line and the `key=` argument are shown as `<hidden>`.
"""

from __future__ import annotations

import contextlib
import re
import select
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from paygkit.device.protocol import ProtocolSession, redact
from paygkit.device.simulator import SimulatedDevice

DEFAULT_TIMEOUT = 5.0
BAUD_RATE = 115200
# A line longer than this is not the protocol (answer lines are at most 1024 characters).
MAX_ANSWER_BYTES = 4096
# After a timeout or a garbled answer, input is discarded until the link has been
# quiet this long, so that a late answer is not taken for the next one.
RESYNC_QUIET_SECONDS = 0.2
RESYNC_MAX_SECONDS = 2.0
_POLL_SECONDS = 0.05

_READ_BACK = re.compile(r"([A-Za-z]+):(.*)")
_SERIAL_VALUE = re.compile(r"[!-~]{1,64}")
_HIDDEN = "<hidden>"


class LinkError(Exception):
    """The link failed: could not open, timed out, closed, or a garbled answer.

    The message names the target and what to check.
    """


class LinkTimeoutError(LinkError):
    """The device did not answer (completely) within the timeout."""


class DeviceError(Exception):
    """The device answered `ERR <code> <text>`."""

    def __init__(self, code: str, text: str, *, target: str = "", command: str = "") -> None:
        where = f"{target}: " if target else ""
        what = f"{command} refused: " if command else ""
        super().__init__(f"{where}{what}{code} {text}".strip())
        self.code = code
        self.text = text


# --- answer lines ------------------------------------------------------------------------------


def _hide(raw: str) -> str:
    """A line as it may be shown: the SK: read-back and key= arguments blanked."""
    if raw[:3].upper() == "SK:":
        return "SK:" + _HIDDEN
    raw = re.sub(r"(?i)\bkey=\S*", "key=" + _HIDDEN, raw)
    if raw.startswith("#") and raw.count(";") >= 2:
        head, _, _ = raw.rpartition(";")
        raw = f"{head};{_HIDDEN}"
    return redact(raw)


@dataclass(frozen=True, repr=False)
class AnswerLine:
    """One line of an answer: its tag, its words without '=', its name=value fields."""

    tag: str
    words: tuple[str, ...]
    fields: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @classmethod
    def parse(cls, raw: str) -> AnswerLine:
        read_back = _READ_BACK.fullmatch(raw)
        if read_back is not None:
            return cls(read_back.group(1).upper(), (read_back.group(2).strip(),), {}, raw)
        try:
            parts = shlex.split(raw)
        except ValueError:  # an unbalanced quote: keep the words as they are
            parts = raw.split()
        if not parts:
            return cls("", (), {}, raw)
        words: list[str] = []
        fields: dict[str, str] = {}
        for part in parts[1:]:
            name, separator, value = part.partition("=")
            if separator and name:
                fields[name.lower()] = value
            else:
                words.append(part)
        return cls(parts[0].upper(), tuple(words), fields, raw)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(name, default)

    def int(self, name: str) -> int:
        """The field `name` as a whole number; LinkError if it is missing or not a number."""
        value = self.fields.get(name)
        if value is None or not value.isdigit():
            shown = "missing" if value is None else f"{value!r}, not a whole number"
            raise LinkError(
                f"the device's {self.tag} line has {name} {shown}: {_hide(self.raw)!r}; "
                "is it a paygkit protocol device?"
            )
        return int(value)

    @property
    def value(self) -> str:
        """The first word (the value of an `SN:` line, the outcome of a RESULT line)."""
        return self.words[0] if self.words else ""

    def __repr__(self) -> str:
        return f"AnswerLine({_hide(self.raw)!r})"

    def __str__(self) -> str:
        return _hide(self.raw)


@dataclass(frozen=True)
class ReadBack:
    """What a device reported after SETUP: the values to compare with what was sent."""

    serial: str
    starting_code: int
    key: bytes = field(repr=False)
    time_divider: int | None = None  # None: not reported (the reference '#' form)
    restricted: bool | None = None
    test_code: str | None = None
    count: int | None = None


@dataclass(frozen=True)
class Answer:
    """The answer to one command: its information lines and its final OK/ERR line."""

    lines: tuple[AnswerLine, ...]
    final: AnswerLine

    @property
    def ok(self) -> bool:
        return self.final.tag == "OK"

    def first(self, tag: str) -> AnswerLine | None:
        tag = tag.upper()
        return next((line for line in self.lines if line.tag == tag), None)

    def all(self, tag: str) -> list[AnswerLine]:
        tag = tag.upper()
        return [line for line in self.lines if line.tag == tag]

    def read_back(self) -> ReadBack:
        """The SN:/SC:/SK: (and SETUP) lines of a setup answer; LinkError if one is missing."""
        found: dict[str, str] = {}
        for tag in ("SN", "SC", "SK"):
            line = self.first(tag)
            if line is None:
                raise LinkError(
                    f"the setup answer has no {tag}: line; the device did not read back "
                    "what it stored"
                )
            found[tag] = line.value
        code = found["SC"]
        if not code.isdigit():
            raise LinkError(f"the SC: line holds {code!r}, not a starting code")
        try:
            key = bytes.fromhex(found["SK"])
        except ValueError:
            raise LinkError("the SK: line does not hold a key in hex") from None
        extra = self.first("SETUP")
        if extra is None:
            return ReadBack(found["SN"], int(code), key)
        test = extra.get("test")
        restricted = extra.get("restricted")
        return ReadBack(
            found["SN"],
            int(code),
            key,
            time_divider=extra.int("divider") if "divider" in extra.fields else None,
            restricted=None if restricted is None else restricted == "1",
            test_code=None if test in (None, "-") else test,
            count=extra.int("count") if "count" in extra.fields else None,
        )


# --- channels ----------------------------------------------------------------------------------


class _Channel(Protocol):
    # True when all data is there at once (in-process): waiting for more is pointless.
    instant: bool

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """What arrived within `timeout` (b"" if nothing); raises EOFError when closed."""
        ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class _SessionChannel:
    instant = True

    def __init__(self, session: ProtocolSession, owned: SimulatedDevice | None) -> None:
        self._session = session
        self._owned = owned
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        if self._session.closed:
            raise EOFError
        self._pending += self._session.feed(data)

    def read(self, timeout: float) -> bytes:
        data, self._pending = bytes(self._pending), bytearray()
        if not data and self._session.closed:
            raise EOFError
        return data

    def discard_input(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None


class _SocketChannel:
    instant = False

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError:
            raise EOFError from None

    def read(self, timeout: float) -> bytes:
        if not select.select([self._sock], [], [], timeout)[0]:
            return b""
        try:
            data = self._sock.recv(4096)
        except OSError:
            raise EOFError from None
        if not data:
            raise EOFError
        return data

    def discard_input(self) -> None:
        while select.select([self._sock], [], [], 0)[0]:
            try:
                if not self._sock.recv(4096):
                    return
            except OSError:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class _SerialChannel:
    instant = False

    def __init__(self, port: Any) -> None:
        self._port = port

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


# --- the link ----------------------------------------------------------------------------------


def _command_word(line: str) -> str:
    if line.startswith("#"):
        return "SETUP"
    return line.split(maxsplit=1)[0].upper() if line.strip() else ""


def _check_line(line: str) -> str:
    line = line.strip()
    if not line:
        raise ValueError("a command line must not be empty")
    if any(not " " <= ch <= "~" for ch in line) or "\n" in line or "\r" in line:
        raise ValueError("a command line holds printable ASCII characters only, one line")
    return line


class DeviceLink:
    """A connection to one device over the protocol; use it as a context manager.

    `transcript`, when given, is called with every line sent (`"> ..."`) and
    received (`"< ..."`), keys blanked out.
    """

    def __init__(
        self,
        channel: _Channel,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Callable[[str], None] | None = None,
    ) -> None:
        self._channel = channel
        self.target = target
        self.timeout = timeout
        self.transcript = transcript
        self._buffer = bytearray()
        self._hello: AnswerLine | None = None
        self._out_of_step = False
        self._closed = False

    @classmethod
    def for_session(
        cls,
        session: ProtocolSession,
        *,
        target: str = "sim:",
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Callable[[str], None] | None = None,
    ) -> DeviceLink:
        """A link to a protocol session in this process (a simulator the caller owns)."""
        return cls(_SessionChannel(session, None), target, timeout=timeout, transcript=transcript)

    @classmethod
    def for_simulator(
        cls,
        device: SimulatedDevice,
        *,
        target: str = "sim:",
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Callable[[str], None] | None = None,
    ) -> DeviceLink:
        """A link to a simulated device in this process; closing the link leaves it open."""
        session = ProtocolSession(device, newline="\r\n")
        return cls.for_session(session, target=target, timeout=timeout, transcript=transcript)

    def __repr__(self) -> str:
        return f"DeviceLink(target={self.target!r})"

    def __enter__(self) -> DeviceLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once the link was closed, by `close()` or by the other side."""
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._channel.close()

    # -- lines ----------------------------------------------------------------------------

    def _log(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript(text)

    def _resync(self) -> None:
        """Drop a late answer to an earlier command before sending the next one."""
        self._buffer.clear()
        self._channel.discard_input()
        if self._channel.instant:
            self._out_of_step = False
            return
        quiet_since = time.monotonic()
        give_up = quiet_since + RESYNC_MAX_SECONDS
        while time.monotonic() < give_up:
            try:
                data = self._channel.read(_POLL_SECONDS)
            except EOFError:
                break
            now = time.monotonic()
            if data:
                quiet_since = now
            elif now - quiet_since >= RESYNC_QUIET_SECONDS:
                break
        self._out_of_step = False

    def _next_line(self, deadline: float, word: str) -> str:
        while True:
            end = next((i for i, byte in enumerate(self._buffer) if byte in (10, 13)), None)
            if end is not None:
                data = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                try:
                    text = data.decode("ascii")
                except UnicodeDecodeError:
                    self._out_of_step = True
                    raise LinkError(
                        f"garbled answer from {self.target} to {word}: bytes that are not "
                        f"ASCII text; check the baud rate ({BAUD_RATE} 8N1) and the cable"
                    ) from None
                if text.strip():
                    return text.strip()
                continue
            if len(self._buffer) > MAX_ANSWER_BYTES:
                self._out_of_step = True
                self._buffer.clear()
                raise LinkError(
                    f"garbled answer from {self.target} to {word}: a line of more than "
                    f"{MAX_ANSWER_BYTES} bytes; check the baud rate ({BAUD_RATE} 8N1) and "
                    "that this is a paygkit protocol device"
                )
            remaining = deadline - time.monotonic()
            try:
                data = self._channel.read(max(0.0, min(remaining, _POLL_SECONDS * 4)))
            except EOFError:
                self._closed = True
                raise LinkError(
                    f"{self.target} closed the link while answering {word}; check that the "
                    "device (or simulator) is still running"
                ) from None
            self._buffer += data
            if not data and (self._channel.instant or time.monotonic() >= deadline):
                self._out_of_step = True
                raise LinkTimeoutError(
                    f"no answer from {self.target} to {word} within {self.timeout:g} s; check "
                    "the port, the cable, the baud rate "
                    f"({BAUD_RATE} 8N1) and that the device is powered"
                )

    def command(self, line: str, *, check: bool = True, timeout: float | None = None) -> Answer:
        """Send one command line and read its answer up to the final OK/ERR line.

        Raises DeviceError on `ERR` when `check`, LinkError when the link fails.
        """
        if self._closed:
            raise LinkError(f"the link to {self.target} is closed; open it again")
        line = _check_line(line)
        word = _command_word(line)
        if self._out_of_step:
            self._resync()
        self._log("> " + _hide(line))
        try:
            self._channel.write(line.encode("ascii") + b"\r\n")
        except EOFError:
            self._closed = True
            raise LinkError(
                f"cannot send to {self.target}: the link is closed; check that the device "
                "(or simulator) is still running"
            ) from None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines: list[AnswerLine] = []
        while True:
            raw = self._next_line(deadline, word)
            self._log("< " + _hide(raw))
            parsed = AnswerLine.parse(raw)
            if parsed.tag in ("OK", "ERR"):
                break
            lines.append(parsed)
        if parsed.tag == "OK" and parsed.words and parsed.words[0].upper() != word:
            self._out_of_step = True
            raise LinkError(
                f"{self.target} answered 'OK {parsed.words[0]}' to {word}: the link is out of "
                "step (a late answer to an earlier command); try again"
            )
        answer = Answer(tuple(lines), parsed)
        if check and not answer.ok:
            code = parsed.words[0] if parsed.words else "?"
            text = raw.split(maxsplit=2)[2] if len(raw.split(maxsplit=2)) > 2 else ""
            raise DeviceError(code, redact(text), target=self.target, command=word)
        return answer

    def _one(self, answer: Answer, tag: str, word: str) -> AnswerLine:
        found = answer.first(tag)
        if found is None:
            raise LinkError(
                f"{self.target} answered {word} without a {tag} line; is it a paygkit "
                "protocol device?"
            )
        return found

    # -- commands -------------------------------------------------------------------------

    def hello(self) -> AnswerLine:
        """The HELLO line (protocol, model, firmware, simulator, power, provisioned)."""
        self._hello = self._one(self.command("HELLO"), "HELLO", "HELLO")
        return self._hello

    @property
    def is_simulator(self) -> bool:
        if self._hello is None:
            self.hello()
        assert self._hello is not None
        return self._hello.get("simulator") == "1"

    def setup(
        self,
        *,
        serial: str,
        starting_code: int,
        key: bytes,
        time_divider: int = 1,
        restricted: bool = False,
        test_code: str | None = None,
        count: int = 1,
    ) -> Answer:
        """SETUP; the answer holds the SN:/SC:/SK: read-back (`answer.read_back()`)."""
        _check_setup(serial, starting_code, key)
        line = (
            f"SETUP serial={serial} code={starting_code:09d} key={key.hex()} "
            f"divider={time_divider} restricted={int(restricted)}"
        )
        if test_code:
            if not test_code.isdigit():
                raise ValueError("the test code must be digits only")
            line += f" test={test_code}"
        line += f" count={count}"
        return self.command(line)

    def reference_setup(self, serial: str, starting_code: int, key: bytes) -> Answer:
        """The reference firmware's setup line `#serial;code;key` (defaults for the rest)."""
        _check_setup(serial, starting_code, key)
        return self.command(f"#{serial};{starting_code:09d};{key.hex()}")

    def token(self, digits: str) -> AnswerLine:
        """Enter a whole token; the RESULT line."""
        return self._one(self.command(f"TOKEN {digits}"), "RESULT", "TOKEN")

    def keys(self, keys: str) -> Answer:
        return self.command(f"KEYS {keys}")

    def status(self) -> AnswerLine:
        return self._one(self.command("STATUS"), "STATUS", "STATUS")

    def advance(self, seconds: int) -> None:
        self.command(f"ADVANCE {int(seconds)}")

    def set_clock(self, rtc: int) -> None:
        self.command(f"CLOCK {int(rtc)}")

    def power_off(self) -> None:
        self.command("POWER OFF")

    def power_on(self) -> None:
        self.command("POWER ON")

    def configure(self, **settings: str) -> None:
        arguments = " ".join(f"{name}={value}" for name, value in settings.items())
        self.command(f"CONFIG {arguments}".strip())

    def wipe(self) -> None:
        self.command("WIPE")


def _check_setup(serial: str, starting_code: int, key: bytes) -> None:
    if not _SERIAL_VALUE.fullmatch(serial) or ";" in serial:
        raise ValueError(
            "the serial number must be printable ASCII without spaces or ';' (e.g. SLT220000001)"
        )
    if isinstance(starting_code, bool) or not 0 <= starting_code <= 999_999_999:
        raise ValueError("the starting code must be a whole number from 0 to 999999999")
    if not isinstance(key, bytes | bytearray) or len(key) != 16:
        raise ValueError("the key must be 16 bytes")


# --- opening -----------------------------------------------------------------------------------


def _open_tcp(rest: str, timeout: float, target: str) -> _SocketChannel:
    host, separator, port_text = rest.rpartition(":")
    if not separator or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LinkError(
            f"{target!r} is not a TCP address; write tcp:HOST:PORT (e.g. tcp:127.0.0.1:7878)"
        )
    host = host.strip("[]") or "127.0.0.1"
    try:
        sock = socket.create_connection((host, int(port_text)), timeout=timeout)
    except OSError as error:
        raise LinkError(
            f"cannot connect to {target} ({error.strerror or error}); is the device server "
            f"running (paygkit device simulate --serve tcp:{port_text})?"
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _SocketChannel(sock)


def _open_serial(path: str, target: str) -> _SerialChannel:
    try:
        import serial  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - pyserial is a dependency
        raise LinkError("serial ports need pyserial: pip install pyserial") from None
    try:
        port = serial.serial_for_url(
            path, baudrate=BAUD_RATE, bytesize=8, parity="N", stopbits=1, timeout=_POLL_SECONDS
        )
    except (serial.SerialException, OSError, ValueError) as error:
        raise LinkError(
            f"cannot open the serial port {target} ({error}); check the path, the cable and "
            "that no other program has the port open"
        ) from None
    # Answers left from an earlier program must not be read as ours.
    with contextlib.suppress(Exception):
        port.reset_input_buffer()
    return _SerialChannel(port)


def open_link(
    target: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transcript: Callable[[str], None] | None = None,
) -> DeviceLink:
    """Open a link to a device: `sim:`, `sim:PATH`, `tcp:HOST:PORT`, `pty:PATH` or a path."""
    target = target.strip()
    if not target:
        raise LinkError("no device given; use sim:, tcp:HOST:PORT, a pty or a serial port path")
    scheme, separator, rest = target.partition(":")
    scheme = scheme.lower() if separator else ""
    channel: _Channel
    if scheme == "sim":
        if rest:
            try:
                device = SimulatedDevice.open(rest)
            except Exception as error:
                raise LinkError(f"cannot open the simulator state {rest}: {error}") from None
        else:
            device = SimulatedDevice()
        channel = _SessionChannel(ProtocolSession(device, newline="\r\n"), device)
    elif scheme == "tcp":
        channel = _open_tcp(rest, timeout, target)
    elif scheme in ("pty", "serial"):
        if not rest:
            raise LinkError(f"{target!r} names no port; write {scheme}:/dev/ttyUSB0 or similar")
        channel = _open_serial(rest, target)
    else:
        if "://" not in target and not Path(target).exists():
            raise LinkError(
                f"{target!r} is not a device: no such port; use sim:, tcp:HOST:PORT, or the "
                "path of a serial port or pty (e.g. /dev/ttyUSB0, /dev/pts/5)"
            )
        channel = _open_serial(target, target)
    return DeviceLink(channel, target, timeout=timeout, transcript=transcript)
