"""`paygkit server ...`: set up and run the token server, and use it from a terminal.

    paygkit server init                      database, master key, first admin API key
    paygkit server run                       init if needed, then serve HTTP (uvicorn)
    paygkit server api-key create --role R   a new API key (shown once)
    paygkit server import devices.csv        import the factory's device list (--dry-run)
    paygkit server token SERIAL --days 7     issue tokens as the local admin
    paygkit server rotate-master-key         re-encrypt every device key under a new key

The database is `--database` or PAYGKIT_DATABASE_URL (default: the SQLite file
./paygkit.db); the master key is PAYGKIT_MASTER_KEY or the file
`--master-key-file` / PAYGKIT_MASTER_KEY_FILE (default ./paygkit-master.key,
created with mode 0600 by init).  The server's modules are imported inside the
commands, so the rest of the CLI works without the `server` extra installed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from paygkit.server.config import Settings
    from paygkit.server.crypto import Keyring
    from paygkit.server.db import Database

USAGE_EXIT_CODE = 2
DEFAULT_TENANT = "default"

app = typer.Typer(
    name="server",
    help=(
        "The token server: devices, tokens, payments, roles and audit over HTTP. "
        "SQLite (./paygkit.db) by default, PostgreSQL with --database or PAYGKIT_DATABASE_URL."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
api_key_app = typer.Typer(name="api-key", help="API keys (stored hashed; shown once).")
app.add_typer(api_key_app, name="api-key")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="SQLAlchemy URL, e.g. postgresql://user@host/db [env PAYGKIT_DATABASE_URL; "
        "default sqlite:///./paygkit.db]",
        show_default=False,
    ),
]
MasterKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--master-key-file",
        help="file holding the master key [env PAYGKIT_MASTER_KEY_FILE; "
        "default ./paygkit-master.key]",
        show_default=False,
    ),
]
TenantOption = Annotated[str, typer.Option("--tenant", help="the tenant to act for")]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    text = escape(message.replace("\n", " "))
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]Error: {text}[/]")
    return typer.Exit(USAGE_EXIT_CODE)


def _settings(database: str | None, master_key_file: Path | None) -> Settings:
    try:
        from paygkit.server.config import Settings
    except ImportError as error:  # pragma: no cover - depends on the install
        raise _fail(
            f"the server needs its extra dependencies ({error.name} is missing): "
            "pip install 'paygkit[server]'"
        ) from None
    return Settings.from_env(database_url=database, master_key_file=master_key_file)


def _errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    from paygkit.factory.devicelist import DeviceListError
    from paygkit.server.crypto import MasterKeyError
    from paygkit.server.services import ServiceError

    return (ServiceError, MasterKeyError, DeviceListError, SQLAlchemyError, OSError)


def _open(settings: Settings, *, create_key: bool) -> tuple[Database, Keyring, bool]:
    from paygkit.server.crypto import ensure_keyring, load_keyring
    from paygkit.server.db import Database

    if create_key:
        keyring, created = ensure_keyring(settings.master_key_file, settings.master_key_hex)
    else:
        keyring, created = load_keyring(settings.master_key_file, settings.master_key_hex), False
    db = Database(settings.database_url)
    return db, keyring, created


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def initialise(settings: Settings, tenant: str, console: Console) -> tuple[Database, Keyring]:
    """Master key, migrations, tenant, and a first admin key when there is no key at all."""
    from paygkit.server.models import Role
    from paygkit.server.services import access

    db, keyring, created = _open(settings, create_key=True)
    if created:
        console.print(
            f"Created the master key [bold]{escape(str(settings.master_key_file))}[/] "
            "(mode 0600). Back it up: without it the device keys cannot be read."
        )
    applied = db.migrate()
    if applied:
        console.print(
            f"Database {escape(_shown_url(settings.database_url))}: applied migrations "
            f"{', '.join(applied)}"
        )
    with db.write() as session:
        first = not access.has_api_keys(session)
        actor = access.local_actor(session, tenant, _now())
        new = (
            access.create_api_key(session, actor, Role.ADMIN, "first admin", _now())
            if first
            else None
        )
    if new is not None:
        console.print(
            "First admin API key (shown once; create more with "
            "'paygkit server api-key create --role admin'):"
        )
        console.print(f"  [bold green]{new.key}[/]")
    return db, keyring


@app.command()
def init(
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Create the master key (0600) if there is none, apply migrations, make a first admin key."""
    settings = _settings(database, master_key_file)
    console = _console()
    try:
        db, _ = initialise(settings, tenant, console)
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    console.print(f"Ready: {escape(_shown_url(settings.database_url))}")


