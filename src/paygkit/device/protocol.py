"""The device protocol (docs/device-protocol.md) as a sans-IO session.

A `ProtocolSession` turns one command line into the lines of its answer and
does no I/O: transports (stdin/stdout, TCP, a pty, a real UART) feed it bytes
or lines and write back what it returns.  It drives any object with the
`Device` API; given a simulator it also takes the simulator commands (ADVANCE,
CLOCK, POWER, RESET, CONFIG, WIPE).

Every answer ends with exactly one `OK <COMMAND> ...` or `ERR <CODE> <message>`
line, whatever the input: malformed lines and firmware faults become ERR lines,
never exceptions.  The key appears only on the `SK:` line of a setup answer.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from paygkit import __version__
from paygkit.device.firmware import OutcomeKind, Status, TokenOutcome
from paygkit.device.ports import Feedback, FeedbackKind
from paygkit.device.serial_number import SERIAL_MAX_LENGTH
from paygkit.device.state import (
    DeviceConfig,
    Provisioning,
    TamperFlag,
    TamperResponse,
)
from paygkit.device.storage import StorageError
from paygkit.token import TokenError, parse_key

PROTOCOL_VERSION = 1
MAX_LINE_LENGTH = 256
MAX_ANSWER_LINE_LENGTH = 1024
MAX_ADVANCE_SECONDS = 3650 * 86400
# The simulated RTC stays below 2100-01-01 so that stored times never overflow.
MAX_RTC = 4_102_444_800
MAX_COUNT = 2**31 - 1
MAX_KEYPAD_TIMEOUT = 3600
KEYPAD_KEYS = frozenset("*#0123456789")

# As the firmware takes it: printable ASCII without spaces, and no ';' (the
# field separator of the reference setup line).
_SERIAL = re.compile(rf"[!-:<-~]{{1,{SERIAL_MAX_LENGTH}}}")
_CODE = re.compile(r"[0-9]{1,9}")
_REFERENCE_CODE = re.compile(r"[0-9]{9}")
_NUMBER = re.compile(r"[0-9]{1,12}")
_TEST_CODE = re.compile(r"[0-9]{1,20}")
_DURATION = re.compile(r"([0-9]{1,12})([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_WORD = re.compile(r"[A-Za-z_]{1,20}")
# A long run of hex with a letter in it looks like a key: blanked out of any
# text that repeats what a host sent (a key pasted in the wrong place).
_KEY_LIKE = re.compile(r"(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,}")
_TRUE = frozenset({"1", "on", "yes", "true"})
_FALSE = frozenset({"0", "off", "no", "false"})

_BACKSPACE = frozenset({0x08, 0x7F})
_LINE_ENDS = frozenset({0x0A, 0x0D})

HELP_LINES = (
    "HELLO",
    "HELP",
    "SETUP serial=<serial> code=<starting code> key=<32 hex> [divider=<1-255>] "
    "[restricted=0|1] [test=<digits>] [count=<n>]",
    "#<serial>;<9-digit starting code>;<32 hex key>",
    "KEYS <keys: * # 0-9>",
    "TOKEN <digits>",
    "STATUS",
    "ADVANCE <seconds | <n>s | <n>m | <n>h | <n>d>  (simulator)",
    "CLOCK [<rtc> | +<duration> | -<duration>]  (simulator)",
    "CONFIG [waiting=on|off] [tamper=lock|report] [keypad_timeout=<seconds>]  (simulator)",
    "POWER [ON|OFF]  (simulator)",
    "RESET  (simulator)",
    "WIPE  (simulator)",
    "QUIT",
)


class ErrorCode(enum.Enum):
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
    BAD_ARGUMENT = "BAD_ARGUMENT"
    BAD_LINE = "BAD_LINE"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    ALREADY_PROVISIONED = "ALREADY_PROVISIONED"
    POWERED_OFF = "POWERED_OFF"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    STORAGE = "STORAGE"
    INTERNAL = "INTERNAL"


class CommandError(Exception):
    """Ends a command with an ERR line; the message must not contain a key."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DeviceTarget(Protocol):
    """What the protocol needs of a device: the API of `paygkit.device.firmware.Device`."""

    @property
    def provisioning(self) -> Provisioning | None: ...

    def provision(
        self,
        *,
        serial: str,
        starting_code: int,
        key: bytes,
        time_divider: int = 1,
        restricted_digits: bool = False,
        test_code: str | None = None,
        count: int = 1,
    ) -> Provisioning: ...

    def enter_token(self, text: str) -> TokenOutcome: ...

    def press(self, key: str) -> TokenOutcome | Status | None: ...

    def status(self) -> Status: ...


