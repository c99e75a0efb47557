"""`paygkit factory ...`: batch provisioning, device-list checks, encryption and flashing.

- `batch N`: the parameters of N new devices, as the standard CSV or JSON,
  optionally encrypted for transport.
- `verify FILE`: checks a device list against the rules and prints a summary
  (never a key); exit status 1 when it has problems.
- `flash --csv FILE --port TARGET`: sets up devices over the device protocol,
  serial by serial as they are scanned, with read-back and a log.
- `encrypt` / `decrypt`: the encrypted container (paygkit.factory.sealed);
  `new-key-file` makes a key file for it.

Passwords come from the environment variable PAYGKIT_FACTORY_PASSWORD or a
hidden prompt, never from the command line (it shows in process lists).
Input errors end with one red line and exit status 2.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from paygkit.cli.commands import FACTORY_PASSWORD_ENV, HELP_MARKUP, SUBCOMMANDS, PlainHelpGroup
from paygkit.cli.keyfiles import warn_if_in_git_work_tree
from paygkit.cli.token_cmd import DividerAliasOption, time_divider_of
from paygkit.device.host import LinkError
from paygkit.factory.batch import (
    DEFAULT_DIGITS,
    DEFAULT_TEST_CODE_COUNTS,
    BatchError,
    BatchSpec,
    CountStart,
    auto_test_code,
    can_collide,
    collisions_with_test_code,
    make_batch,
)
from paygkit.factory.devicelist import (
    DeviceListError,
    DeviceListReport,
    DeviceRecord,
    device_list_csv,
    device_list_json,
    read_device_list,
    write_private,
)
from paygkit.factory.flash import FlashLog, FlashOptions, FlashStation, Result, yes_or_no
from paygkit.factory.sealed import (
    Content,
    SealError,
    looks_sealed,
    new_key_file,
    read_key_file,
    seal,
    unseal,
)
from paygkit.token import hide_keys

USAGE_EXIT_CODE = 2
PASSWORD_ENV = FACTORY_PASSWORD_ENV
PROGRESS_FROM = 5000  # devices; smaller batches are done before a bar would show

app = typer.Typer(
    name="factory",
    help=SUBCOMMANDS["factory"].help,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
    cls=PlainHelpGroup,
)


class OutputFormat(StrEnum):
    csv = "csv"
    json = "json"


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    text = escape(hide_keys(message.replace("\n", " ")))
    _err().print(f"[red]Error: {text}[/]")
    return typer.Exit(USAGE_EXIT_CODE)


def _note(message: str, style: str = "") -> None:
    text = escape(message)
    _err().print(f"[{style}]{text}[/]" if style else text)


def _password(confirm: bool) -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise _fail(f"a password is needed: set {PASSWORD_ENV} (no terminal to ask on)")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True)
    if len(password) < 12 and confirm:
        _note("warning: a password of fewer than 12 characters is easy to guess", "yellow")
    return password


def _secret(
    password: bool, key_file: Path | None, *, confirm: bool
) -> tuple[str | None, bytes | None]:
    if password and key_file is not None:
        raise _fail("give --password or --key-file, not both")
    try:
        key = read_key_file(key_file) if key_file is not None else None
    except SealError as error:
        raise _fail(str(error)) from None
    return (_password(confirm) if password else None), key


def _write_output(output: str, data: bytes, overwrite: bool) -> None:
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    path = Path(output)
    if path.exists() and not overwrite:
        raise _fail(f"{path} exists; choose another -o file or add --overwrite")
    try:
        write_private(path, data)
    except OSError as error:
        raise _fail(f"cannot write {path} ({error.strerror or error})") from None


def _load(path: Path, password: bool, key_file: Path | None) -> DeviceListReport:
    """A device list file, decrypted first if it is encrypted."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _fail(f"cannot read {path} ({error.strerror or error})") from None
    try:
        if looks_sealed(data):
            secret_password, key = _secret(password, key_file, confirm=False)
            if secret_password is None and key is None:
                secret_password = _password(confirm=False)
            data = unseal(data, password=secret_password, key=key).data
        return read_device_list(data)
    except (SealError, DeviceListError) as error:
        raise _fail(str(error)) from None


