"""The device side of the device protocol: command lines in, answer lines out, no I/O.

A `CommandInterpreter` is what a device runs behind its UART: the servers of
`paygkit.device.serve` (stdin/stdout, TCP, a pty) and the in-process channel
of the host feed it bytes and send back what it returns.  It drives any
object with the `Firmware` API; given a simulator it also takes the simulator
commands (ADVANCE, CLOCK, POWER, RESET, CONFIG, WIPE).

Every answer ends with exactly one `OK <COMMAND> ...` or `ERR <CODE> <message>`
line, whatever the input: malformed lines and firmware faults become ERR lines,
never exceptions.  The key appears only on the `SK:` line of a setup answer.
Reading commands is `paygkit.device.commands`; every answer line is written
by `paygkit.device.wire`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from paygkit import __version__
from paygkit.device.commands import (
    HELP_LINES,
    KEYPAD_KEYS,
    MAX_KEYPAD_TIMEOUT,
    MAX_RTC,
    CommandError,
    SetupCommand,
    quoted_word,
    read_arguments,
    read_duration,
    read_flag,
    read_number,
)
from paygkit.device.firmware import OutcomeKind, Status, TokenOutcome
from paygkit.device.ports import Feedback, FeedbackKind
from paygkit.device.state import DeviceConfig, Provisioning, TamperResponse
from paygkit.device.storage import StorageError
from paygkit.device.wire import (
    MAX_COMMAND_LENGTH,
    PROTOCOL_VERSION,
    UNLIMITED,
    AnswerLine,
    ClockLine,
    CodeReadBack,
    ConfigLine,
    Cut,
    ErrLine,
    ErrorCode,
    EventLine,
    HelloLine,
    HelpLine,
    KeyReadBack,
    LineSplitter,
    OkLine,
    PowerLine,
    ResultLine,
    SerialReadBack,
    SetupLine,
    StatusLine,
)
from paygkit.token import HIDDEN, hide_keys


class DeviceTarget(Protocol):
    """What the protocol needs of a device: the API of `paygkit.device.firmware.Firmware`."""

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


# --- the device's state as answer lines --------------------------------------------------------


def status_line(status: Status) -> StatusLine:
    """The STATUS line (docs/device-protocol.md 4.2)."""
    return StatusLine(
        serial=status.serial or "",
        provisioned=status.provisioned,
        now=status.now,
        active=status.active,
        payg=status.payg_enabled,
        seconds_left=UNLIMITED if status.seconds_left is None else status.seconds_left,
        active_until=status.active_until,
        count=status.count,
        used=tuple(status.used_counts),
        invalid=status.invalid_attempts,
        blocked=status.blocked_seconds,
        tamper=status.tamper,
        test=status.test_active,
        typing=status.typing or "",
        restricted=status.restricted_digits,
        divider=status.time_divider,
    )


def result_line(outcome: TokenOutcome, status: Status | None) -> ResultLine:
    """The RESULT line of a token (docs/device-protocol.md 4.1); `status` is after the token."""
    kind = outcome.kind
    text = hide_keys(outcome.message)
    if kind is OutcomeKind.APPLIED:
        after = status_line(status) if status is not None else StatusLine()
        return ResultLine(
            outcome=kind,
            type=outcome.token_type,
            units=outcome.units,
            count=outcome.count,
            payg=after.payg,
            active=after.active,
            active_until=after.active_until,
            seconds_left=after.seconds_left,
            text=text,
        )
    if kind is OutcomeKind.ALREADY_USED:
        return ResultLine(outcome=kind, count=outcome.count, text=text)
    if kind in (OutcomeKind.INVALID, OutcomeKind.MALFORMED):
        invalid = status.invalid_attempts if status is not None else None
        return ResultLine(outcome=kind, wait=outcome.wait_seconds, invalid=invalid, text=text)
    if kind is OutcomeKind.BLOCKED:
        return ResultLine(outcome=kind, wait=outcome.wait_seconds, text=text)
    if kind is OutcomeKind.TEST_CODE and status is not None:
        return ResultLine(outcome=kind, test=status.test_active, active=status.active, text=text)
    return ResultLine(outcome=kind, text=text)


def event_line(feedback: Feedback) -> EventLine:
    return EventLine(
        kind=feedback.kind, led=feedback.led, blinks=feedback.blinks, text=hide_keys(feedback.text)
    )


def config_line(config: DeviceConfig) -> ConfigLine:
    return ConfigLine(
        waiting=config.waiting_period.enabled,
        tamper=config.tamper_response,
        keypad_timeout=config.keypad_timeout_seconds,
    )


def error_line(code: ErrorCode, message: str) -> str:
    return ErrLine(code.value, hide_keys(message)).format()


# --- the interpreter ---------------------------------------------------------------------------

Handler = Callable[[str, str], list[AnswerLine]]


class CommandInterpreter:
    """One host's conversation with a device: command lines in, answer lines out.

    `target` is a `Firmware` or anything with its API.  `controls` (the simulator
    commands) and `feedback` (EVENT lines) are taken from the target when it
    provides them, or given explicitly.  An interpreter is not thread-safe;
    several may share one device when their calls take turns.
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
        self._lines = LineSplitter(MAX_COMMAND_LENGTH, editing=True)
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
        return f"CommandInterpreter(model={self._model!r}, simulator={self._controls is not None})"

    @property
    def target(self) -> DeviceTarget:
        return self._target

    # -- byte stream framing --------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Bytes received -> bytes to send: the answers to every line completed by `data`.

        Reading stops after a QUIT (`closed` is then True); what follows it is
        kept, and a server that goes on (a serial line) clears `closed` and
        calls `feed(b"")` to have it read.
        """
        self._lines.feed(data)
        out: list[str] = []
        while not self.closed:
            line = self._lines.next_line()
            if line is None:
                break
            if line is Cut.TOO_LONG:
                out.append(self._too_long())
            else:
                # latin-1 maps each byte to one character, so handle_line
                # sees (and refuses) any byte that is not printable ASCII.
                out += self.handle_line(line.decode("latin-1"))
        return "".join(line + self._newline for line in out).encode("ascii", "replace")

    # -- one line -------------------------------------------------------------------------

    def handle_line(self, line: str) -> list[str]:
        """The answer to one command line (without its line end); [] for a blank line."""
        if any(not (" " <= ch <= "~" or ch == "\t") for ch in line):
            return [
                error_line(
                    ErrorCode.BAD_LINE,
                    "the line holds a character that is not printable ASCII; "
                    "send commands as plain text",
                )
            ]
        line = line.replace("\t", " ").strip()
        if not line:
            return []
        if len(line) > MAX_COMMAND_LENGTH:
            return [self._too_long()]
        self._drain()  # feedback from before this command belongs to no answer
        known_keys = self._known_keys()
        try:
            lines = [answer.format() for answer in self._answer(line)]
        except CommandError as error:
            lines = [error_line(error.code, error.message)]
        except StorageError as error:
            lines = [
                error_line(
                    ErrorCode.STORAGE,
                    f"the device memory failed ({hide_keys(str(error))}); nothing was changed",
                )
            ]
        except OSError as error:
            lines = [
                error_line(
                    ErrorCode.STORAGE,
                    f"the device memory failed ({type(error).__name__}); nothing was changed",
                )
            ]
        except Exception as error:
            lines = [
                error_line(
                    ErrorCode.INTERNAL,
                    f"the firmware failed ({type(error).__name__}); the command was not completed",
                )
            ]
        return self._hide_keys(lines, known_keys | self._known_keys())

    def _answer(self, line: str) -> list[AnswerLine]:
        if line.startswith("#"):
            return self._reference_setup(line)
        word, _, rest = line.partition(" ")
        command = word.upper()
        handler = self._handlers.get(command)
        if handler is None:
            raise CommandError(
                ErrorCode.UNKNOWN_COMMAND,
                f"unknown command{quoted_word(word)}; send HELP for the list of commands",
            )
        return handler(command, rest.strip())

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _too_long() -> str:
        return error_line(
            ErrorCode.LINE_TOO_LONG, f"a command line is at most {MAX_COMMAND_LENGTH} characters"
        )

    def _drain(self) -> list[Feedback]:
        if self._feedback is None:
            return []
        return [f for f in self._feedback.drain_feedback() if f.kind is not FeedbackKind.KEY_PRESS]

    def _events(self) -> list[AnswerLine]:
        return [event_line(feedback) for feedback in self._drain()]

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
        """Blank the device's own key out of every line but the SK: read-back.

        A key that is not shaped like one to `hide_keys` (all digits) is still
        known here, so it is hidden by value as well.
        """
        if not keys:
            return lines
        patterns = [re.compile(re.escape(key.hex()), re.IGNORECASE) for key in keys]
        hidden: list[str] = []
        for line in lines:
            if not line.startswith(KeyReadBack.TAG + ":"):
                for pattern in patterns:
                    line = pattern.sub(HIDDEN, line)
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

    @staticmethod
    def _clock_line(controls: SimulatorControls) -> ClockLine:
        return ClockLine(rtc=controls.rtc, ticks=controls.ticks)

    @staticmethod
    def _power_line(controls: SimulatorControls) -> PowerLine:
        return PowerLine(on=controls.powered)

    def _status_after(self) -> Status | None:
        try:
            return self._target.status()
        except Exception:
            return None

    # -- commands -------------------------------------------------------------------------

    def _hello(self, command: str, rest: str) -> list[AnswerLine]:
        self._no_arguments(command, rest)
        powered = self._controls is None or self._controls.powered
        hello = HelloLine(
            protocol=PROTOCOL_VERSION,
            model=self._model,
            firmware=f"paygkit-{__version__}",
            simulator=self._controls is not None,
            power=powered,
            provisioned=(self._target.provisioning is not None) if powered else None,
        )
        return [hello, OkLine(command)]

    def _help(self, command: str, rest: str) -> list[AnswerLine]:
        self._no_arguments(command, rest)
        return [*(HelpLine(syntax) for syntax in HELP_LINES), OkLine(command)]

    def _provision(self, setup: SetupCommand) -> Provisioning:
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
            raise CommandError(ErrorCode.BAD_ARGUMENT, hide_keys(str(error))) from None
        # Read back what the device holds now, not what was sent: that is the check.
        stored = self._target.provisioning
        if stored is None:
            raise CommandError(
                ErrorCode.STORAGE, "the setup was not kept by the device; nothing was changed"
            )
        return stored

    @staticmethod
    def _read_back(stored: Provisioning) -> list[AnswerLine]:
        return [
            SerialReadBack(stored.serial),
            CodeReadBack(stored.starting_code),
            KeyReadBack(stored.key),
        ]

    def _setup(self, command: str, rest: str) -> list[AnswerLine]:
        stored = self._provision(SetupCommand.parse(rest))
        extra = SetupLine(
            divider=stored.time_divider,
            restricted=stored.restricted_digits,
            test=stored.test_code or "",
            count=self._target.status().count,
        )
        return [*self._read_back(stored), extra, OkLine(command)]

    def _reference_setup(self, line: str) -> list[AnswerLine]:
        stored = self._provision(SetupCommand.parse_reference(line))
        return [*self._read_back(stored), OkLine("SETUP")]

    def _answer_outcome(self, outcome: TokenOutcome | Status | None) -> list[AnswerLine]:
        if outcome is None:
            return []
        if isinstance(outcome, Status):
            return [status_line(outcome), *self._events()]
        return [result_line(outcome, self._status_after()), *self._events()]

    def _keys(self, command: str, rest: str) -> list[AnswerLine]:
        keys = rest.replace(" ", "")
        if not keys:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "KEYS needs keys to press: * # 0-9")
        if not set(keys) <= KEYPAD_KEYS:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT,
                "a keypad has only the keys *, # and 0-9; nothing was pressed",
            )
        self._require_power()
        lines: list[AnswerLine] = []
        for key in keys:
            lines += self._answer_outcome(self._target.press(key))
        typing = self._target.status().typing or ""
        return [*lines, OkLine(command, typing=typing)]

    def _token(self, command: str, rest: str) -> list[AnswerLine]:
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
                message=hide_keys(str(error)),
            )
        return [*self._answer_outcome(outcome), OkLine(command)]

    def _status(self, command: str, rest: str) -> list[AnswerLine]:
        self._no_arguments(command, rest)
        self._require_power()
        return [status_line(self._target.status()), OkLine(command)]

    def _advance(self, command: str, rest: str) -> list[AnswerLine]:
        controls = self._simulator(command)
        if not rest:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "ADVANCE needs a duration (e.g. 90, 2h)")
        seconds = read_duration(rest)
        if controls.rtc + seconds > MAX_RTC:
            raise CommandError(
                ErrorCode.BAD_ARGUMENT, f"the simulated RTC cannot go past {MAX_RTC} (year 2100)"
            )
        controls.advance(seconds)
        return [self._clock_line(controls), *self._events(), OkLine(command)]

    def _clock(self, command: str, rest: str) -> list[AnswerLine]:
        controls = self._simulator(command)
        if rest:
            if rest[0] in "+-":
                delta = read_duration(rest[1:], what="the change of the clock")
                target = controls.rtc + delta if rest[0] == "+" else controls.rtc - delta
            else:
                target = read_number("the RTC time", rest, 0, MAX_RTC)
            if not 0 <= target <= MAX_RTC:
                raise CommandError(
                    ErrorCode.BAD_ARGUMENT, f"the RTC must stay between 0 and {MAX_RTC}"
                )
            controls.set_rtc(target)
        return [self._clock_line(controls), *self._events(), OkLine(command)]

    def _config(self, command: str, rest: str) -> list[AnswerLine]:
        controls = self._simulator(command)
        args = read_arguments(command, rest.split(), ("waiting", "tamper", "keypad_timeout"))
        if args:
            config = controls.config
            if "waiting" in args:
                waiting = dataclasses.replace(
                    config.waiting_period, enabled=read_flag("waiting", args["waiting"])
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
                timeout = read_number(
                    "keypad_timeout", args["keypad_timeout"], 1, MAX_KEYPAD_TIMEOUT
                )
                config = dataclasses.replace(config, keypad_timeout_seconds=timeout)
            controls.configure(config)
        return [config_line(controls.config), *self._events(), OkLine(command)]

    def _power(self, command: str, rest: str) -> list[AnswerLine]:
        controls = self._simulator(command)
        choice = rest.upper()
        if choice == "OFF":
            controls.power_off()
        elif choice == "ON":
            controls.power_on()
        elif choice:
            raise CommandError(ErrorCode.BAD_ARGUMENT, "POWER takes ON or OFF")
        return [self._power_line(controls), *self._events(), OkLine(command)]

    def _reset(self, command: str, rest: str) -> list[AnswerLine]:
        controls = self._simulator(command)
        self._no_arguments(command, rest)
        controls.reset()
        return [self._power_line(controls), *self._events(), OkLine(command)]

    def _wipe(self, command: str, rest: str) -> list[AnswerLine]:
        controls = self._simulator(command)
        self._no_arguments(command, rest)
        controls.wipe()
        return [self._power_line(controls), *self._events(), OkLine(command)]

    def _quit(self, command: str, rest: str) -> list[AnswerLine]:
        self._no_arguments(command, rest)
        self.closed = True
        return [OkLine(command)]
