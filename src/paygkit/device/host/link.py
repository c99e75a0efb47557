"""The link: one command line at a time to a device, and its answer read to the final line.

A `DeviceLink` works over any `Channel`.  It keeps command and answer in step
(after a timeout or a garbled answer it drops a late answer before the next
command), reads answer lines with `paygkit.device.wire`, and logs every line
with its keys hidden.  Factory flashing and certification drive devices only
through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from paygkit.device.commands import SetupCommand, command_word
from paygkit.device.host.channels.base import Channel
from paygkit.device.host.channels.in_process import InProcessChannel
from paygkit.device.host.channels.serial_port import BAUD_RATE
from paygkit.device.host.errors import DeviceError, LinkError, LinkTimeoutError
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.wire import (
    MAX_ANSWER_LENGTH,
    AnswerLine,
    BadLine,
    CodeReadBack,
    Cut,
    ErrLine,
    HelloLine,
    KeyReadBack,
    LineSplitter,
    ResultLine,
    SerialReadBack,
    SetupLine,
    StatusLine,
    is_final,
    parse_answer,
    shown,
)
from paygkit.token import hide_keys

DEFAULT_TIMEOUT = 5.0
# After a timeout or a garbled answer, input is discarded until the link has been
# quiet this long, so that a late answer is not taken for the next one.
RESYNC_QUIET_SECONDS = 0.2
RESYNC_MAX_SECONDS = 2.0
_POLL_SECONDS = 0.05

L = TypeVar("L", bound=AnswerLine)


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

    def all_of(self, kind: type[L]) -> list[L]:
        """The lines of `kind`; LinkError if one of its tag did not read."""
        found: list[L] = []
        for line in self.lines:
            if isinstance(line, BadLine) and line.tag == kind.TAG:
                raise LinkError(line.problem)
            if isinstance(line, kind):
                found.append(line)
        return found

    def first_of(self, kind: type[L]) -> L | None:
        """The first line of `kind`, None if there is none; LinkError if it did not read."""
        found = self.all_of(kind)
        return found[0] if found else None

    def read_back(self) -> ReadBack:
        """The SN:/SC:/SK: (and SETUP) lines of a setup answer; LinkError if one is missing."""
        serial = self._read_back_line(SerialReadBack)
        code = self._read_back_line(CodeReadBack)
        key = self._read_back_line(KeyReadBack)
        extra = self.first_of(SetupLine)
        if extra is None:
            return ReadBack(serial.serial, code.starting_code, key.key)
        return ReadBack(
            serial.serial,
            code.starting_code,
            key.key,
            time_divider=extra.divider,
            restricted=extra.restricted,
            test_code=extra.test or None,
            count=extra.count,
        )

    def _read_back_line(self, kind: type[L]) -> L:
        line = self.first_of(kind)
        if line is None:
            raise LinkError(
                f"the setup answer has no {kind.TAG}: line; the device did not read back "
                "what it stored"
            )
        return line


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
        channel: Channel,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Callable[[str], None] | None = None,
    ) -> None:
        self._channel = channel
        self.target = target
        self.timeout = timeout
        self.transcript = transcript
        self._lines = LineSplitter(MAX_ANSWER_LENGTH)
        self._hello: HelloLine | None = None
        self._out_of_step = False
        self._closed = False

    @classmethod
    def for_interpreter(
        cls,
        interpreter: CommandInterpreter,
        *,
        target: str = "sim:",
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Callable[[str], None] | None = None,
    ) -> DeviceLink:
        """A link to a command interpreter in this process (a device the caller owns)."""
        return cls(InProcessChannel(interpreter), target, timeout=timeout, transcript=transcript)

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
        interpreter = CommandInterpreter(device, newline="\r\n")
        return cls.for_interpreter(
            interpreter, target=target, timeout=timeout, transcript=transcript
        )

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
        self._lines.clear()
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

    def _garbled(self, word: str, what: str) -> LinkError:
        self._out_of_step = True
        self._lines.clear()
        return LinkError(
            f"garbled answer from {self.target} to {word}: {what}; check the baud rate "
            f"({BAUD_RATE} 8N1) and the cable, and that this is a paygkit protocol device"
        )

    def _next_line(self, deadline: float, word: str) -> str:
        while True:
            line = self._lines.next_line()
            if line is Cut.TOO_LONG or (line is None and self._lines.cutting):
                raise self._garbled(word, f"a line of more than {MAX_ANSWER_LENGTH} characters")
            if line is not None:
                try:
                    text = line.decode("ascii").strip()
                except UnicodeDecodeError:
                    raise self._garbled(word, "bytes that are not ASCII text") from None
                if text:
                    return text
                continue
            remaining = deadline - time.monotonic()
            try:
                data = self._channel.read(max(0.0, min(remaining, _POLL_SECONDS * 4)))
            except EOFError:
                self._closed = True
                raise LinkError(
                    f"{self.target} closed the link while answering {word}; check that the "
                    "device (or simulator) is still running"
                ) from None
            self._lines.feed(data)
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
        word = command_word(line)
        if self._out_of_step:
            self._resync()
        self._log("> " + shown(line))
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
            self._log("< " + shown(raw))
            parsed = parse_answer(raw)
            if is_final(parsed):
                break
            lines.append(parsed)
        if parsed.tag == "OK" and parsed.value and parsed.value.upper() != word:
            self._out_of_step = True
            raise LinkError(
                f"{self.target} answered 'OK {parsed.value}' to {word}: the link is out of "
                "step (a late answer to an earlier command); try again"
            )
        answer = Answer(tuple(lines), parsed)
        if check and isinstance(parsed, ErrLine):
            raise DeviceError(
                parsed.code or "?", hide_keys(parsed.message), target=self.target, command=word
            )
        return answer

    def _one(self, answer: Answer, kind: type[L], word: str) -> L:
        found = answer.first_of(kind)
        if found is None:
            raise LinkError(
                f"{self.target} answered {word} without a {kind.TAG} line; is it a paygkit "
                "protocol device?"
            )
        return found

    # -- commands -------------------------------------------------------------------------

    def hello(self) -> HelloLine:
        """The HELLO line (protocol, model, firmware, simulator, power, provisioned)."""
        self._hello = self._one(self.command("HELLO"), HelloLine, "HELLO")
        return self._hello

    @property
    def is_simulator(self) -> bool:
        hello = self._hello if self._hello is not None else self.hello()
        return hello.simulator is True

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
        setup = SetupCommand(
            serial=serial,
            starting_code=starting_code,
            key=key,
            time_divider=time_divider,
            restricted_digits=restricted,
            test_code=test_code,
            count=count,
        )
        return self.command(setup.format())

    def reference_setup(self, serial: str, starting_code: int, key: bytes) -> Answer:
        """The reference firmware's setup line `#serial;code;key` (defaults for the rest)."""
        setup = SetupCommand(serial=serial, starting_code=starting_code, key=key)
        return self.command(setup.format_reference())

    def token(self, digits: str) -> ResultLine:
        """Enter a whole token; the RESULT line."""
        return self._one(self.command(f"TOKEN {digits}"), ResultLine, "TOKEN")

    def keys(self, keys: str) -> Answer:
        return self.command(f"KEYS {keys}")

    def status(self) -> StatusLine:
        return self._one(self.command("STATUS"), StatusLine, "STATUS")

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
