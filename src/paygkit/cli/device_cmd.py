"""`paygkit device simulate`: a simulated PAYG device in the terminal or served as a port.

`--firmware c` runs the C device library (firmware/lib, built with the
package) in place of paygkit's Python firmware model; everything else is
the same.  Without `--serve` the device runs interactively: a status panel, and a prompt
that takes keypad keys (`*123456789#`), time controls (`+1h`, `+2d`), power
(`off`, `on`, `reset`) and any command of the device protocol
(docs/device-protocol.md).  With `--serve` the same device speaks the protocol
on stdin/stdout, a TCP port on 127.0.0.1 or a pseudo-terminal.  Its memory is
a file (`--state`), so it persists between runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from paygkit.cli.commands import HELP_MARKUP, KEY_ENV, SUBCOMMANDS, PlainHelpGroup
from paygkit.cli.keyfiles import warn_if_in_git_work_tree
from paygkit.cli.token_cmd import DividerAliasOption, time_divider_of
from paygkit.device.cfirmware import FIRMWARE_ENV, CFirmwareUnavailableError
from paygkit.device.firmware import OutcomeKind, TokenOutcome
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.ports import Feedback, FeedbackKind, Led
from paygkit.device.serve import (
    PtyEndpoint,
    ServeError,
    serve_pty,
    serve_stdio,
    serve_tcp,
)
from paygkit.device.simulator import PoweredOffError, SimulatedDevice
from paygkit.device.state import DeviceConfig, TamperResponse
from paygkit.device.storage import StorageError
from paygkit.device.wire import format_tamper
from paygkit.token import countdown_text, derive_starting_code, hide_keys, parse_key

DEFAULT_STATE_FILE = Path("paygkit-device.bin")
USAGE_EXIT_CODE = 2
PROMPT = "key/command> "

app = typer.Typer(
    name="device",
    help=SUBCOMMANDS["device"].help,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
    cls=PlainHelpGroup,
)

KEYPAD_LINE_CHARS = frozenset("*#0123456789 ")
# The firmware's short key-press messages, said in full for someone at a prompt.
KEYPAD_HINTS = {
    "Press * to start a token": (
        "Digits typed without * were ignored: start a token with *, end it with # "
        "(e.g. *123456789#)"
    ),
}

FIRMWARE_NAMES = {"python": "paygkit model (Python)", "c": "C device library (firmware/lib)"}


class FirmwareChoice(enum.Enum):
    PYTHON = "python"
    C = "c"


INTERACTIVE_HELP = (
    "Keys: * starts a token, digits, # ends it (# alone shows the status); "
    "e.g. *123456789#. Spaces are ignored.",
    "Time: +90 (seconds), +30m, +1h, +2d advance the simulated clock.",
    "Power: off, on, reset.  status, help, quit.",
    "Protocol commands work too: TOKEN <digits>, SETUP ..., CLOCK -1h, "
    "CONFIG waiting=off, WIPE, HELP.",
)


# --- the interactive device ----------------------------------------------------------------


def rtc_text(rtc: int) -> str:
    try:
        return datetime.fromtimestamp(rtc, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return str(rtc)


def outcome_text(outcome: TokenOutcome | None) -> Text:
    if outcome is None:
        return Text("-")
    good = outcome.kind in (OutcomeKind.APPLIED, OutcomeKind.TEST_CODE)
    detail = outcome.kind.name
    if outcome.token_type is not None:
        detail += f" {outcome.token_type.label}"
    if outcome.count is not None:
        detail += f", count {outcome.count}"
    text = Text(detail, style="green" if good else "red")
    text.append(f"  {outcome.message}", style="default")
    return text


def feedback_text(feedback: Feedback | None) -> Text:
    if feedback is None:
        return Text("-")
    if feedback.led is None:
        return Text(feedback.text)
    style = "green" if feedback.led is Led.GREEN else "red"
    text = Text(f"{feedback.led.value} x{feedback.blinks}", style=f"bold {style}")
    text.append(f"  {feedback.text}", style="default")
    return text


class InteractiveSimulator:
    """The interactive device: lines typed by a person -> protocol commands -> a status panel.

    Kept free of terminal I/O so it can be driven and checked by tests.
    """

    def __init__(self, sim: SimulatedDevice) -> None:
        self.sim = sim
        self.session = CommandInterpreter(sim, feedback=self)
        self.answer: list[str] = []
        self.hints: list[str] = []  # what went wrong with the last line, in plain words
        self.finished = False

    @staticmethod
    def command_for(line: str) -> str | None:
        """The protocol command for what a person typed; None for 'quit', '' for help."""
        text = line.strip()
        word = text.lower()
        if word in ("quit", "exit", "q"):
            return None
        if word in ("help", "?"):
            return ""
        if word == "off":
            return "POWER OFF"
        if word == "on":
            return "POWER ON"
        if text.startswith("+"):
            return f"ADVANCE {text[1:].strip()}"
        if text and set(text) <= KEYPAD_LINE_CHARS:
            return f"KEYS {text}"
        return text

    @staticmethod
    def keypad_problem(line: str) -> str | None:
        """Why a line meant for the keypad cannot be typed on it; None when it can.

        No protocol command starts with '*' or a digit, so such a line is keypad input;
        without this, a mistyped token would come back as an unexplained unknown command.
        """
        text = line.strip()
        if not text or not (text[0] == "*" or text[0].isdigit()):
            return None
        wrong = [ch for ch in dict.fromkeys(text) if ch not in KEYPAD_LINE_CHARS]
        if not wrong:
            return None
        shown = ", ".join(repr(ch) for ch in wrong)
        noun = "is not a keypad key" if len(wrong) == 1 else "are not keypad keys"
        return (
            f"{shown} {noun}: the keypad has *, # and 0-9; nothing was pressed. "
            "Type the token again, e.g. *123456789#"
        )

    def drain_feedback(self) -> list[Feedback]:
        # The protocol drops key-press feedback from its answers; the firmware's hints
        # among it (digits before *, a key a restricted keypad lacks) are kept for the panel.
        feedback = self.sim.drain_feedback()
        for item in feedback:
            if item.kind is FeedbackKind.KEY_PRESS and not item.text.startswith("*"):
                hint = KEYPAD_HINTS.get(item.text, item.text)
                if hint not in self.hints:
                    self.hints.append(hint)
        return feedback

    def handle(self, line: str) -> None:
        self.hints = []
        problem = self.keypad_problem(line)
        if problem is not None:
            self.answer = []
            self.hints = [problem]
            return
        command = self.command_for(line)
        if command is None:
            self.finished = True
            self.answer = []
        elif command == "":
            self.answer = list(INTERACTIVE_HELP)
        else:
            self.answer = self.session.handle_line(command)
            self.drain_feedback()  # hints the last key gave after the protocol's last look

    def panel(self) -> Panel:
        sim = self.sim
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row("Clock", f"{rtc_text(sim.rtc)}  (RTC {sim.rtc}, ticks {sim.ticks})")
        table.add_row("Firmware", FIRMWARE_NAMES[sim.firmware_name])
        if not sim.powered:
            table.add_row("Power", Text("OFF (type 'on')", style="bold red"))
        else:
            status = sim.status()
            table.add_row("Device", status.serial or Text("not set up (SETUP ...)", style="red"))
            table.add_row(
                "Active",
                Text("YES", style="bold green") if status.active else Text("NO", style="bold red"),
            )
            if status.seconds_left is None:
                left = "unlimited (PAYG off)"
            else:
                left = countdown_text(status.seconds_left)
            table.add_row("Time left", left)
            table.add_row("PAYG", "on" if status.payg_enabled else "off")
            used = ",".join(str(c) for c in status.used_counts) or "-"
            table.add_row("Count", f"{status.count}  (used {used})")
            if status.blocked_seconds:
                waiting = Text(
                    f"entry blocked for {countdown_text(status.blocked_seconds)}", style="red"
                )
            else:
                waiting = Text("entry open")
            waiting.append(f"  ({status.invalid_attempts} invalid in a row", style="default")
            if not sim.config.waiting_period.enabled:
                waiting.append(", waiting period off", style="default")
            waiting.append(")", style="default")
            table.add_row("Waiting", waiting)
            if sim.config.accept_reset_token:
                # Unusual and risky for a device in the field: show it plainly.
                table.add_row("Reset token", Text("accepted (count 0 Counter Sync)", style="red"))
            tamper = format_tamper(status.tamper)
            table.add_row("Tamper", Text(tamper, style="red" if tamper != "none" else ""))
            if status.test_active:
                table.add_row("Test code", Text("active", style="green"))
            table.add_row("Keypad", f"*{status.typing}" if status.typing else "-")
        table.add_row("Last result", outcome_text(sim.last_outcome))
        table.add_row("Last LED", feedback_text(sim.last_feedback))
        parts: list[Table | Text] = [table]
        if self.hints:
            parts.append(Text(""))
            parts.append(Text("\n".join(self.hints), style="bold yellow"))
        if self.answer:
            parts.append(Text(""))
            parts.append(Text("\n".join(self.answer), style="dim"))
        return Panel(
            Group(*parts),
            title="paygkit simulated device",
            subtitle="keys *..#, +1h/+2d, off/on, status, help, quit",
            box=box.ROUNDED,
            expand=False,
        )


def run_interactive(
    sim: SimulatedDevice,
    console: Console,
    read_line: Callable[[str], str] = input,
) -> None:
    """Redraw the panel, read a line, act on it; until 'quit' or end of input."""
    ui = InteractiveSimulator(sim)
    while not ui.finished:
        if console.is_terminal:
            console.clear()
        console.print(ui.panel())
        try:
            line = read_line(PROMPT)
        except (EOFError, KeyboardInterrupt):
            break
        ui.handle(line)


# --- the command -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeMode:
    kind: str  # "stdio", "tcp" or "pty"
    port: int = 0
    link: Path | None = None


def parse_serve(text: str) -> ServeMode:
    kind, _, argument = text.partition(":")
    kind = kind.lower()
    if kind == "stdio" and not argument:
        return ServeMode("stdio")
    if kind == "tcp":
        if not argument.isdigit() or not 0 <= int(argument) <= 65535:
            raise typer.BadParameter(
                "tcp needs a port number 0-65535, e.g. tcp:7878 (0 picks a free port)",
                param_hint="'--serve'",
            )
        return ServeMode("tcp", port=int(argument))
    if kind == "pty":
        return ServeMode("pty", link=Path(argument) if argument else None)
    raise typer.BadParameter("must be stdio, tcp:PORT, pty or pty:LINKPATH", param_hint="'--serve'")


def _fail(message: str) -> typer.Exit:
    text = escape(hide_keys(message.replace("\n", " ")))
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]Error: {text}[/]")
    return typer.Exit(USAGE_EXIT_CODE)


def _note(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(escape(message))


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _provision_on_start(
    sim: SimulatedDevice,
    *,
    state: Path,
    serial: str | None,
    key: str | None,
    starting_code: int | None,
    divider: int,
    restricted: bool,
    test_code: str | None,
    count: int,
) -> None:
    # --serial asks for the setup; a key in the environment alone does not.
    if serial is None:
        if starting_code is not None:
            raise typer.BadParameter(
                "sets up a blank device, together with --serial and --key",
                param_hint="'--starting-code'",
            )
        return
    if key is None:
        raise typer.BadParameter(
            f"setting up a device needs its key: --key, or the environment variable {KEY_ENV}",
            param_hint="'--key'",
        )
    raw_key = parse_key(key)
    current = sim.provisioning
    if current is not None:
        # A set-up device keeps its identity, as a real one does; carrying on with it when
        # other --serial/--key were asked for would give tokens for the wrong device.
        differs = [
            name
            for name, wanted, held in (
                ("--serial", serial, current.serial),
                (f"--key (or {KEY_ENV})", raw_key, current.key),
                ("--starting-code", starting_code, current.starting_code),
            )
            if wanted is not None and wanted != held
        ]
        if differs:
            raise _fail(
                f"the state file {state} already holds device {current.serial}; the "
                f"{', '.join(differs)} given {'differs' if len(differs) == 1 else 'differ'} "
                "from it. A set-up device keeps its identity, so nothing was changed: to "
                "simulate the new device, give another state file (--state NEW.bin), or start "
                "this one afresh with --reset-state (its memory is erased: its count and time "
                "are lost)"
            )
        return
    code = starting_code if starting_code is not None else derive_starting_code(raw_key)
    sim.provision(
        serial=serial,
        starting_code=code,
        key=raw_key,
        time_divider=divider,
        restricted_digits=restricted,
        test_code=test_code,
        count=count,
    )


def _config(
    config: DeviceConfig,
    waiting: bool | None,
    tamper: TamperResponse | None,
    accept_reset_token: bool | None = None,
) -> DeviceConfig | None:
    if waiting is None and tamper is None and accept_reset_token is None:
        return None
    if waiting is not None:
        config = dataclasses.replace(
            config, waiting_period=dataclasses.replace(config.waiting_period, enabled=waiting)
        )
    if tamper is not None:
        config = dataclasses.replace(config, tamper_response=tamper)
    if accept_reset_token is not None:
        config = dataclasses.replace(config, accept_reset_token=accept_reset_token)
    return config


def _serve(sim: SimulatedDevice, mode: ServeMode) -> None:
    stop = threading.Event()
    serial = sim.provisioning.serial if sim.provisioning else "(not set up)"
    with _stop_on_sigterm(stop), contextlib.suppress(KeyboardInterrupt):
        if mode.kind == "stdio":
            _note(f"Device {serial}: device protocol on stdin/stdout (QUIT or end of input ends).")
            serve_stdio(CommandInterpreter(sim), stop=stop)
        elif mode.kind == "tcp":

            def listening(address: tuple[str, int]) -> None:
                _note(
                    f"Device {serial}: device protocol on tcp {address[0]}:{address[1]} "
                    "(Ctrl-C to stop)."
                )

            serve_tcp(
                lambda: CommandInterpreter(sim, newline="\r\n"),
                port=mode.port,
                stop=stop,
                ready=listening,
            )
        else:

            def opened(endpoint: PtyEndpoint) -> None:
                # The path alone on stdout, so that scripts can read it.
                print(endpoint.path, flush=True)
                link = f" (link {endpoint.symlink})" if endpoint.symlink else ""
                _note(
                    f"Device {serial}: device protocol on the serial device "
                    f"{endpoint.path}{link} (Ctrl-C to stop)."
                )

            serve_pty(
                CommandInterpreter(sim, newline="\r\n"), stop=stop, symlink=mode.link, ready=opened
            )


def _holds_key(sim: SimulatedDevice) -> bool:
    """Whether the device is set up (its memory holds its key); False while it is off."""
    try:
        return sim.provisioning is not None
    except PoweredOffError:
        return False


@app.command()
def simulate(
    state: Annotated[
        Path,
        typer.Option(
            "--state",
            metavar="FILE",
            help="The device's memory file (created blank if missing); its clock and settings "
            "are kept next to it in FILE.sim.json.",
        ),
    ] = DEFAULT_STATE_FILE,
    reset_state: Annotated[
        bool,
        typer.Option(
            "--reset-state",
            help="Erase the device's memory first (count, time, identity; the clock and "
            "settings stay), so that --serial and --key set up a new device. Without it, a "
            "state file that holds another device is refused.",
        ),
    ] = False,
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve",
            metavar="MODE",
            show_default=False,
            help="Serve the device protocol instead of the interactive panel: stdio, "
            "tcp:PORT (on 127.0.0.1), pty or pty:LINKPATH (prints the serial device path).",
        ),
    ] = None,
    serial: Annotated[
        str | None,
        typer.Option(
            "--serial",
            metavar="SERIAL",
            show_default=False,
            help="Set up a blank device: its serial. A state file that holds another device "
            "is refused (see --reset-state); the same device is simply opened.",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar=KEY_ENV,
            metavar="HEX",
            show_default=False,
            help=f"Set up a blank device: its key, 32 hex characters (or {KEY_ENV}). "
            "Never printed.",
        ),
    ] = None,
    starting_code: Annotated[
        int | None,
        typer.Option(
            "--starting-code",
            metavar="N",
            show_default=False,
            help="Set up a blank device: its starting code (derived from the key if omitted).",
        ),
    ] = None,
    time_divider: Annotated[
        int,
        typer.Option("--time-divider", metavar="N", help="Set up: time divider (units per day)."),
    ] = 1,
    divider: DividerAliasOption = None,
    restricted: Annotated[
        bool, typer.Option("--restricted", help="Set up: restricted digit mode (keys 1-4).")
    ] = False,
    test_code: Annotated[
        str | None,
        typer.Option(
            "--test-code", metavar="DIGITS", show_default=False, help="Set up: the batch test code."
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", metavar="N", help="Set up: the count to start at.")
    ] = 1,
    waiting: Annotated[
        bool | None,
        typer.Option(
            "--waiting/--no-waiting",
            show_default=False,
            help="Waiting period after invalid tokens (default: as saved, on for a new device).",
        ),
    ] = None,
    tamper: Annotated[
        TamperResponse | None,
        typer.Option(
            "--tamper",
            case_sensitive=False,
            show_default=False,
            help="Response to a tampered clock (default: as saved, report for a new device).",
        ),
    ] = None,
    accept_reset_token: Annotated[
        bool | None,
        typer.Option(
            "--accept-reset-token/--refuse-reset-token",
            show_default=False,
            help="Take the reset token (Counter Sync at count 0), which puts the device back "
            "to count 0; a factory or workshop build only (default: as saved, refused for a "
            "new device).",
        ),
    ] = None,
    firmware: Annotated[
        FirmwareChoice,
        typer.Option(
            "--firmware",
            envvar=FIRMWARE_ENV,
            case_sensitive=False,
            help="The firmware the device runs: paygkit's Python model, or the C device "
            "library (firmware/lib) built with paygkit. The state file suits both.",
        ),
    ] = FirmwareChoice.PYTHON,
) -> None:
    """Run a simulated device whose state persists in a file."""
    mode = parse_serve(serve) if serve is not None else None
    try:
        sim = SimulatedDevice.open(state, firmware=firmware.value)
    except (StorageError, CFirmwareUnavailableError, ValueError) as error:
        # ValueError: a settings file the firmware cannot run on (SimulatorFileError among
        # them); checked input, no key in it.
        raise _fail(str(error)) from None
    except OSError as error:
        raise _fail(f"cannot open the state file {state}: {error.strerror or error}") from None
    # The memory file holds the device key in clear text once the device is set up (here
    # with --serial, or later over the protocol, e.g. by `paygkit factory flash`).
    warned = _holds_key(sim)
    try:
        config = _config(sim.config, waiting, tamper, accept_reset_token)
        if config is not None:
            sim.configure(config)
        if reset_state:
            sim.wipe()
        _provision_on_start(
            sim,
            state=state,
            serial=serial,
            key=key,
            starting_code=starting_code,
            divider=time_divider_of(time_divider, divider),
            restricted=restricted,
            test_code=test_code,
            count=count,
        )
        if not warned and _holds_key(sim):
            warned = warn_if_in_git_work_tree(state, "a device key")
        if mode is None:
            run_interactive(sim, Console(highlight=False))
        else:
            _serve(sim, mode)
    except (StorageError, ServeError) as error:
        raise _fail(str(error)) from None
    except ValueError as error:
        # ProvisioningError and the token layer's errors: checked input, no key in them.
        raise _fail(str(error)) from None
    finally:
        warned = warned or not _holds_key(sim)
        sim.close()
        if not warned:
            warn_if_in_git_work_tree(state, "a device key")
    sys.stdout.flush()
