"""`paygkit certify`: run the certification procedure against a device, or print the sheet.

The device is given by `--target` (`sim:` for the built-in simulator,
`tcp:HOST:PORT`, a pty or serial port path) and its parameters by a row of
the device list (`--csv FILE --serial S`) or by options.  The run prints one
line per case and a summary, and writes the reports asked for (HTML, JUnit
XML, JSON).  Exit status: 0 when no case failed, 1 when one did, 2 when the
run could not start (bad parameters, no device, a device at another count).

`--manual` prints the procedure as a sheet (HTML and CSV) for a person to
follow on a device that only has a keypad.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paygkit.certify import (
    SUITES,
    CertificationError,
    CertParams,
    ParamsError,
    Runner,
    SelectionError,
    params_from_device_list,
    select_cases,
)
from paygkit.certify.cases import Case
from paygkit.certify.params import DEFAULT_SEQUENCE_LENGTH
from paygkit.certify.report import (
    case_line,
    junit_xml,
    print_summary,
    report_html,
    report_json,
)
from paygkit.certify.sheet import (
    build_sheet,
    sheet_csv,
    sheet_html,
    time_needed_text,
    time_summary,
)
from paygkit.cli.commands import HELP_MARKUP, KEY_ENV, SUBCOMMANDS
from paygkit.cli.token_cmd import DividerAliasOption, time_divider_of
from paygkit.device.host import LinkError, open_link
from paygkit.token import hide_keys

USAGE_EXIT_CODE = 2
FAILED_EXIT_CODE = 1
DEFAULT_SHEET_HTML = Path("certification-sheet.html")
DEFAULT_SHEET_CSV = Path("certification-sheet.csv")

# Options that a device-list row replaces; giving them with --csv is a mistake.  Not
# --count: the row holds the factory's count, and a device that was certified or used
# is at another one.
_ROW_OPTIONS = ("key", "starting_code", "time_divider", "divider", "restricted")


def _fail(message: str) -> typer.Exit:
    text = escape(hide_keys(message.replace("\n", " ")))
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]Error: {text}[/]")
    return typer.Exit(USAGE_EXIT_CODE)


class ConsoleOperator:
    """The person at the device: told what to do, answers when it is done (or skips)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def perform(self, instruction: str) -> bool:
        self.console.print(f"[bold yellow]Operator:[/] {escape(instruction)}.")
        answer: str = typer.prompt(
            "Press Enter when done, or type s and Enter to skip this case",
            default="",
            show_default=False,
        )
        return answer.strip().lower() not in ("s", "skip")


def _given_on_command_line(ctx: typer.Context, name: str) -> bool:
    # A key in the environment is fine with --csv: the row's key is used.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _listed_serial(csv_file: Path, typed: str) -> str | None:
    """The serial as the device list spells it, for one typed in another case; else None."""
    # Imported here, as in params_from_device_list: only --csv needs the factory's reader.
    from paygkit.device.serial_number import serial_matches
    from paygkit.factory.devicelist import DeviceListError, read_device_list

    try:
        report = read_device_list(csv_file)
    except DeviceListError:
        return None  # params_from_device_list has said what is wrong with the list
    matches = serial_matches(typed, [record.serial for record in report.records])
    if len(matches) > 1:
        raise _fail(
            f"{typed!r} names {len(matches)} devices of {csv_file} that differ only in case "
            f"({', '.join(matches[:5])}); give --serial exactly as in the list"
        )
    if len(matches) == 1 and matches[0] != typed:
        return matches[0]
    return None


def _params(
    ctx: typer.Context,
    *,
    csv_file: Path | None,
    serial: str | None,
    key: str | None,
    starting_code: int | None,
    divider: int,
    restricted: bool,
    count: int,
    accepts_reset_token: bool,
    seed: int | None,
    sequence_length: int,
    test_code: str | None,
) -> CertParams:
    if csv_file is not None:
        given = [
            "--" + name.replace("_", "-")
            for name in _ROW_OPTIONS
            if _given_on_command_line(ctx, name)
        ]
        if given:
            raise _fail(
                f"{', '.join(given)} cannot be combined with --csv: the device list row gives "
                "the device's parameters"
            )
        if not serial:
            raise _fail("--csv needs --serial: the serial number of the device to certify")
        try:
            row = params_from_device_list(
                csv_file,
                serial,
                accepts_reset_token=accepts_reset_token,
                seed=seed,
                sequence_length=sequence_length,
            )
        except ParamsError:
            # The list is read again only when the serial as typed is not in it.
            listed = _listed_serial(csv_file, serial)
            if listed is None:
                raise
            row = params_from_device_list(
                csv_file,
                listed,
                accepts_reset_token=accepts_reset_token,
                seed=seed,
                sequence_length=sequence_length,
            )
        if _given_on_command_line(ctx, "count"):
            return dataclasses.replace(row, count=count)
        return row
    if not key:
        raise _fail(
            f"give the device's parameters: --csv FILE --serial S, or --key (or {KEY_ENV}) "
            "with --starting-code, --time-divider, --restricted and --count as needed"
        )
    return CertParams.create(
        key,
        starting_code,
        time_divider=divider,
        restricted=restricted,
        count=count,
        serial=serial,
        test_code=test_code,
        accepts_reset_token=accepts_reset_token,
        seed=seed,
        sequence_length=sequence_length,
    )