@app.command()
def run(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="server processes")] = 1,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Start the HTTP server (initialising the database and master key on first run)."""
    import uvicorn

    settings = _settings(database, master_key_file)
    console = _console()
    try:
        db, _ = initialise(settings, tenant, console)
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    os.environ.update(settings.to_env())
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(
        f"paygkit server on [bold]http://{shown}:{port}[/] "
        f"(web console: http://{shown}:{port}/console/, API docs: http://{shown}:{port}/docs), "
        "database "
        f"{escape(_shown_url(settings.database_url))}, {workers} process(es). Ctrl-C stops."
    )
    sys.stdout.flush()
    uvicorn.run(
        "paygkit.server.api:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@api_key_app.command("create")
def api_key_create(
    role: Annotated[str, typer.Option(help="admin, operator, technician or viewer")],
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "cli",
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Create an API key and print it (only its hash is stored)."""
    from paygkit.server.services import access

    settings = _settings(database, master_key_file)
    try:
        db, _, _ = _open(settings, create_key=True)
        db.migrate()
        parsed = access.parse_role(role)
        with db.write() as session:
            actor = access.local_actor(session, tenant, _now())
            new = access.create_api_key(session, actor, parsed, name, _now())
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    typer.echo(new.key)
    Console(stderr=True, highlight=False).print(
        f"{parsed.value} key {new.record.id} for tenant {escape(tenant)}: shown once, keep it safe."
    )