@runtime_checkable
class SimulatorControls(Protocol):
    """What a simulator adds: its clocks, its power switch and its firmware settings."""

    @property
    def powered(self) -> bool: ...

    @property
    def rtc(self) -> int: ...

    @property
    def ticks(self) -> int: ...

    @property
    def config(self) -> DeviceConfig: ...

    def advance(self, seconds: int) -> None: ...

    def set_rtc(self, t: int) -> None: ...

    def power_off(self) -> None: ...

    def power_on(self) -> None: ...

    def reset(self) -> None: ...

    def wipe(self) -> None: ...

    def configure(self, config: DeviceConfig) -> None: ...


@runtime_checkable
class FeedbackSource(Protocol):
    """Hands out the feedback a device gave since the last call."""

    def drain_feedback(self) -> list[Feedback]: ...


# --- formatting --------------------------------------------------------------------------------


def quote(text: str) -> str:
    """`text="..."` value: printable ASCII only, backslash and quote escaped."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redact(text: str) -> str:
    """Blank out anything shaped like a key."""
    return _KEY_LIKE.sub("<hidden>", text)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _seconds_left(status: Status) -> str:
    return "unlimited" if status.seconds_left is None else str(status.seconds_left)


def format_tamper(flags: TamperFlag) -> str:
    names = [flag.name.lower() for flag in TamperFlag if flag and flag in flags and flag.name]
    return ",".join(names) or "none"


def format_status(status: Status) -> str:
    """The STATUS line (docs/device-protocol.md 4.2)."""
    used = ",".join(str(count) for count in status.used_counts) or "-"
    return (
        f"STATUS serial={status.serial or '-'} provisioned={_flag(status.provisioned)} "
        f"now={status.now} active={_flag(status.active)} payg={_on_off(status.payg_enabled)} "
        f"seconds_left={_seconds_left(status)} active_until={status.active_until} "
        f"count={status.count} used={used} invalid={status.invalid_attempts} "
        f"blocked={status.blocked_seconds} tamper={format_tamper(status.tamper)} "
        f"test={_flag(status.test_active)} typing={status.typing or '-'} "
        f"restricted={_flag(status.restricted_digits)} divider={status.time_divider}"
    )


def format_result(outcome: TokenOutcome, status: Status | None) -> str:
    """The RESULT line of a token (docs/device-protocol.md 4.1); `status` is after the token."""
    fields = [f"RESULT {outcome.kind.name}"]
    kind = outcome.kind
    if kind is OutcomeKind.APPLIED:
        if outcome.token_type is not None:
            fields.append(f"type={outcome.token_type.name}")
        if outcome.units is not None:
            fields.append(f"units={outcome.units}")
        if outcome.count is not None:
            fields.append(f"count={outcome.count}")
        if status is not None:
            fields += [
                f"payg={_on_off(status.payg_enabled)}",
                f"active={_flag(status.active)}",
                f"active_until={status.active_until}",
                f"seconds_left={_seconds_left(status)}",
            ]
    elif kind is OutcomeKind.ALREADY_USED:
        if outcome.count is not None:
            fields.append(f"count={outcome.count}")
    elif kind in (OutcomeKind.INVALID, OutcomeKind.MALFORMED):
        fields.append(f"wait={outcome.wait_seconds}")
        if status is not None:
            fields.append(f"invalid={status.invalid_attempts}")
    elif kind is OutcomeKind.BLOCKED:
        fields.append(f"wait={outcome.wait_seconds}")
    elif kind is OutcomeKind.TEST_CODE and status is not None:
        fields += [f"test={_flag(status.test_active)}", f"active={_flag(status.active)}"]
    fields.append(f"text={quote(redact(outcome.message))}")
    return " ".join(fields)


def format_event(feedback: Feedback) -> str:
    led = feedback.led.value if feedback.led is not None else "none"
    return (
        f"EVENT {feedback.kind.value} led={led} blinks={feedback.blinks} "
        f"text={quote(redact(feedback.text))}"
    )


def format_config(config: DeviceConfig) -> str:
    return (
        f"CONFIG waiting={_on_off(config.waiting_period.enabled)} "
        f"tamper={config.tamper_response.value} keypad_timeout={config.keypad_timeout_seconds}"
    )


# --- parsing -----------------------------------------------------------------------------------


def _shown(word: str) -> str:
    """A word of the input, for an error message, only if it cannot be a secret."""
    return f" '{word}'" if _WORD.fullmatch(word) else ""


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CommandError(ErrorCode.BAD_ARGUMENT, f"{name} must be 0 or 1 (or on/off)")


def _parse_int(name: str, value: str, low: int, high: int) -> int:
    if not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, f"{name} must be a whole number from {low} to {high}"
        )
    return int(value)


def parse_duration(text: str, *, what: str = "the duration") -> int:
    """'90' -> 90, '2h' -> 7200, '3d' -> 259200."""
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT,
            f"{what} must be seconds or a number with a unit s, m, h or d (e.g. 90, 2h, 3d)",
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_ADVANCE_SECONDS:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, f"{what} is at most 3650 days; move the clock in steps"
        )
    return seconds


def _parse_arguments(
    command: str, words: Iterable[str], allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> dict[str, str]:
    values: dict[str, str] = {}
    for word in words:
        name, separator, value = word.partition("=")
        name = name.lower()
        if not separator or not name:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                f"{command} takes name=value arguments ({', '.join(allowed)}); "
                "a word without '=' was given",
            )
        if name not in allowed:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                f"unknown argument{_shown(name)} for {command}; it takes {', '.join(allowed)}",
            )
        if name in values:
            raise CommandError(ErrorCode.BAD_ARGUMENT, f"{name} is given twice; give it once")
        if not value:
            raise CommandError(ErrorCode.BAD_ARGUMENT, f"{name}= needs a value")
        values[name] = value
    missing = [name for name in required if name not in values]
    if missing:
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, f"{command} needs {', '.join(f'{m}=' for m in missing)}"
        )
    return values


def _parse_serial(value: str) -> str:
    if not _SERIAL.fullmatch(value):
        raise CommandError(
            ErrorCode.BAD_ARGUMENT,
            f"the serial number must be 1 to {SERIAL_MAX_LENGTH} printable ASCII characters "
            "without spaces or ';' (e.g. SLT220000001)",
        )
    return value


def _parse_key(value: str) -> bytes:
    try:
        return parse_key(value)
    except TokenError as error:
        raise CommandError(ErrorCode.BAD_ARGUMENT, redact(str(error))) from None


@dataclasses.dataclass(frozen=True, slots=True)
class _Setup:
    serial: str
    starting_code: int
    key: bytes = dataclasses.field(repr=False)
    time_divider: int = 1
    restricted_digits: bool = False
    test_code: str | None = None
    count: int = 1


def _parse_setup(words: list[str]) -> _Setup:
    args = _parse_arguments(
        "SETUP",
        words,
        ("serial", "code", "key", "divider", "restricted", "test", "count"),
        ("serial", "code", "key"),
    )
    if not _CODE.fullmatch(args["code"]):
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, "code must be the starting code: up to 9 digits (0-999999999)"
        )
    test_code = args.get("test")
    if test_code is not None and not _TEST_CODE.fullmatch(test_code):
        raise CommandError(ErrorCode.BAD_ARGUMENT, "test must be the test code: 1 to 20 digits")
    return _Setup(
        serial=_parse_serial(args["serial"]),
        starting_code=int(args["code"]),
        key=_parse_key(args["key"]),
        time_divider=_parse_int("divider", args.get("divider", "1"), 1, 255),
        restricted_digits=_parse_bool("restricted", args.get("restricted", "0")),
        test_code=test_code,
        count=_parse_int("count", args.get("count", "1"), 0, MAX_COUNT),
    )


def _parse_reference_setup(line: str) -> _Setup:
    fields = line[1:].split(";")
    usage = "the reference setup line is #<serial>;<9-digit starting code>;<32 hex key>"
    if len(fields) != 3:
        hint = "; to press the # key, send KEYS #" if line == "#" else ""
        raise CommandError(ErrorCode.BAD_ARGUMENT, f"{usage}, with 3 fields separated by ';'{hint}")
    serial, code, key = fields
    if not _REFERENCE_CODE.fullmatch(code):
        raise CommandError(
            ErrorCode.BAD_ARGUMENT, f"{usage}: the starting code must be exactly 9 digits"
        )
    return _Setup(serial=_parse_serial(serial), starting_code=int(code), key=_parse_key(key))


# --- the session -------------------------------------------------------------------------------

Handler = Callable[[str, str], list[str]]


class ProtocolSession:
    """One host's conversation with a device: command lines in, answer lines out.

    `target` is a `Device` or anything with its API.  `controls` (the simulator
    commands) and `feedback` (EVENT lines) are taken from the target when it
    provides them, or given explicitly.  A session is not thread-safe; several
    sessions may share one device when their calls take turns.
    """

    def __init__(
        self,
        target: DeviceTarget,
        *,
        controls: SimulatorControls | None = None,
        feedback: FeedbackSource | None = None,
        model: str | None = None,
        newline: str = "\n",
    ) -> None:
        self._target = target
        self._controls = controls
        if controls is None and isinstance(target, SimulatorControls):
            self._controls = target
        self._feedback = feedback
        if feedback is None and isinstance(target, FeedbackSource):
            self._feedback = target
        self._model = model or ("paygkit-sim" if self._controls is not None else "paygkit")
        self._newline = newline
        self._buffer = bytearray()
        self._unread = bytearray()
        self._overflow = False
        self.closed = False
        self._handlers: dict[str, Handler] = {
            "HELLO": self._hello,
            "HELP": self._help,
            "SETUP": self._setup,
            "KEYS": self._keys,
            "TOKEN": self._token,
            "STATUS": self._status,
            "ADVANCE": self._advance,
            "CLOCK": self._clock,
            "CONFIG": self._config,
            "POWER": self._power,
            "RESET": self._reset,
            "WIPE": self._wipe,
            "QUIT": self._quit,
        }

    def __repr__(self) -> str:
        return f"ProtocolSession(model={self._model!r}, simulator={self._controls is not None})"

    @property
    def target(self) -> DeviceTarget:
        return self._target

    # -- byte stream framing --------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Bytes received -> bytes to send: the answers to every line completed by `data`.

        Reading stops after a QUIT (`closed` is then True); what follows it is
        kept, and a transport that goes on (a serial line) clears `closed` and
        calls `feed(b"")` to have it read.
        """
        out: list[str] = []
        data = bytes(self._unread) + bytes(data)
        self._unread.clear()
        for index, byte in enumerate(data):
            if self.closed:
                self._unread += data[index:]
                break
            if byte in _LINE_ENDS:
                if self._overflow:
                    self._overflow = False
                    out.append(
                        self._error(
                            ErrorCode.LINE_TOO_LONG,
                            f"a command line is at most {MAX_LINE_LENGTH} characters",
                        )
                    )
                else:
                    # latin-1 maps each byte to one character, so handle_line
                    # sees (and refuses) any byte that is not printable ASCII.
                    out += self.handle_line(self._buffer.decode("latin-1"))
                self._buffer.clear()
            elif self._overflow:
                continue
            elif byte in _BACKSPACE:
                if self._buffer:
                    self._buffer.pop()
            else:
                self._buffer.append(byte)
                if len(self._buffer) > MAX_LINE_LENGTH:
                    self._overflow = True
                    self._buffer.clear()
        return "".join(line + self._newline for line in out).encode("ascii", "replace")

    # -- one line -------------------------------------------------------------------------

    def handle_line(self, line: str) -> list[str]:
        """The answer to one command line (without its line end); [] for a blank line."""
        if any(not (" " <= ch <= "~" or ch == "\t") for ch in line):
            return [
                self._error(
                    ErrorCode.BAD_LINE,
                    "the line holds a character that is not printable ASCII; "
                    "send commands as plain text",
                )
            ]
        line = line.replace("\t", " ").strip()
        if not line:
            return []
        if len(line) > MAX_LINE_LENGTH:
            return [
                self._error(
                    ErrorCode.LINE_TOO_LONG,
                    f"a command line is at most {MAX_LINE_LENGTH} characters",
                )
            ]
        self._drain()  # feedback from before this command belongs to no answer
        known_keys = self._known_keys()
        try:
            if line.startswith("#"):
                lines = self._reference_setup(line)
            else:
                word, _, rest = line.partition(" ")
                command = word.upper()
                handler = self._handlers.get(command)
                if handler is None:
                    raise CommandError(
                        ErrorCode.UNKNOWN_COMMAND,
                        f"unknown command{_shown(word)}; send HELP for the list of commands",
                    )
                lines = handler(command, rest.strip())
        except CommandError as error:
            lines = [self._error(error.code, error.message)]
        except StorageError as error:
            lines = [
                self._error(
                    ErrorCode.STORAGE,
                    f"the device memory failed ({redact(str(error))}); nothing was changed",
                )
            ]
        except OSError as error:
            lines = [
                self._error(
                    ErrorCode.STORAGE,
                    f"the device memory failed ({type(error).__name__}); nothing was changed",
                )
            ]
        except Exception as error:
            lines = [
                self._error(
                    ErrorCode.INTERNAL,
                    f"the firmware failed ({type(error).__name__}); the command was not completed",
                )
            ]
        return self._hide_keys(lines, known_keys | self._known_keys())

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _error(code: ErrorCode, message: str) -> str:
        return f"ERR {code.value} {redact(message)}"

    def _drain(self) -> list[Feedback]:
        if self._feedback is None:
            return []
        return [f for f in self._feedback.drain_feedback() if f.kind is not FeedbackKind.KEY_PRESS]

    def _events(self) -> list[str]:
        return [format_event(feedback) for feedback in self._drain()]

    def _known_keys(self) -> set[bytes]:
        if self._controls is not None and not self._controls.powered:
            return set()
        try:
            provisioning = self._target.provisioning
        except Exception:
            return set()
        return {provisioning.key} if provisioning is not None else set()

    @staticmethod
    def _hide_keys(lines: list[str], keys: set[bytes]) -> list[str]:
        if not keys:
            return lines
        patterns = [re.compile(re.escape(key.hex()), re.IGNORECASE) for key in keys]
        hidden: list[str] = []
        for line in lines:
            if not line.startswith("SK:"):
                for pattern in patterns:
                    line = pattern.sub("<hidden>", line)
            hidden.append(line)
        return hidden

    def _simulator(self, command: str) -> SimulatorControls:
        if self._controls is None:
            raise CommandError(
                ErrorCode.NOT_SUPPORTED, f"{command} is a simulator command; this is a device"
            )
        return self._controls

    def _require_power(self) -> None:
        if self._controls is not None and not self._controls.powered:
            raise CommandError(ErrorCode.POWERED_OFF, "the device is off; send POWER ON")

    @staticmethod
    def _no_arguments(command: str, rest: str) -> None:
        if rest:
            raise CommandError(ErrorCode.BAD_ARGUMENT, f"{command} takes no arguments")

    def _clock_line(self, controls: SimulatorControls) -> str:
        return f"CLOCK rtc={controls.rtc} ticks={controls.ticks}"

    def _power_line(self, controls: SimulatorControls) -> str:
        return f"POWER {_on_off(controls.powered)}"

    def _status_after(self) -> Status | None:
        try:
            return self._target.status()
        except Exception:
            return None

    # -- commands -------------------------------------------------------------------------

    def _hello(self, command: str, rest: str) -> list[str]:
        self._no_arguments(command, rest)
        fields = [
            f"HELLO protocol={PROTOCOL_VERSION}",
            f"model={self._model}",
            f"firmware=paygkit-{__version__}",
            f"simulator={_flag(self._controls is not None)}",
        ]
        powered = self._controls is None or self._controls.powered
        fields.append(f"power={_on_off(powered)}")
        if powered:
            fields.append(f"provisioned={_flag(self._target.provisioning is not None)}")
        return [" ".join(fields), "OK HELLO"]

    def _help(self, command: str, rest: str) -> list[str]:
        self._no_arguments(command, rest)
        return [f"HELP {line}" for line in HELP_LINES] + ["OK HELP"]

    def _provision(self, setup: _Setup) -> Provisioning:
        self._require_power()
        current = self._target.provisioning
        if current is not None:
            raise CommandError(
                ErrorCode.ALREADY_PROVISIONED,
                f"the device is already set up as {current.serial}; a set-up device keeps "
                "its key (a simulator can be wiped with WIPE)",
            )
        try:
            self._target.provision(
                serial=setup.serial,
                starting_code=setup.starting_code,
                key=setup.key,
                time_divider=setup.time_divider,
                restricted_digits=setup.restricted_digits,
                test_code=setup.test_code,
                count=setup.count,
            )
        except StorageError:
            raise
        except ValueError as error:
            raise CommandError(ErrorCode.BAD_ARGUMENT, redact(str(error))) from None
        # Read back what the device holds now, not what was sent: that is the check.
        stored = self._target.provisioning
        if stored is None:
            raise CommandError(
                ErrorCode.STORAGE, "the setup was not kept by the device; nothing was changed"
            )
        return stored

    @staticmethod
    def _read_back(stored: Provisioning) -> list[str]:
        return [
            f"SN:{stored.serial}",
            f"SC:{stored.starting_code:09d}",
            f"SK:{stored.key.hex().upper()}",
        ]

    def _setup(self, command: str, rest: str) -> list[str]:
        stored = self._provision(_parse_setup(rest.split()))
        extra = (
            f"SETUP divider={stored.time_divider} restricted={_flag(stored.restricted_digits)} "
            f"test={stored.test_code or '-'} count={self._target.status().count}"
        )
        return [*self._read_back(stored), extra, "OK SETUP"]

    def _reference_setup(self, line: str) -> list[str]:
        stored = self._provision(_parse_reference_setup(line))
        return [*self._read_back(stored), "OK SETUP"]

    def _answer_outcome(self, outcome: TokenOutcome | Status | None) -> list[str]:
        if outcome is None:
            return []
        if isinstance(outcome, Status):
            return [format_status(outcome), *self._events()]
        return [format_result(outcome, self._status_after()), *self._events()]

    def _keys(self, command: str, rest: str) -> list[str]:
        keys = rest.replace(" ", "")
        if not keys:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "KEYS needs keys to press: * # 0-9")
        if not set(keys) <= KEYPAD_KEYS:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                "a keypad has only the keys *, # and 0-9; nothing was pressed",
            )
        self._require_power()
        lines: list[str] = []
        for key in keys:
            lines += self._answer_outcome(self._target.press(key))
        typing = self._target.status().typing or "-"
        return [*lines, f"OK KEYS typing={typing}"]

    def _token(self, command: str, rest: str) -> list[str]:
        text = " ".join(rest.split())
        if not text:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "TOKEN needs the token's digits")
        self._require_power()
        try:
            outcome = self._target.enter_token(text)
        except StorageError:
            raise
        except ValueError as error:
            # A device refuses such text as MALFORMED; this keeps that promise
            # for a target that raises instead.
            outcome = TokenOutcome(
                kind=OutcomeKind.MALFORMED,
                token_type=None,
                units=None,
                count=None,
                wait_seconds=0,
                message=redact(str(error)),
            )
        return [*self._answer_outcome(outcome), "OK TOKEN"]

    def _status(self, command: str, rest: str) -> list[str]:
        self._no_arguments(command, rest)
        self._require_power()
        return [format_status(self._target.status()), "OK STATUS"]

    def _advance(self, command: str, rest: str) -> list[str]:
        controls = self._simulator(command)
        if not rest:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "ADVANCE needs a duration (e.g. 90, 2h)")
        seconds = parse_duration(rest)
        if controls.rtc + seconds > MAX_RTC:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT, f"the simulated RTC cannot go past {MAX_RTC} (year 2100)"
            )
        controls.advance(seconds)
        return [self._clock_line(controls), *self._events(), "OK ADVANCE"]

    def _clock(self, command: str, rest: str) -> list[str]:
        controls = self._simulator(command)
        if rest:
            if rest[0] in "+-":
                delta = parse_duration(rest[1:], what="the change of the clock")
                target = controls.rtc + delta if rest[0] == "+" else controls.rtc - delta
            else:
                target = _parse_int("the RTC time", rest, 0, MAX_RTC)
            if not 0 <= target <= MAX_RTC:
                raise CommandError(
                    ErrorCode.BAD_ARGUMENT, f"the RTC must stay between 0 and {MAX_RTC}"
                )
            controls.set_rtc(target)
        return [self._clock_line(controls), *self._events(), "OK CLOCK"]

    def _config(self, command: str, rest: str) -> list[str]:
        controls = self._simulator(command)
        args = _parse_arguments(command, rest.split(), ("waiting", "tamper", "keypad_timeout"))
        if args:
            config = controls.config
            if "waiting" in args:
                waiting = dataclasses.replace(
                    config.waiting_period, enabled=_parse_bool("waiting", args["waiting"])
                )
                config = dataclasses.replace(config, waiting_period=waiting)
            if "tamper" in args:
                try:
                    response = TamperResponse(args["tamper"].lower())
                except ValueError:
                    raise CommandError(
                        ErrorCode.BAD_ARGUMENT, "tamper must be lock or report"
                    ) from None
                config = dataclasses.replace(config, tamper_response=response)
            if "keypad_timeout" in args:
                timeout = _parse_int(
                    "keypad_timeout", args["keypad_timeout"], 1, MAX_KEYPAD_TIMEOUT
                )
                config = dataclasses.replace(config, keypad_timeout_seconds=timeout)
            controls.configure(config)
        return [format_config(controls.config), *self._events(), "OK CONFIG"]

    def _power(self, command: str, rest: str) -> list[str]:
        controls = self._simulator(command)
        choice = rest.upper()
        if choice == "OFF":
            controls.power_off()
        elif choice == "ON":
            controls.power_on()
        elif choice:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "POWER takes ON or OFF")
        return [self._power_line(controls), *self._events(), "OK POWER"]

    def _reset(self, command: str, rest: str) -> list[str]:
        controls = self._simulator(command)
        self._no_arguments(command, rest)
        controls.reset()
        return [self._power_line(controls), *self._events(), "OK RESET"]

    def _wipe(self, command: str, rest: str) -> list[str]:
        controls = self._simulator(command)
        self._no_arguments(command, rest)
        controls.wipe()
        return [self._power_line(controls), *self._events(), "OK WIPE"]

    def _quit(self, command: str, rest: str) -> list[str]:
        self._no_arguments(command, rest)
        self.closed = True
        return ["OK QUIT"]