PasswordFlag = Annotated[
    bool,
    typer.Option(
        "--password",
        help=f"The file is encrypted with a password: read it from {PASSWORD_ENV} or ask.",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", metavar="FILE", show_default=False, help="The 32-byte key file."),
]
OverwriteFlag = Annotated[
    bool, typer.Option("--overwrite", help="Replace the output file if it exists.")
]


# --- batch -------------------------------------------------------------------------------------


@app.command("batch")
def batch_command(
    quantity: Annotated[int, typer.Argument(metavar="N", help="How many devices.")],
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix", metavar="TEXT", show_default=False, help="Serial number prefix, e.g. SLT22."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            show_default=False,
            help="Where to write the list ('-' for stdout). It holds keys: keep it safe.",
        ),
    ],
    digits: Annotated[
        int, typer.Option("--digits", metavar="N", help="Digits after the prefix.")
    ] = DEFAULT_DIGITS,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state-file",
            metavar="FILE",
            show_default=False,
            help="The serial state file: serials continue from the last one issued.",
        ),
    ] = None,
    first_number: Annotated[
        int | None,
        typer.Option(
            "--first-number",
            metavar="N",
            show_default=False,
            help="Number of the first serial (must be above any issued).",
        ),
    ] = None,
    count_start: Annotated[
        str,
        typer.Option(
            "--count-start", metavar="1|random", help="Starting count: 1, or random 1-10."
        ),
    ] = "1",
    time_divider: Annotated[
        int,
        typer.Option("--time-divider", metavar="N", help="Time divider (units per day), 1-255."),
    ] = 1,
    divider: DividerAliasOption = None,
    restricted: Annotated[
        bool, typer.Option("--restricted", help="Restricted digit mode (keys 1-4).")
    ] = False,
    model: Annotated[str, typer.Option("--model", metavar="TEXT", help="Hardware model.")] = "",
    version: Annotated[
        str, typer.Option("--version", metavar="TEXT", help="Firmware version.")
    ] = "",
    test_code: Annotated[
        str | None,
        typer.Option(
            "--test-code",
            metavar="DIGITS|auto",
            show_default=False,
            help="Batch test code; 'auto' makes an 8-digit one (not a token length, so it "
            "cannot clash with a token).",
        ),
    ] = None,
    test_code_counts: Annotated[
        int,
        typer.Option(
            "--test-code-counts",
            metavar="N",
            help="Counts past the starting count in which no token may equal the test code.",
        ),
    ] = DEFAULT_TEST_CODE_COUNTS,
    shared_key: Annotated[
        bool,
        typer.Option("--shared-key", help="One key for the whole batch (not recommended)."),
    ] = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", case_sensitive=False, help="Output format.")
    ] = OutputFormat.csv,
    encrypt_password: Annotated[
        bool,
        typer.Option(
            "--encrypt-password",
            help=f"Encrypt the output with a password (from {PASSWORD_ENV} or asked).",
        ),
    ] = False,
    encrypt_key_file: Annotated[
        Path | None,
        typer.Option(
            "--encrypt-key-file",
            metavar="FILE",
            show_default=False,
            help="Encrypt the output with this 32-byte key file.",
        ),
    ] = None,
    overwrite: OverwriteFlag = False,
) -> None:
    """Make the parameters of N new devices (keys from the OS's secure random source)."""
    if count_start not in ("1", "random"):
        raise _fail("--count-start must be 1 or random")
    if output != "-" and Path(output).exists() and not overwrite:
        raise _fail(f"{output} exists; choose another -o file or add --overwrite")
    if output == "-" and sys.stdout.isatty() and not (encrypt_password or encrypt_key_file):
        raise _fail("will not print keys to the terminal; write them to a file with -o FILE")
    password, key = _secret(encrypt_password, encrypt_key_file, confirm=True)
    if test_code is not None and test_code.lower() == "auto":
        test_code = auto_test_code(restricted)
    spec = BatchSpec(
        quantity=quantity,
        prefix=prefix,
        digits=digits,
        count_start=CountStart(count_start),
        time_divider=time_divider_of(time_divider, divider),
        restricted=restricted,
        hardware_model=model,
        version=version,
        test_code=test_code,
        shared_key=shared_key,
        test_code_counts=test_code_counts,
    )
    try:
        spec.check()
        with Progress(
            TextColumn("making devices"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_err(),
            transient=True,
            disable=quantity < PROGRESS_FROM,
        ) as bar:
            task = bar.add_task("batch", total=quantity)
            batch = make_batch(
                spec,
                state_file=state_file,
                first_number=first_number,
                progress=lambda done: bar.update(task, completed=done),
            )
    except BatchError as error:
        raise _fail(str(error)) from None
    if output_format is OutputFormat.csv:
        data = device_list_csv(batch.records).encode("utf-8")
        content = Content.CSV
    else:
        data = device_list_json(batch.records, batch=batch.description()).encode("utf-8")
        content = Content.JSON
    encrypted = ""
    if password is not None or key is not None:
        try:
            data = seal(data, content, password=password, key=key)
        except SealError as error:
            raise _fail(str(error)) from None
        encrypted = ", encrypted with a " + ("password" if password else "key file")
    _write_output(output, data, overwrite)
    for warning in batch.warnings:
        _note(f"warning: {warning}", "yellow")
    where = "stdout" if output == "-" else output
    _note(
        f"{len(batch.records)} devices, {batch.first_serial} to {batch.last_serial}, written "
        f"to {where} ({output_format.value.upper()}{encrypted})",
        "green",
    )
    if test_code is not None:
        redrawn = f"; {batch.redrawn} device(s) got new parameters" if batch.redrawn else ""
        _note(f"test code {test_code}: {batch.test_code_note}{redrawn}")
    if output != "-" and not encrypted:
        warn_if_in_git_work_tree(Path(output), "device keys")


# --- verify ------------------------------------------------------------------------------------


def _shared_keys(records: tuple[DeviceRecord, ...]) -> list[list[str]]:
    groups: dict[bytes, list[str]] = defaultdict(list)
    for record in records:
        groups[record.key].append(record.serial)
    return [serials for serials in groups.values() if len(serials) > 1]


@app.command("verify")
def verify_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The device list (CSV or JSON).")],
    password: PasswordFlag = False,
    key_file: KeyFileOption = None,
    test_code_counts: Annotated[
        int,
        typer.Option(
            "--test-code-counts",
            metavar="N",
            help="Also check that no token of counts 0..count+N equals the test code "
            "(0: do not check).",
        ),
    ] = 0,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", help="Problems and warnings shown, at most.")
    ] = 50,
) -> None:
    """Check a device list against the rules; exit status 1 if it has problems."""
    report = _load(file, password, key_file)
    console = Console(highlight=False, soft_wrap=True)
    records = report.records
    duplicates = sum(1 for p in report.problems if "also on" in p.message)
    shared = _shared_keys(records)
    console.print(f"[bold]{escape(str(file))}[/] ({report.form.upper()})")
    console.print(f"  devices:           {report.rows} rows, {len(records)} without problems")
    console.print(f"  duplicate serials: {duplicates}")
    if shared:
        biggest = max(shared, key=len)
        shown = ", ".join(biggest[:3]) + (", ..." if len(biggest) > 3 else "")
        console.print(
            f"  key reuse:         {sum(len(g) for g in shared)} devices share "
            f"{len(shared)} key(s) (largest group: {len(biggest)} devices: {escape(shown)})"
        )
    else:
        console.print("  key reuse:         none (one key per device)")
    codes = Counter(record.test_code for record in records if record.test_code)
    if codes:
        text = ", ".join(f"{code} ({n})" for code, n in codes.most_common(5))
        console.print(f"  test codes:        {text}")
    clashes: list[str] = []
    if test_code_counts > 0:
        for record in records:
            code = record.test_code
            if code and can_collide(code, record.restricted):
                found = collisions_with_test_code(record, code, counts=test_code_counts)
                if found:
                    counts = ", ".join(map(str, found[:5]))
                    clashes.append(f"{record.serial}: a token at count {counts}")
        console.print(
            f"  test code check:   {len(clashes)} device(s) with a token equal to the test code "
            f"in counts 0..count+{test_code_counts}"
        )
    console.print(f"  problems:          {len(report.problems) + len(clashes)}")
    console.print(f"  warnings:          {len(report.warnings)}")
    shown_problems = [str(p) for p in report.problems] + [
        f"{clash} equals the test code" for clash in clashes
    ]
    if shown_problems:
        console.print("[red]Problems[/]")
        for text in shown_problems[:limit]:
            console.print(f"  {escape(text)}")
        if len(shown_problems) > limit:
            console.print(f"  ... and {len(shown_problems) - limit} more (--limit)")
    if report.warnings:
        console.print("[yellow]Warnings[/]")
        for warning in report.warnings[:limit]:
            console.print(f"  {escape(str(warning))}")
        if len(report.warnings) > limit:
            console.print(f"  ... and {len(report.warnings) - limit} more (--limit)")
    if shown_problems:
        raise typer.Exit(1)
    console.print("[green]OK[/]: the list follows the rules")


