"""`paygkit demo`: a token round trip on the first published test device."""

from __future__ import annotations

import time
from collections.abc import Sequence

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paygkit.cli.commands import HELP_MARKUP, SUBCOMMANDS
from paygkit.token import (
    DecodeResult,
    DeviceParams,
    GeneratedToken,
    TokenType,
    days_text,
    decode,
    default_backend,
    generate,
    group_digits,
)

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


def demo() -> None:
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


# One command: `paygkit.cli.main` loads it as `paygkit demo` when it runs.
app = typer.Typer(
    add_completion=False, pretty_exceptions_show_locals=False, rich_markup_mode=HELP_MARKUP
)
app.command("demo", help=SUBCOMMANDS["demo"].help)(demo)
