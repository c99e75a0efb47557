"""Migrations, keys at rest, rotation, the append-only audit log, services without HTTP."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from paygkit.server.crypto import Keyring, MasterKeyError, ensure_keyring, load_keyring
from paygkit.server.db import Database, NoDatabaseError
from paygkit.server.models import AuditEntry, Device
from paygkit.server.pgtemp import TemporaryPostgres
from paygkit.server.services import access, devices, keys, tokens
from tests.server.conftest import KEY, START

TABLES = {
    "alembic_version",
    "tenants",
    "api_keys",
    "devices",
    "model_tariffs",
    "tokens",
    "idempotency_keys",
    "payments",
    "count_reports",
    "webhook_deliveries",
    "audit_log",
    "console_sessions",
    "master_key_versions",
    "books",
    "book_devices",
    "book_handouts",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: TemporaryPostgres | None = request.getfixturevalue("postgres")
    if server is None:
        pytest.skip("PostgreSQL binaries not found")
    yield server.create_database("empty_from_scratch")
    server.drop_database("empty_from_scratch")


def test_migrations_apply_from_empty_and_twice(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        assert not db.is_current()
        assert db.migrate() == ["0001", "0002", "0003", "0004", "0005"]
        assert db.migrate() == []
        assert db.is_current()
        assert set(inspect(db.engine).get_table_names()) == TABLES
    finally:
        db.dispose()


def test_the_models_are_what_the_migrations_make(empty_url: str) -> None:
    """A column added to a model without its migration (or the other way) shows here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from paygkit.server.models import Base

    db = Database(empty_url)
    try:
        db.migrate()
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        # Server-side triggers and the like are not in the models; columns,
        # tables and indexes are.
        assert [d for d in differences if d[0] != "remove_table"] == []
    finally:
        db.dispose()


def test_the_audit_log_refuses_update_and_delete(database: Database) -> None:
    with database.write() as session:
        actor = access.local_actor(session, "default", START)
        devices.create_device(
            session, actor, Keyring.generate(), devices.DeviceInput("A1", KEY), START
        )
    for statement in (update(AuditEntry).values(action="forged"), text("DELETE FROM audit_log")):
        with pytest.raises(DBAPIError, match="append-only"), database.write() as session:
            session.execute(statement)
    with database.read() as session:
        assert [e.action for e in session.scalars(select(AuditEntry))] == ["device.create"]


def test_device_keys_are_sealed_and_bound_to_their_serial(database: Database) -> None:
    ring = Keyring.generate()
    with database.write() as session:
        actor = access.local_actor(session, "default", START)
        for serial in ("A1", "A2"):
            devices.create_device(session, actor, ring, devices.DeviceInput(serial, KEY), START)
    with database.write() as session:
        a1, a2 = session.scalars(select(Device).order_by(Device.serial)).all()
        assert bytes.fromhex(KEY) not in a1.key_sealed
        assert a1.key_sealed != a2.key_sealed
        assert ring.open("A1", a1.key_sealed, a1.key_version) == bytes.fromhex(KEY)
        with pytest.raises(MasterKeyError, match="does not open"):
            ring.open("A2", a1.key_sealed, a1.key_version)  # moved to another serial
        with pytest.raises(MasterKeyError, match="version 2"):
            ring.open("A1", a1.key_sealed, 2)
        with pytest.raises(MasterKeyError, match="does not open"):
            Keyring.generate().open("A1", a1.key_sealed, a1.key_version)


def test_rotation_reseals_everything_under_the_new_version(database: Database) -> None:
    old = Keyring.generate()
    with database.write() as session:
        actor = access.local_actor(session, "default", START)
        devices.create_device(session, actor, old, devices.DeviceInput("A1", KEY), START)
    keys.verify_keyring(database, old, START)
    with database.write() as session:
        new = keys.add_version(session, old, START)
    assert keys.reseal_all(database, new) == 1
    with database.write() as session:
        assert keys.drop_old_versions(session, new, START) == [1]
    current = new.only_current()
    keys.verify_keyring(database, current, START)
    with database.write() as session:
        actor = access.local_actor(session, "default", START)
        device = devices.get_device(session, actor, "A1")
        assert device.key_version == 2
        outcome = tokens.issue_tokens(
            session,
            actor,
            current,
            "A1",
            tokens.IssueSpec(tokens.IssueKind.ADD_DAYS, days=1),
            START,
        )
        assert outcome.status == 201
        with pytest.raises(MasterKeyError):
            old.open("A1", device.key_sealed, device.key_version)


def test_master_key_file_is_private_and_parsed_strictly(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    ring, created = ensure_keyring(path)
    assert created
    assert path.stat().st_mode & 0o777 == 0o600
    again, created_again = ensure_keyring(path)
    assert not created_again
    assert again.keys == ring.keys
    assert repr(ring) == "Keyring(versions=[1])"
    assert load_keyring(path, "ab" * 32).keys == {1: bytes.fromhex("ab" * 32)}
    assert load_keyring(path, f"1:{'ab' * 32},2:{'cd' * 32}").current_version == 2
    with pytest.raises(MasterKeyError, match="64 hex"):
        load_keyring(path, "nothex")
    with pytest.raises(MasterKeyError, match="server init"):
        load_keyring(tmp_path / "missing.key")


def test_services_refuse_before_changing(database: Database) -> None:
    ring = Keyring.generate()
    now = START + dt.timedelta(days=1)
    with database.write() as session:
        actor = access.local_actor(session, "default", now)
        devices.create_device(session, actor, ring, devices.DeviceInput("A1", KEY), now)
    spec = tokens.IssueSpec(tokens.IssueKind.ADD_DAYS)
    with database.write() as session:
        actor = access.local_actor(session, "default", now)
        with pytest.raises(tokens.InvalidError):
            tokens.issue_tokens(session, actor, ring, "A1", spec, now)
    with database.read() as session:
        assert session.scalar(select(Device.last_count_issued)) == 1


def test_sqlite_is_durable_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "paygkit.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.migrate()
        with db.write() as session:
            # 2 = FULL: in WAL mode NORMAL may lose the last commits on a power cut.
            assert session.execute(text("PRAGMA synchronous")).scalar() == 2
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            access.local_actor(session, "default", START)
            session.flush()
            # The -wal and -shm files exist while a connection is open.
            for name in ("paygkit.db", "paygkit.db-wal", "paygkit.db-shm"):
                assert (tmp_path / "data" / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        db.dispose()


def test_an_old_world_readable_sqlite_file_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "paygkit.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Database(f"sqlite:///{path}").dispose()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_database_is_not_created_when_told_not_to(tmp_path: Path) -> None:
    path = tmp_path / "paygkit.db"
    with pytest.raises(NoDatabaseError, match="paygkit server init"):
        Database(f"sqlite:///{path}", create=False)
    assert not path.exists()


def test_postgresql_commits_are_durable(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL only (the test cluster itself runs synchronous_commit=off)")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