# --- encrypt / decrypt / key files -------------------------------------------------------------


@app.command("decrypt")
def decrypt_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The encrypted device list.")],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            show_default=False,
            help="Where to write the plain list ('-' for stdout).",
        ),
    ],
    password: PasswordFlag = False,
    key_file: KeyFileOption = None,
    overwrite: OverwriteFlag = False,
) -> None:
    """Open an encrypted device list (password or key file)."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise _fail(f"cannot read {file} ({error.strerror or error})") from None
    secret_password, key = _secret(password, key_file, confirm=False)
    if secret_password is None and key is None:
        secret_password = _password(confirm=False)
    try:
        opened = unseal(data, password=secret_password, key=key)
    except SealError as error:
        raise _fail(str(error)) from None
    if output == "-" and sys.stdout.isatty():
        raise _fail("will not print keys to the terminal; write them to a file with -o FILE")
    _write_output(output, opened.data, overwrite)
    if output != "-":
        _note(f"decrypted {file} -> {output} ({opened.content.name})", "green")
        warn_if_in_git_work_tree(Path(output), "device keys")


@app.command("encrypt")
def encrypt_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A plain device list.")],
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FILE", show_default=False, help="Output.")
    ],
    password: Annotated[
        bool,
        typer.Option("--password", help=f"Encrypt with a password ({PASSWORD_ENV} or asked)."),
    ] = False,
    key_file: KeyFileOption = None,
    overwrite: OverwriteFlag = False,
) -> None:
    """Encrypt a device list for transport (checked first: only a good list is sealed)."""
    report = _load(file, False, None)
    if not report.ok:
        raise _fail(f"{file} has problems; run paygkit factory verify {file}")
    if not password and key_file is None:
        raise _fail("give --password or --key-file")
    secret_password, key = _secret(password, key_file, confirm=True)
    content = Content.JSON if report.form == "json" else Content.CSV
    try:
        sealed = seal(file.read_bytes(), content, password=secret_password, key=key)
    except SealError as error:
        raise _fail(str(error)) from None
    _write_output(output, sealed, overwrite)
    _note(f"encrypted {file} -> {output}", "green")


@app.command("new-key-file")
def new_key_file_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The key file to create.")],
) -> None:
    """Create a key file (32 random bytes, readable by you only) for --key-file."""
    try:
        new_key_file(file)
    except SealError as error:
        raise _fail(str(error)) from None
    _note(f"wrote {file}; send it to the receiver by another channel than the list", "green")
    warn_if_in_git_work_tree(file, "a transport key")


# --- flash -------------------------------------------------------------------------------------


def _lines() -> Iterator[str]:
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            _err().print("scan or type a serial (quit to stop)> ", end="")
        line = sys.stdin.readline()
        if not line:
            return
        yield line


@app.command("flash")
def flash_command(
    csv_file: Annotated[
        Path,
        typer.Option(
            "--csv", metavar="FILE", show_default=False, help="The device list (CSV or JSON)."
        ),
    ],
    port: Annotated[
        str,
        typer.Option(
            "--port",
            metavar="TARGET",
            show_default=False,
            help="The device: a serial port or pty path, tcp:HOST:PORT, or sim: (testing).",
        ),
    ],
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator", metavar="NAME", show_default=False, help="Who flashes (default: login)."
        ),
    ] = None,
    log: Annotated[
        Path,
        typer.Option(
            "--log", metavar="FILE", help="The flashing log (JSON Lines, or CSV for *.csv)."
        ),
    ] = Path("paygkit-flash-log.jsonl"),
    reference_form: Annotated[
        bool,
        typer.Option(
            "--reference-form",
            help="Send #serial;code;key (reference firmware): divider, restricted, test code "
            "and count take the firmware defaults.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Flash serials the log shows flashed, without asking.")
    ] = False,
    retries: Annotated[
        int, typer.Option("--retries", metavar="N", help="Further attempts after a failure.")
    ] = 2,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="S", help="Seconds to wait for an answer.")
    ] = 5.0,
    password: PasswordFlag = False,
    key_file: KeyFileOption = None,
) -> None:
    """Flash devices: reads serials (scanned or typed, one per line) and sets each one up."""
    if retries < 0 or timeout <= 0:
        raise _fail("--retries must be 0 or more and --timeout above 0")
    report = _load(csv_file, password, key_file)
    if not report.ok:
        raise _fail(
            f"{csv_file} has {len(report.problems)} problem(s), first: {report.problems[0]}; "
            f"run paygkit factory verify {csv_file}"
        )
    if reference_form:
        odd = [
            r.serial
            for r in report.records
            if (r.time_divider, r.restricted, r.test_code, r.count) != (1, False, None, 1)
        ]
        if odd:
            _note(
                f"warning: {len(odd)} device(s) (e.g. {odd[0]}) have settings the reference "
                "form cannot send (divider, restricted, test code or count); their firmware "
                "must be built with them",
                "yellow",
            )
    who = operator or getpass.getuser()
    styles = {"ok": "green", "error": "red", "warn": "yellow", "info": ""}
    lines = _lines()

    def say(text: str, style: str) -> None:
        _note(text, styles.get(style, ""))

    def confirm(question: str) -> bool:
        # On lines of its own, escaped (Rich took "[y/N]" for markup and dropped it), and
        # read straight from stdin: the serial prompt must not land on the question's line.
        console = _err()
        console.print()
        console.print(escape(question), style="bold yellow")
        while True:
            console.print(escape("Type y or n, then Enter [y/N]: "), end="")
            line = sys.stdin.readline()
            if not sys.stdin.isatty():
                console.print()  # nothing echoed the answer's line end
            answer = yes_or_no(line)
            if answer is not None or not line:
                return bool(answer)
            # A barcode scanned onto the question is not a "no": that device would be skipped.
            console.print(
                escape(f"{line.strip()[:40]!r} is not y or n; answer the question first"),
                style="red",
            )

    station = FlashStation(
        report.records,
        port=port,
        operator=who,
        log=FlashLog(log),
        options=FlashOptions(
            retries=retries, reference_form=reference_form, force=force, timeout=timeout
        ),
        say=say,
        confirm=confirm,
    )
    try:
        with station:
            station.connect()  # a wrong --port is said now, not after the first scan
            _note(f"{len(report.records)} devices in {csv_file}; flashing on {port} as {who}")
            summary = station.run(lines)
    except (LinkError, OSError) as error:
        raise _fail(str(error)) from None
    counts = summary.counts
    parts = [f"{counts[result]} {result.value}" for result in Result if counts[result]]
    _note("done: " + (", ".join(parts) or "nothing flashed") + f"; log: {log}")
    if summary.failed:
        raise typer.Exit(1)
