"""Database engines, sessions and migrations.

SQLite: WAL journal, a busy timeout, foreign keys on, and every writing
transaction opened with `BEGIN IMMEDIATE`, so two server processes never
interleave a count advance (the write lock is taken before the device row is
read).  Reading sessions open with a plain deferred `BEGIN`.  `synchronous=FULL`:
in WAL mode NORMAL may lose the last commits on a power cut, and a lost token
commit means the next token reuses its count.  The database file is created
readable by its owner only (SQLite gives its -wal and -shm files the same mode).

PostgreSQL (psycopg 3): writing services lock the device row with
`SELECT ... FOR UPDATE`; migrations run under an advisory lock so several
processes starting at once apply them once.  Every connection sets
`synchronous_commit=on` (PostgreSQL's default, which a server configuration may
have turned off) for the same reason as SQLite's FULL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

_DEFERRED = "paygkit_deferred"
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
# Any constant: the advisory lock that serialises migrations on PostgreSQL.
_MIGRATION_LOCK = 0x5041_5947


class NoDatabaseError(RuntimeError):
    """A command that must not create a database found none."""


def _no_database(where: str) -> NoDatabaseError:
    return NoDatabaseError(
        f"no paygkit database at {where}: run `paygkit server init` there, "
        "or give --data-dir / PAYGKIT_DATA_DIR"
    )


def private_sqlite_file(path: Path, *, create: bool) -> None:
    """Create the SQLite file with mode 0600 before SQLite does (0644 less the umask).

    Files left readable by an older paygkit are narrowed to 0600 as well.
    With `create` false a missing file is NoDatabaseError.
    """
    if not path.exists():
        if not create:
            raise _no_database(str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Another process may create it at the same moment.
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            if companion.stat().st_mode & 0o077:
                companion.chmod(0o600)
        except FileNotFoundError:
            continue


def make_engine(url: str, *, pool_size: int = 10, create: bool = True) -> Engine:
    """An engine for `url`, set up as described in the module docstring."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            private_sqlite_file(Path(str(parsed.database)), create=create)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
        )
        _setup_sqlite(engine)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"options": "-c synchronous_commit=on"},
    )


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event open the transactions itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # On the driver's own connection: every request begins one, and SQLAlchemy's
        # execution of a statement costs several times sqlite3's.
        driver = connection.connection.dbapi_connection
        assert driver is not None
        if connection.get_execution_options().get(_DEFERRED):
            driver.execute("BEGIN")
        else:
            driver.execute("BEGIN IMMEDIATE")


class Database:
    """An engine and its two session factories (writing and reading)."""

    def __init__(self, url: str, *, pool_size: int = 10, create: bool = True) -> None:
        """With `create` false, a database that does not exist is NoDatabaseError.

        (For PostgreSQL: one without paygkit's tables; `require_schema` checks it.)
        """
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, create=create)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(**{_DEFERRED: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time.  Threads of this process queue here
        # instead of in SQLite's busy handler, which polls with sleeps that grow
        # to 100 ms: with 16 requests waiting, most of the time went to sleeping.
        # Other processes still meet the busy timeout.
        self._write_turn: AbstractContextManager[Any] = (
            threading.RLock() if self.is_sqlite else nullcontext()
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits at the end, or rolls back on any error."""
        with self._write_turn, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    def session(self) -> Session:
        """A writing session the caller manages."""
        return self._writer()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- migrations ------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every pending migration; the revisions applied, oldest first."""
        with self.engine.connect() as connection:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK}
                    )
                before = MigrationContext.configure(connection).get_current_revision()
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            head = script_directory().get_current_head()
        return _revisions_between(before, head)

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def is_current(self) -> bool:
        return self.current_revision() == script_directory().get_current_head()

    def require_schema(self) -> None:
        """NoDatabaseError unless migrations were ever applied here (an `init` was run)."""
        if self.current_revision() is None:
            self.dispose()
            raise _no_database(make_url(self.url).render_as_string(hide_password=True))


def alembic_config() -> Config:
    config = Config()
    location = resources.files("paygkit.server") / "migrations"
    config.set_main_option("script_location", str(location))
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _revisions_between(before: str | None, head: str | None) -> list[str]:
    if head is None or before == head:
        return []
    revisions = []
    for script in script_directory().iterate_revisions(head, before or "base"):
        revisions.append(script.revision)
    return list(reversed(revisions))
