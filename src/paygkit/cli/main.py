"""The `paygkit` application: the `token` commands, `demo` and `--version`.

Input errors end the program with one red line on stderr and exit status 2,
never a traceback, and no message ever contains a key.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from paygkit import __version__
from paygkit.cli import certify_cmd, device_cmd, factory_cmd, server_cmd, token_cmd
from paygkit.token import (
    DecodeResult,
    DeviceParams,
    GeneratedToken,
    TokenError,
    TokenType,
    days_text,
    decode,
    default_backend,
    generate,
    group_digits,
    hide_keys,
)

USAGE_EXIT_CODE = 2


def _fail(message: str, hint: str | None = None) -> None:
    """Print one red line on stderr (no wrapping, no markup from the message)."""
    text = hide_keys(message.strip().replace("\n", " "))
    if hint:
        text += f" ({hint})"
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]Error: {escape(text)}[/]")


def _click_failure(error: Exception) -> tuple[str, str | None, int] | None:
    """Message, hint and exit code of a click/typer usage error, else None.

    Duck-typed so it works whether typer vendors click or depends on it.
    """
    format_message = getattr(error, "format_message", None)
    exit_code = getattr(error, "exit_code", None)
    if not callable(format_message) or not isinstance(exit_code, int):
        return None
    ctx = getattr(error, "ctx", None)
    command_path = getattr(ctx, "command_path", None)
    hint = f"see '{command_path} --help'" if isinstance(command_path, str) else None
    return str(format_message()), hint, exit_code


def _help_without_flag_types() -> None:
    """Show on/off options in the help without a value type.

    typer 0.2x writes a flag's Python type next to it (`--force <bool>`, `--help <bool>`),
    as if it took a value: someone reading the help then types `--force true`, which fails.
    A flag takes no value, so its type column stays empty (click's plain help does the same).
    typer builds every option, --help included, from one class, so this is done once here.
    """
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if option is None or shown is None or getattr(shown, "flags_untyped", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        result: str | None = shown(self, ctx)
        return result

    display_type_rich.flags_untyped = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_help_without_flag_types()


class OneLineErrorGroup(TyperGroup):
    """The top-level group: turns input errors into one line and exit status 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except TokenError as error:
            _fail(str(error))
            sys.exit(USAGE_EXIT_CODE)
        except typer.Abort:
            _fail("aborted")
            sys.exit(1)
        except Exception as error:
            failure = _click_failure(error)
            if failure is None:
                raise
            message, hint, exit_code = failure
            if type(error).__name__ == "NoArgsIsHelpError":
                # The help has been printed already (or is the message).
                if message.strip():
                    typer.echo(message)
                sys.exit(0)
            _fail(message, hint)
            sys.exit(exit_code)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="paygkit",
    cls=OneLineErrorGroup,
    help=(
        "paygkit: an open toolkit for pay-as-you-go devices built on OpenPAYGO Token.\n\n"
        f"Commands that need a device key read it from --key or from the environment "
        f"variable {token_cmd.KEY_ENV}; keys are never printed."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(token_cmd.app, name="token")
app.add_typer(device_cmd.app, name="device")
app.add_typer(factory_cmd.app, name="factory")
app.add_typer(server_cmd.app, name="server")
app.command("certify")(certify_cmd.certify)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paygkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """paygkit: OpenPAYGO Token tools for pay-as-you-go devices."""


# --- demo ------------------------------------------------------------------------------------

DEMO_KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
DEMO_STARTING_CODE = 516959010
DEMO_SERIAL = "TEST220000001"


def _mistype(digits: str) -> str:
    """The token with one digit in the middle changed, as a typing slip would."""
    middle = len(digits) // 2
    return digits[:middle] + str((int(digits[middle]) + 1) % 10) + digits[middle + 1 :]


def _result_text(result: DecodeResult) -> str:
    if result.token_type.carries_value and result.days is not None:
        return f"{result.token_type.name} {days_text(result.days)}"
    return result.token_type.name


def _counts_text(counts: Sequence[int]) -> str:
    """'0-4,6': sorted counts with consecutive runs shortened."""
    runs: list[list[int]] = []
    for count in sorted(counts):
        if runs and count == runs[-1][1] + 1:
            runs[-1][1] = count
        else:
            runs.append([count, count])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "-"


def _state_text(result: DecodeResult) -> str:
    return f"last {result.last_count} used {_counts_text(result.used_counts)}"


def _short_value(token: GeneratedToken) -> str:
    if token.days is not None:
        return days_text(token.days)
    return str(998 if token.token_type is TokenType.DISABLE_PAYG else 999)


@app.command()
def demo() -> None:
    """Run a token round trip on the first published test device."""
    started = time.perf_counter()
    console = Console(highlight=False)
    device = DeviceParams.create(DEMO_KEY, DEMO_STARTING_CODE)
    backend = default_backend()

    plan: list[tuple[TokenType, int | None]] = [
        (TokenType.ADD_TIME, 7),
        (TokenType.SET_TIME, 30),
        (TokenType.ADD_TIME, 1),
        (TokenType.DISABLE_PAYG, None),
        (TokenType.COUNTER_SYNC, None),
    ]
    # The server: each token is made from the count of the previous one.
    made: list[GeneratedToken] = []
    count = 1
    for token_type, days in plan:
        token = generate(device, count=count, token_type=token_type, days=days, backend=backend)
        made.append(token)
        count = token.count

    # The device: each token is entered in order on its stored counter state.
    last_count = 1
    used_counts: tuple[int, ...] = ()
    rows: list[tuple[str, str, str, str, str, DecodeResult]] = []
    for number, token in enumerate(made, start=1):
        result = decode(
            device, token.grouped, last_count=last_count, used_counts=used_counts, backend=backend
        )
        last_count, used_counts = result.last_count, result.used_counts
        rows.append(
            (
                str(number),
                token.grouped,
                token.token_type.label,
                _short_value(token),
                str(token.count),
                result,
            )
        )
    # Re-entering the first token, then the third one with a typing slip.
    old = made[0]
    again = decode(device, old.grouped, last_count=last_count, used_counts=used_counts)
    rows.append(("", old.grouped, "#1 again", "", str(old.count), again))
    slip_digits = _mistype(made[2].digits)
    slip = decode(device, slip_digits, last_count=last_count, used_counts=used_counts)
    rows.append(("", group_digits(slip_digits), "#3 mistyped", "", "", slip))
    elapsed_ms = (time.perf_counter() - started) * 1000

    console.print(
        f"[bold]paygkit demo[/]: device {DEMO_SERIAL}, starting code "
        f"{group_digits(f'{DEMO_STARTING_CODE:09d}')}, time divider 1; "
        "server and device both start at count 1. Tokens are made in order, then "
        "entered on the device in order."
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("#", justify="right")
    table.add_column("Token", no_wrap=True, style="bold")
    table.add_column("Type")
    table.add_column("Value")
    table.add_column("Count", justify="right")
    table.add_column("Device result")
    table.add_column("Device state")
    for label, grouped, type_label, value, token_count, result in rows:
        style = "green" if result.accepted else "red"
        table.add_row(
            label,
            grouped,
            type_label,
            value,
            token_count,
            f"[{style}]{escape(_result_text(result))}[/]",
            _state_text(result),
        )
    console.print()
    console.print(table)
    console.print("Device state: the last count and used counts the device stores afterwards.")
    console.print(
        f"Chain backend: [bold]{backend.name}[/] (paygkit.token.default_backend()); "
        f"{len(made) + 2} decodes and {len(made)} tokens in {elapsed_ms:.1f} ms"
    )
    console.print(
        "See how a token is made (this is the published test key, not a secret): "
        f"paygkit token explain --key {DEMO_KEY} --starting-code {DEMO_STARTING_CODE} "
        "--count 1 --units 1"
    )
