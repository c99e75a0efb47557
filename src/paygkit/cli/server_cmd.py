"""`paygkit server ...`: set up and run the token server, and use it from a terminal.

    paygkit server init                      database, master key, first admin API key
    paygkit server run                       init if needed, then serve HTTP (uvicorn)
    paygkit server api-key create --role R   a new API key (shown once)
    paygkit server api-key list              the tenant's API keys (never the keys themselves)
    paygkit server api-key revoke ID         revoke a key (its console sessions end too)
    paygkit server import devices.csv        import the factory's device list (--dry-run)
    paygkit server token SERIAL --days 7     issue tokens as the local admin
    paygkit server rotate-master-key         re-encrypt every device key under a new key
    paygkit server book create ...           a token book for an agent (see docs/agents.md)
    paygkit server book list | show | sync | close | expire

Everything lives in one data directory, `--data-dir` / PAYGKIT_DATA_DIR
(default: the current directory): the SQLite file paygkit.db and the master key
file paygkit-master.key (both mode 0600).  `--database` / PAYGKIT_DATABASE_URL
and `--master-key-file` / PAYGKIT_MASTER_KEY_FILE (or the key itself in
PAYGKIT_MASTER_KEY) override either.  Only `init` and `run` create a database
or a master key, and a master key only for a database that holds no sealed
row; every command checks that its master key opens the database's rows
before doing anything (paygkit.server.services.keys).  The server's modules
are imported inside the commands, so the rest of the CLI works without the
`server` extra installed.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paygkit.cli.commands import HELP_MARKUP, SUBCOMMANDS, PlainHelpGroup

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from paygkit.server.config import Settings
    from paygkit.server.crypto import Keyring
    from paygkit.server.db import Database
    from paygkit.server.models import Role
    from paygkit.server.services.common import Actor

USAGE_EXIT_CODE = 2
# Where an encrypted device list says how it was encrypted (paygkit.factory.sealed).
_KEY_SOURCE_BYTE = 10
DEFAULT_TENANT = "default"

app = typer.Typer(
    name="server",
    help=SUBCOMMANDS["server"].help,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
    cls=PlainHelpGroup,
)
api_key_app = typer.Typer(
    name="api-key",
    help="API keys (stored hashed; shown once).",
    rich_markup_mode=HELP_MARKUP,
    cls=PlainHelpGroup,
)
app.add_typer(api_key_app, name="api-key")
book_app = typer.Typer(
    name="book",
    help="Token books: tokens made ahead for an agent to hand out offline (docs/agents.md).",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
    cls=PlainHelpGroup,
)
app.add_typer(book_app, name="book")

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
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="directory of the SQLite database paygkit.db and the key file paygkit-master.key "
        "[env PAYGKIT_DATA_DIR; default the current directory]",
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


def _settings(
    database: str | None, master_key_file: Path | None, data_dir: Path | None
) -> Settings:
    try:
        from paygkit.server.config import Settings
    except ImportError as error:  # pragma: no cover - depends on the install
        raise _fail(
            f"the server needs its extra dependencies ({error.name} is missing): "
            "pip install 'paygkit[server]'"
        ) from None
    return Settings.from_env(
        database_url=database, master_key_file=master_key_file, data_dir=data_dir
    )


def _errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    from paygkit.factory.devicelist import DeviceListError
    from paygkit.factory.sealed import SealError
    from paygkit.server.crypto import MasterKeyError
    from paygkit.server.db import NoDatabaseError
    from paygkit.server.services import ServiceError

    return (
        ServiceError,
        MasterKeyError,
        NoDatabaseError,
        DeviceListError,
        SealError,
        SQLAlchemyError,
        OSError,
    )


def _open(settings: Settings, *, create: bool) -> tuple[Database, Keyring, bool, list[str]]:
    """The migrated database and its checked keyring.

    (db, keyring, whether the key file was created, the migrations applied).

    With `create` (init and run only) a missing database is created, and a
    missing master key too, but only when the database holds nothing sealed.
    """
    from paygkit.cli.keyfiles import warn_if_in_git_work_tree
    from paygkit.server.crypto import Keyring, MasterKeyError, create_private, load_keyring
    from paygkit.server.db import Database
    from paygkit.server.services import keys

    db = Database(settings.database_url, create=create)
    try:
        if not create:
            db.require_schema()
        applied = db.migrate()
        created = False
        if not settings.master_key_hex and not settings.master_key_file.exists():
            with db.read() as session:
                needed = sorted(keys.versions_needed(session))
            if needed:
                raise MasterKeyError(
                    f"no master key: {settings.master_key_file} does not exist and "
                    "PAYGKIT_MASTER_KEY is not set, but the database "
                    f"{_shown_url(settings.database_url)} holds keys sealed with master key "
                    f"version(s) {', '.join(map(str, needed))}; nothing was created (a new key "
                    "would not open them). Give this database's key file with "
                    "--master-key-file or --data-dir (or PAYGKIT_MASTER_KEY), or restore it "
                    f"from a backup; see {keys.RECOVERY_DOC}"
                )
            if create:
                created = create_private(settings.master_key_file, Keyring.generate().dump())
                warn_if_in_git_work_tree(settings.master_key_file, "the master key")
        keyring = load_keyring(settings.master_key_file, settings.master_key_hex)
        keys.verify_keyring(db, keyring, _now())
    except BaseException:
        db.dispose()
        raise
    return db, keyring, created, applied


@contextmanager
def _as_local(
    settings: Settings, tenant: str, role: Role | None = None
) -> Iterator[tuple[Session, Actor, Keyring]]:
    """One writing transaction at the server's terminal, acting for `tenant`.

    The database must exist (only init and run create one); every known error,
    raised opening it or inside the block, ends the command with its one line.
    """
    from paygkit.server.services import access

    try:
        db, keyring, _, _ = _open(settings, create=False)
        try:
            with db.write() as session:
                extra = () if role is None else (role,)
                yield session, access.local_actor(session, tenant, _now(), *extra), keyring
        finally:
            db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def initialise(settings: Settings, tenant: str, console: Console) -> tuple[Database, Keyring]:
    """Master key, migrations, tenant, and a first admin key when there is no key at all."""
    from paygkit.server.models import Role
    from paygkit.server.services import access

    db, keyring, created, applied = _open(settings, create=True)
    if created:
        console.print(
            f"Created the master key [bold]{escape(str(settings.master_key_file))}[/] "
            "(mode 0600). Back it up: without it the device keys cannot be read."
        )
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
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Create the database and master key (0600) if there are none, make a first admin key."""
    settings = _settings(database, master_key_file, data_dir)
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
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="server processes")] = 1,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Start the HTTP server (initialising the database and master key on first run)."""
    import uvicorn

    # Before anything is created or printed: uvicorn would only log "[Errno 98]" later.
    _check_port(host, port)
    settings = _settings(database, master_key_file, data_dir)
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
        "paygkit.server.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address the server cannot listen on."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError):
        raise _fail(
            f"cannot listen on --host {host}: it is not an address of this machine; "
            "use e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every network)"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a server just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise _fail(
                    f"port {port} on {host} is already in use (another paygkit server, or "
                    f"another program): stop it, or choose another port with --port, e.g. "
                    f"--port {port + 1 if port < 65535 else 8080}"
                ) from None
            if error.errno == errno.EACCES:
                raise _fail(
                    f"port {port} on {host} needs administrator rights; choose a port above "
                    "1023 with --port, e.g. --port 8000"
                ) from None
            raise _fail(
                f"cannot listen on {host} port {port} ({error.strerror or error}); choose "
                "another address with --host or port with --port"
            ) from None


@api_key_app.command("create")
def api_key_create(
    role: Annotated[str, typer.Option(help="admin, operator, technician, viewer or agent")],
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "cli",
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Create an API key and print it (only its hash is stored)."""
    from paygkit.server.services import access

    settings = _settings(database, master_key_file, data_dir)
    try:
        parsed = access.parse_role(role)
    except _errors() as error:
        raise _fail(str(error)) from None
    with _as_local(settings, tenant) as (session, actor, _):
        new = access.create_api_key(session, actor, parsed, name, _now())
    typer.echo(new.key)
    Console(stderr=True, highlight=False).print(
        f"{parsed.value} key {new.record.id} for tenant {escape(tenant)}: shown once, keep it safe."
    )


