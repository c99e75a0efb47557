"""Database engines, sessions and migrations.

SQLite: WAL journal, a busy timeout, foreign keys on, and every writing
transaction opened with `BEGIN IMMEDIATE`, so two server processes never
interleave a count advance (the write lock is taken before the device row is
read).  Reading sessions open with a plain deferred `BEGIN`.

PostgreSQL (psycopg 3): writing services lock the device row with
`SELECT ... FOR UPDATE`; migrations run under an advisory lock so several
processes starting at once apply them once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
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
# Any constant: the advisory lock that serialises migrations on PostgreSQL.
_MIGRATION_LOCK = 0x5041_5947


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`, set up as described in the module docstring."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
        )
        _setup_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event open the transactions itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_DEFERRED):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine and its two session factories (writing and reading)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(**{_DEFERRED: True}), expire_on_commit=False
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits at the end, or rolls back on any error."""
        with self._writer() as session, session.begin():
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