def _list_cases(console: Console, cases: Sequence[Case]) -> None:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Case", no_wrap=True)
    table.add_column("Suite", no_wrap=True)
    table.add_column("Title")
    table.add_column("What it checks and why")
    for case in cases:
        table.add_row(case.id, case.suite, escape(case.title), escape(case.checks))
    console.print(table)
    console.print("Suites: " + ", ".join(f"{k} ({v})" for k, v in SUITES.items()))


def _write(path: Path, text: str, console: Console, what: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise _fail(f"cannot write the {what} to {path} ({error.strerror or error})") from None
    console.print(f"{what} written to {escape(str(path))}")


def _manual(
    console: Console,
    params: CertParams,
    cases: Sequence[Case],
    html_path: Path | None,
    csv_path: Path | None,
) -> None:
    sheet = build_sheet(params, cases)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Case", no_wrap=True)
    table.add_column("Title")
    table.add_column("Steps", justify="right")
    table.add_column("Time", justify="right")
    for case in sheet.cases:
        table.add_row(
            case.id, escape(case.title), str(len(case.steps)), time_needed_text(case.seconds)
        )
    console.print(table)
    console.print(escape(time_summary(sheet)))
    for case_id, title, why in sheet.left_out:
        console.print(f"[yellow]Not on the sheet[/] {case_id} {escape(title)}: {escape(why)}")
    console.print(
        f"The device must be at count {sheet.start_count} when the operator starts; the "
        f"server's count afterwards is {sheet.end_count}. Random sequence seed {params.seed}."
    )
    if html_path is None and csv_path is None:
        html_path, csv_path = DEFAULT_SHEET_HTML, DEFAULT_SHEET_CSV
    if html_path is not None:
        _write(html_path, sheet_html(sheet), console, "Sheet (HTML)")
    if csv_path is not None:
        _write(csv_path, sheet_csv(sheet), console, "Sheet (CSV)")


def certify(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            "-t",
            metavar="TARGET",
            help=(
                "The device: sim: (built-in simulator), sim:STATEFILE, tcp:HOST:PORT, "
                "pty:PATH or a serial port path (/dev/ttyUSB0)."
            ),
        ),
    ] = "sim:",
    manual: Annotated[
        bool,
        typer.Option(
            "--manual", help="Print the procedure as a sheet (HTML, CSV) for a keypad-only device."
        ),
    ] = False,
    suite: Annotated[
        list[str] | None,
        typer.Option(
            "--suite",
            metavar="NAMES",
            help=(
                f"Suites ({', '.join(SUITES)}) or case ids (G12, WP3) to run; repeat the "
                "option or separate with commas. Default: all."
            ),
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", metavar="NAMES", help="Suites or case ids to leave out."),
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="The device list (CSV or JSON) holding the device; use with --serial.",
        ),
    ] = None,
    serial: Annotated[
        str | None,
        typer.Option("--serial", metavar="SERIAL", help="The device's serial number."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar=KEY_ENV,
            metavar="HEX",
            show_default=False,
            help=f"The device key, 32 hex characters (better: {KEY_ENV}). Never printed.",
        ),
    ] = None,
    starting_code: Annotated[
        int | None,
        typer.Option(
            "--starting-code",
            metavar="N",
            show_default=False,
            help="The 9-digit starting code; derived from the key when left out.",
        ),
    ] = None,
    time_divider: Annotated[
        int, typer.Option("--time-divider", metavar="N", help="Value units per day.")
    ] = 1,
    divider: DividerAliasOption = None,
    restricted: Annotated[
        bool, typer.Option("--restricted", help="The device uses restricted digits (keys 1-4).")
    ] = False,
    count: Annotated[
        int,
        typer.Option(
            "--count",
            metavar="N",
            help=(
                "The count the device must be at. Default: the count the device shows "
                "(STATUS); a blank device is set up at the device list's Count, or 1."
            ),
        ),
    ] = 1,
    test_code: Annotated[
        str | None,
        typer.Option(
            "--test-code", metavar="DIGITS", help="The batch test code (set up on a blank device)."
        ),
    ] = None,
    accepts_reset_token: Annotated[
        bool,
        typer.Option(
            "--accepts-reset-token",
            help=(
                "The firmware is configured to take the reset token while its count is below "
                "64, as the reference does (leaves out case CS0). paygkit devices refuse it."
            ),
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            metavar="N",
            show_default=False,
            help=(
                "The seed of the random sequence (case RS1), to replay a run's sequence; "
                "a new one is chosen and reported when left out."
            ),
        ),
    ] = None,
    sequence_length: Annotated[
        int,
        typer.Option(
            "--sequence-length",
            metavar="N",
            help="Entries in the random sequence (case RS1); more for a release run.",
        ),
    ] = DEFAULT_SEQUENCE_LENGTH,
    keypad: Annotated[
        bool,
        typer.Option("--keypad", help="Enter tokens key by key (KEYS) instead of whole (TOKEN)."),
    ] = False,
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive",
            help=(
                "On a real device, ask the operator to let time pass and to switch the "
                "device off and on, instead of skipping those cases."
            ),
        ),
    ] = False,
    report_html_path: Annotated[
        Path | None,
        typer.Option("--report-html", metavar="FILE", help="Write the report as HTML."),
    ] = None,
    junit_path: Annotated[
        Path | None,
        typer.Option("--junit", metavar="FILE", help="Write the report as JUnit XML."),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Write the report as JSON."),
    ] = None,
    sheet_html_path: Annotated[
        Path | None,
        typer.Option(
            "--sheet-html",
            metavar="FILE",
            help=f"With --manual: the HTML sheet (default {DEFAULT_SHEET_HTML}).",
        ),
    ] = None,
    sheet_csv_path: Annotated[
        Path | None,
        typer.Option(
            "--sheet-csv",
            metavar="FILE",
            help=f"With --manual: the CSV sheet (default {DEFAULT_SHEET_CSV}).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="S", help="Seconds to wait for each answer."),
    ] = 5.0,
    list_cases: Annotated[
        bool, typer.Option("--list", help="List the cases, what each checks and why, and exit.")
    ] = False,
) -> None:
    # The help is SUBCOMMANDS["certify"].help (see `app` below).
    console = Console(highlight=False)
    try:
        cases = select_cases(suite or (), skip or ())
    except SelectionError as error:
        raise _fail(str(error)) from None
    if list_cases:
        _list_cases(console, cases)
        return
    try:
        params = _params(
            ctx,
            csv_file=csv_file,
            serial=serial,
            key=key,
            starting_code=starting_code,
            divider=time_divider_of(time_divider, divider),
            restricted=restricted,
            count=count,
            accepts_reset_token=accepts_reset_token,
            seed=seed,
            sequence_length=sequence_length,
            test_code=test_code,
        )
    except ParamsError as error:
        raise _fail(str(error)) from None
    if manual:
        _manual(console, params, cases, sheet_html_path, sheet_csv_path)
        return
    if timeout <= 0:
        raise _fail("--timeout must be a positive number of seconds")

    operator = ConsoleOperator(console) if interactive else None
    from_device = not _given_on_command_line(ctx, "count")
    where = (
        "starting from the count the device shows"
        if from_device
        else f"the device must be at count {params.count}"
    )
    console.print(
        f"Certifying {escape(target)} ({len(cases)} cases); {where}. Random sequence seed "
        f"{params.seed} (--seed {params.seed} replays it)."
    )
    try:
        with open_link(target, timeout=timeout) as link:
            runner = Runner(
                link,
                params,
                entry="keys" if keypad else "token",
                operator=operator,
                on_case=lambda result: console.print(case_line(result)),
                count_from_device=from_device,
            )
            report = runner.run(cases)
    except (CertificationError, LinkError) as error:
        raise _fail(str(error)) from None
    console.print()
    if runner.params.count != params.count:
        console.print(
            f"The device was at count {runner.params.count} (read with STATUS): the procedure "
            "started there."
        )
    if runner.stopped is not None:
        console.print(f"[bold red]Stopped[/]: {escape(runner.stopped)}.")
    print_summary(report, console, table=False)
    if report.device_count is not None:
        console.print(
            f"The device is left at count {report.device_count}: a next run starts from the "
            f"count the device shows (or give --count {report.device_count})."
        )
    if report_html_path is not None:
        _write(report_html_path, report_html(report), console, "HTML report")
    if junit_path is not None:
        _write(junit_path, junit_xml(report), console, "JUnit XML report")
    if json_path is not None:
        _write(json_path, report_json(report), console, "JSON report")
    if not report.passed:
        raise typer.Exit(FAILED_EXIT_CODE)


# One command: `paygkit.cli.main` loads it as `paygkit certify` when it runs.
app = typer.Typer(
    add_completion=False, pretty_exceptions_show_locals=False, rich_markup_mode=HELP_MARKUP
)
app.command("certify", help=SUBCOMMANDS["certify"].help)(certify)