@api_key_app.command("list")
def api_key_list(
    as_json: Annotated[bool, typer.Option("--json", help="the list as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """The tenant's API keys: id, name, role, the key's first characters, when made and revoked."""
    from paygkit.server.services import access

    settings = _settings(database, master_key_file, data_dir)
    with _as_local(settings, tenant) as (session, actor, _):
        keys = [access.api_key_view(k) for k in access.list_api_keys(session, actor)]
    if as_json:
        typer.echo(json.dumps({"api_keys": keys}, indent=2))
        return
    console = _console()
    if not keys:
        console.print(
            f"No API keys for tenant {escape(tenant)}: create one with "
            "'paygkit server api-key create --role admin'."
        )
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("Id", "Name", "Role", "Starts with", "Created", "Revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            str(key["id"]),
            escape(key["name"]),
            key["role"],
            escape(key["prefix"]) + "...",
            key["created_at"] or "-",
            key["revoked_at"] or "-",
        )
    console.print(table)


@api_key_app.command("revoke")
def api_key_revoke(
    key_id: Annotated[int, typer.Argument(help="the key's id (see 'api-key list')")],
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Revoke an API key at once (audited); its console sessions end with it."""
    from paygkit.server.models import Role
    from paygkit.server.services import access

    settings = _settings(database, master_key_file, data_dir)
    try:
        db, _, _, _ = _open(settings, create=False)
        with db.write() as session:
            actor = access.local_actor(session, tenant, _now())
            record = access.revoke_api_key(session, actor, key_id, _now())
            revoked = access.api_key_view(record)
            admins_left = [
                k
                for k in access.list_api_keys(session, actor)
                if k.role == Role.ADMIN.value and k.revoked_at is None
            ]
        db.dispose()
    except _errors() as error:
        message = str(error)
        if "no API key with id" in message:
            message = (
                f"no API key with id {key_id} for tenant {tenant}; "
                "list the keys with 'paygkit server api-key list'"
            )
        raise _fail(message) from None
    console = _console()
    console.print(
        f"Key {revoked['id']} ({escape(revoked['name'])}, {revoked['role']}) is revoked; "
        "requests with it are refused from now on."
    )
    if not admins_left:
        console.print(
            "[yellow]warning[/]: no admin key is left for this tenant; create one with "
            "'paygkit server api-key create --role admin'"
        )


@app.command("import")
def import_devices(
    path: Annotated[Path, typer.Argument(help="the device list CSV (or JSON) of the factory")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report only, change nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    password: Annotated[
        bool,
        typer.Option(
            "--password",
            help="the list is encrypted (paygkit factory encrypt) with a password: read it "
            "from PAYGKIT_FACTORY_PASSWORD or ask",
        ),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            metavar="FILE",
            show_default=False,
            help="the list is encrypted with this 32-byte key file",
        ),
    ] = None,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Import devices: every row checked first, duplicates refused, re-importing is harmless.

    A list with any problem imports nothing; a good one is written in batches
    of 1000 devices (the server keeps issuing tokens meanwhile), and should it
    stop midway, importing the same file again finishes it.  An encrypted list
    (`paygkit factory encrypt`) is decrypted in memory only.
    """
    from paygkit.server.services import access, importer

    settings = _settings(database, master_key_file, data_dir)
    text = _read_device_list(path, password, key_file)
    try:
        db, keyring, _, _ = _open(settings, create=False)
        with db.write() as session:
            actor = access.local_actor(session, tenant, _now())
        stderr = Console(stderr=True)

        def progress(done: int, total: int) -> None:
            # Long lists go in short transactions (see importer.import_batched): say where
            # it is, so a stop midway is understood (importing the file again finishes it).
            if total > importer.BATCH_SIZE:
                stderr.print(f"{done} of {total} devices written")

        report = importer.import_batched(
            db, actor, keyring, text, _now(), dry_run=dry_run, progress=progress
        )
        db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(1)


def _read_device_list(path: Path, password: bool, key_file: Path | None) -> str:
    """The text of a plain or encrypted device list; keys stay in memory."""
    from paygkit.factory.sealed import KeySource, SealError, looks_sealed, unseal

    try:
        data = path.read_bytes()
    except OSError as error:
        raise _fail(f"cannot read {path} ({error.strerror or error})") from None
    if looks_sealed(data):
        # The factory's own way of asking for the secret, so both commands behave alike.
        from paygkit.cli.factory_cmd import _password, _secret

        secret_password, key = _secret(password, key_file, confirm=False)
        if secret_password is None and key is None:
            if len(data) > _KEY_SOURCE_BYTE and data[_KEY_SOURCE_BYTE] == KeySource.KEY_FILE:
                raise _fail(f"{path} is encrypted with a key file: give it with --key-file FILE")
            secret_password = _password(confirm=False)
        try:
            data = unseal(data, password=secret_password, key=key).data
        except SealError as error:
            raise _fail(f"{path}: {error}") from None
    elif password or key_file is not None:
        raise _fail(
            f"{path} is not an encrypted device list (it does not start with PAYGSEAL); "
            "import it without --password / --key-file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _fail(
            f"{path} is not UTF-8 text (byte {error.start}); save it as CSV UTF-8"
        ) from None


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


def _stored_serial(session: Any, actor: Any, typed: str) -> str:
    """The serial as the server stores it, for one typed in another case (as the console)."""
    from paygkit.device.serial_number import serial_matches
    from paygkit.server.services import devices

    found = devices.search_devices(session, actor, typed)
    matches = serial_matches(typed, [device.serial for device in found])
    if len(matches) > 1:
        raise _fail(
            f"{typed!r} names {len(matches)} devices that differ only in case "
            f"({', '.join(matches[:5])}); type the serial exactly as stored"
        )
    return matches[0] if matches else typed


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
    lock: Annotated[
        bool,
        typer.Option(
            "--lock",
            help="lock the device now (Set Time 0; audited as token.lock): --days 0, "
            "--set-days 0 or a date in the past are refused without it",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the answer as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Issue tokens for a device as the local admin (recorded and audited like the API)."""
    from paygkit.server.models import Role
    from paygkit.server.services import tokens
    from paygkit.server.services.common import parse_time

    chosen = [
        name
        for name, given in (
            ("--days", days is not None),
            ("--set-days", set_days is not None),
            ("--until", until is not None),
            ("--disable", disable),
            ("--sync", sync),
            ("--lock", lock),
        )
        if given
    ]
    if len(chosen) != 1:
        raise _fail("give exactly one of --days, --set-days, --until, --disable, --sync, --lock")
    settings = _settings(database, master_key_file, data_dir)
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
        elif lock:
            spec = tokens.IssueSpec(tokens.IssueKind.SET_DAYS, lock=True)
        elif disable:
            spec = tokens.IssueSpec(tokens.IssueKind.DISABLE_PAYG)
        else:
            spec = tokens.IssueSpec(tokens.IssueKind.COUNTER_SYNC)
    except _errors() as error:
        raise _fail(str(error)) from None
    # Counter Sync is a technician's task; at the server's terminal the CLI user
    # may act as one.
    role = Role.TECHNICIAN if sync else Role.ADMIN
    with _as_local(settings, tenant, role) as (session, actor, keyring):
        stored = _stored_serial(session, actor, serial)
        outcome = tokens.issue_tokens(session, actor, keyring, stored, spec, _now(), source="cli")
    body = outcome.body
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    console = _console()
    if body.get("time"):
        console.print(escape(body["time"]["text"]))
    for item in body["tokens"]:
        value = f"{item['days']} day(s)" if item["days"] is not None else ""
        console.print(
            f"[bold]{item['token']}[/]  {item['type']} {value}  count {item['count']}".rstrip()
        )
    device = body["device"]
    console.print(
        f"{escape(stored)}: active until {device['active_until'] or '-'}"
        + ("" if device["payg_enabled"] else " (PAYG disabled)")
    )
    for warning in body["warnings"]:
        console.print(f"[yellow]warning[/]: {escape(warning)}")


@app.command("rotate-master-key")
def rotate_master_key(
    drop_old: Annotated[
        bool,
        typer.Option(
            "--drop-old",
            help="after re-encrypting, remove the old versions from the key file (refused "
            "while any row still uses one)",
        ),
    ] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a master key version and re-encrypt every device key and webhook secret under it.

    Safe next to running servers: they re-read the key file and open both
    versions meanwhile.  The old versions stay in the file unless --drop-old.
    """
    from paygkit.server.crypto import write_private
    from paygkit.server.services import access, keys

    settings = _settings(database, master_key_file, data_dir)
    if settings.master_key_hex:
        raise _fail(
            "the master key comes from PAYGKIT_MASTER_KEY; rotation rewrites the key file, "
            "so unset it and use --master-key-file"
        )
    path = settings.master_key_file
    dropped: list[int] = []
    try:
        db, old, _, _ = _open(settings, create=False)
        try:
            # The database learns the new version before any file holds it, so no
            # process can seal with a version the database cannot check.
            with db.write() as session:
                both = keys.add_version(session, old, _now())
            write_private(path, both.dump())
            resealed = keys.reseal_all(db, both)
            with db.write() as session:
                if drop_old:
                    dropped = keys.drop_old_versions(session, both, _now())
                    # Still inside the transaction: no row can take an old version meanwhile.
                    write_private(path, both.only_current().dump())
                actor = access.local_actor(session, DEFAULT_TENANT, _now())
                keys.audit_rotation(session, actor, both.current_version, resealed, dropped, _now())
        finally:
            db.dispose()
    except _errors() as error:
        raise _fail(str(error)) from None
    console = _console()
    console.print(
        f"Master key version {both.current_version}: {resealed} key(s) re-encrypted "
        f"({escape(str(path))})."
    )
    if dropped:
        console.print(
            f"Dropped version(s) {', '.join(map(str, dropped))}: the key file holds only "
            f"version {both.current_version} now. Back it up."
        )
    else:
        console.print(
            f"The key file keeps version(s) {', '.join(map(str, sorted(old.keys)))} as well, "
            "so nothing sealed by a server still running can be lost; once every server runs "
            "with this file, `paygkit server rotate-master-key --drop-old` removes them. "
            "Back the file up."
        )


def _decimal(text: str, what: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise _fail(f"{what} must be a number, got {text!r}") from None


def _print_book(view: dict[str, Any], console: Console) -> None:
    console.print(
        f"Book {view['id']} ({escape(view['name'] or '-')}) of agent "
        f"{escape(view['agent']['name'])} (key {view['agent']['key_id']}): {view['status']}, "
        f"{view['devices']} device(s) x {view['steps']} step(s), menu "
        f"{', '.join(view['menu'])} days, worth up to {view['value_days']} of a cap of "
        f"{view['value_cap_days']} days, expires {view['expires_at']}"
    )
    counts = view["handouts"]
    console.print(
        f"  fetched {view['fetched_at'] or 'never'}; hand-outs: {counts['recorded']} recorded, "
        f"{counts['duplicate']} duplicate, {counts['conflict']} conflict; "
        f"{view['flagged']} flagged"
    )
    if view["closed_at"]:
        console.print(
            f"  {view['status']} {view['closed_at']} by {escape(view['closed_by'] or '-')}"
            + (f", decision {view['close_decision']}" if view["close_decision"] else "")
            + (f": {escape(view['close_reason'])}" if view["close_reason"] else "")
        )


@book_app.command("create")
def book_create(
    agent: Annotated[int, typer.Option("--agent", help="the agent's API key id (role agent)")],
    serial: Annotated[
        list[str], typer.Option("--serial", help="a device of the book (repeat the option)")
    ],
    steps: Annotated[int, typer.Option(help="counts reserved per device, handed out in order")],
    menu: Annotated[str, typer.Option(help="days per value, comma separated, e.g. 1,3,7,30")],
    cap: Annotated[str, typer.Option(help="the most the book may be worth, in days")],
    expires: Annotated[str, typer.Option(help="when the book expires (YYYY-MM-DD: end of day)")],
    name: Annotated[str, typer.Option(help="a name for the book")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="the book as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Reserve the devices' next counts for an agent; online issuing for them stops until
    the book is closed or expires."""
    from paygkit.server.services import books
    from paygkit.server.services.common import parse_time

    settings = _settings(database, master_key_file, data_dir)
    values = [_decimal(v, "a menu value") for v in menu.split(",") if v.strip()]
    try:
        data = books.BookInput(
            agent_key_id=agent,
            serials=serial,
            steps=steps,
            menu=values,
            value_cap_days=_decimal(cap, "--cap"),
            expires_at=parse_time(expires, "--expires"),
            name=name,
        )
    except _errors() as error:
        raise _fail(str(error)) from None
    with _as_local(settings, tenant) as (session, actor, _):
        now = _now()
        view = books.book_view(session, books.create_book(session, actor, data, now), now)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    _print_book(view, _console())


@book_app.command("list")
def book_list(
    status: Annotated[
        str | None, typer.Option(help="open, expired or closed (default: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the list as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """The tenant's token books, newest first."""
    from paygkit.server.services import books

    settings = _settings(database, master_key_file, data_dir)
    with _as_local(settings, tenant) as (session, actor, _):
        now = _now()
        found = books.list_books(session, actor, now, status=status, limit=1000)
        views = [books.book_view(session, b, now) for b in found]
    if as_json:
        typer.echo(json.dumps({"books": views}, indent=2))
        return
    console = _console()
    if not views:
        console.print("No token books.")
    for view in views:
        _print_book(view, console)


@book_app.command("show")
def book_show(
    book_id: Annotated[int, typer.Argument(help="the book's id")],
    as_json: Annotated[bool, typer.Option("--json", help="the book as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """A book: each device's steps (handed out, dead) and the hand-outs with their flags."""
    from paygkit.server.services import books

    settings = _settings(database, master_key_file, data_dir)
    with _as_local(settings, tenant) as (session, actor, _):
        view = books.get_book(session, actor, book_id, _now())
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    console = _console()
    _print_book(view, console)
    for device in view["device_steps"]:
        marks = " ".join(
            f"{s['count']}:{s['days'] + 'd' if s['handed_out'] else ('dead' if s['dead'] else '-')}"
            for s in device["steps"]
        )
        console.print(f"  {escape(device['serial'])}  {marks}")
    for item in view["handout_list"]:
        flags = f" [{', '.join(item['flags'])}]" if item["flags"] else ""
        console.print(
            f"  hand-out {escape(item['id'])}: {escape(item['serial'])} count {item['count']} "
            f"{item['days']} days, {item['amount']} {item['currency']}, {item['status']}{flags}"
        )


@book_app.command("sync")
def book_sync(
    book_id: Annotated[int, typer.Argument(help="the book's id")],
    path: Annotated[Path, typer.Argument(help="JSON: the hand-outs, as the API's sync takes them")],
    as_json: Annotated[bool, typer.Option("--json", help="the answer as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Record hand-outs on the agent's behalf (e.g. from a paper book); each id once."""
    from paygkit.server.services import books

    settings = _settings(database, master_key_file, data_dir)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        listed = loaded["handouts"] if isinstance(loaded, dict) else loaded
        items = [books.handout_from_wire(h) for h in listed]
    except (ValueError, KeyError, TypeError, InvalidOperation) as error:
        raise _fail(
            f"{path} is not a list of hand-outs ({type(error).__name__}: {error}); each needs "
            "id, serial, count, days, amount, currency and handed_out_at"
        ) from None
    except _errors() as error:
        raise _fail(str(error)) from None
    with _as_local(settings, tenant) as (session, actor, keyring):
        answer = books.sync_book(session, actor, keyring, book_id, items, _now())
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    console = _console()
    for result in answer["results"]:
        why = result.get("reason") or result.get("note") or ""
        flags = f" [{', '.join(result['flags'])}]" if result["flags"] else ""
        console.print(f"{escape(result['id'])}: {result['result']}{flags} {escape(why)}".rstrip())
    for dead in answer["dead_steps"]:
        console.print(
            f"[yellow]dead steps[/] of {escape(dead['serial'])}: counts "
            f"{', '.join(map(str, dead['counts']))} (never hand them out)"
        )


@book_app.command("close")
def book_close(
    book_id: Annotated[int, typer.Argument(help="the book's id")],
    decision: Annotated[
        str | None,
        typer.Option(
            help="when steps may have been handed out unsynced: void (they were not) or "
            "handed_out (they may have been; their sync is still taken)"
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="why (audited; needed with --decision)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the answer as JSON")] = False,
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Close a book: online issuing for its devices resumes after its counts (audited)."""
    from paygkit.server.services import books

    settings = _settings(database, master_key_file, data_dir)
    choice = None
    if decision is not None:
        try:
            choice = books.CloseDecision(decision.strip().lower())
        except ValueError:
            raise _fail(f"--decision must be void or handed_out, got {decision!r}") from None
    with _as_local(settings, tenant) as (session, actor, _):
        answer = books.close_book(session, actor, book_id, choice, reason, _now())
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    console = _console()
    _print_book(answer["book"], console)
    for warning in answer["warnings"]:
        console.print(f"[yellow]warning[/]: {escape(warning)}")


@book_app.command("expire")
def book_expire(
    database: DatabaseOption = None,
    master_key_file: MasterKeyOption = None,
    data_dir: DataDirOption = None,
    tenant: TenantOption = DEFAULT_TENANT,
) -> None:
    """Close every book past its expiry (their counts stay used); e.g. from cron."""
    from paygkit.server.services import books

    settings = _settings(database, master_key_file, data_dir)
    with _as_local(settings, tenant) as (session, actor, _):
        expired = books.expire_books(session, actor, _now())
    _console().print(
        f"Expired book(s) {', '.join(map(str, expired))}." if expired else "No book was due."
    )