@app.command("import")
def import_devices(
    path: Annotated[Path, typer.Argument(help="the device list CSV (or JSON) of the factory")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report only, change nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Import devices: all or nothing, duplicates refused, re-importing a file is harmless."""
    from paygkit.server.services import access, importer

    settings = _settings(database, master_key_file)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read {path}: {error}") from None
    try:
        db, keyring, _ = _open(settings, create_key=True)
        db.migrate()
        with db.write() as session:
            actor = access.local_actor(session, tenant, _now())
            report = importer.import_devices(session, actor, keyring, text, _now(), dry_run=dry_run)
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(1)


def _print_report(report: dict[str, Any]) -> None:
    console = _console()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("Serial")
    table.add_column("Status")
    table.add_column("Note")
    styles = {"new": "green", "unchanged": "dim", "refused": "red"}
    for row in report["devices"]:
        status = row["status"]
        table.add_row(
            escape(row["serial"]), f"[{styles[status]}]{status}[/]", escape(row.get("message", ""))
        )
    if report["devices"]:
        console.print(table)
    for kind, items in (("problem", report["problems"]), ("warning", report["warnings"])):
        for item in items:
            where = ", ".join(
                part
                for part in (
                    f"row {item['row']}" if item["row"] is not None else "",
                    f"column {item['column']}" if item["column"] else "",
                )
                if part
            )
            colour = "red" if kind == "problem" else "yellow"
            console.print(
                f"[{colour}]{kind}[/] {escape(where or 'file')}: {escape(item['message'])}"
            )
    if report["ok"]:
        verb = "would import" if report["dry_run"] else "imported"
        count = report["new"] if report["dry_run"] else report["imported"]
        console.print(f"[green]OK[/]: {verb} {count} device(s), {report['unchanged']} unchanged.")
    else:
        console.print(
            f"[red]Refused[/]: nothing imported ({len(report['problems'])} problem(s), "
            f"{report['refused']} refused device(s)); fix the file and import it again."
        )


@app.command()
def token(
    serial: Annotated[str, typer.Argument(help="the device's serial number")],
    days: Annotated[str | None, typer.Option(help="add this many days (Add Time)")] = None,
    set_days: Annotated[
        str | None, typer.Option("--set-days", help="set the time left to this many days")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="active until this date (YYYY-MM-DD, end of day UTC)")
    ] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Disable PAYG (unlock)")] = False,
    sync: Annotated[bool, typer.Option("--sync", help="a Counter Sync token")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the answer as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Issue tokens for a device as the local admin (recorded and audited like the API)."""
    from paygkit.server.api import parse_time
    from paygkit.server.models import Role
    from paygkit.server.services import access, tokens

    chosen = [
        name
        for name, given in (
            ("--days", days is not None),
            ("--set-days", set_days is not None),
            ("--until", until is not None),
            ("--disable", disable),
            ("--sync", sync),
        )
        if given
    ]
    if len(chosen) != 1:
        raise _fail("give exactly one of --days, --set-days, --until, --disable, --sync")
    settings = _settings(database, master_key_file)
    try:
        if days is not None or set_days is not None:
            text = days if days is not None else set_days
            try:
                amount = Decimal(str(text))
            except InvalidOperation:
                raise _fail(f"days must be a number, got {text!r}") from None
            kind = tokens.IssueKind.ADD_DAYS if days is not None else tokens.IssueKind.SET_DAYS
            spec = tokens.IssueSpec(kind, days=amount)
        elif until is not None:
            spec = tokens.IssueSpec(
                tokens.IssueKind.ACTIVE_UNTIL, until=parse_time(until, "--until")
            )
        elif disable:
            spec = tokens.IssueSpec(tokens.IssueKind.DISABLE_PAYG)
        else:
            spec = tokens.IssueSpec(tokens.IssueKind.COUNTER_SYNC)
        db, keyring, _ = _open(settings, create_key=False)
        db.migrate()
        with db.write() as session:
            # Counter Sync is a technician's task; at the server's terminal the
            # CLI user may act as one.
            role = Role.TECHNICIAN if sync else Role.ADMIN
            actor = access.local_actor(session, tenant, _now(), role)
            outcome = tokens.issue_tokens(
                session, actor, keyring, serial, spec, _now(), source="cli"
            )
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    body = outcome.body
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    console = _console()
    for item in body["tokens"]:
        value = f"{item['days']} day(s)" if item["days"] is not None else ""
        console.print(
            f"[bold]{item['token']}[/]  {item['type']} {value}  count {item['count']}".rstrip()
        )
    device = body["device"]
    console.print(
        f"{escape(serial)}: active until {device['active_until'] or '-'}"
        + ("" if device["payg_enabled"] else " (PAYG disabled)")
    )
    for warning in body["warnings"]:
        console.print(f"[yellow]warning[/]: {escape(warning)}")


@app.command("rotate-master-key")
def rotate_master_key(
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
) -> None:
    """Make a new master key version and re-encrypt every device key and webhook secret."""
    from paygkit.server.crypto import write_private
    from paygkit.server.services import access, keys

    settings = _settings(database, master_key_file)
    if settings.master_key_hex:
        raise _fail(
            "the master key comes from PAYGKIT_MASTER_KEY; rotation rewrites the key file, "
            "so unset it and use --master-key-file"
        )
    try:
        db, old, _ = _open(settings, create_key=False)
        db.migrate()
        both = old.with_new_version()
        # Both versions on disk first: a crash in between leaves every row readable.
        write_private(settings.master_key_file, both.dump())
        new = both.only_current()
        with db.write() as session:
            actor = access.local_actor(session, DEFAULT_TENANT, _now())
            count = keys.reseal_all(session, both, new, actor, _now())
        write_private(settings.master_key_file, new.dump())
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    _console().print(
        f"Master key version {new.current_version}: {count} device key(s) re-encrypted; "
        f"{escape(str(settings.master_key_file))} now holds only the new version. Back it up."
    )
