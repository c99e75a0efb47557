"""The master key and the database: start-up checks, live rotation, and recovering.

Issue 11 part A, on SQLite and PostgreSQL: a rotation next to a running server,
a missing key file and a wrong PAYGKIT_MASTER_KEY must never end in 500s or in
rows sealed under a key the database cannot check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from paygkit.server.app import create_app
from paygkit.server.crypto import Keyring, MasterKeyError, load_keyring, write_private
from paygkit.server.db import Database
from paygkit.server.models import Device, MasterKeyVersion
from paygkit.server.services import access, devices, keys
from tests.server.conftest import KEY, START, STARTING_CODE, FakeClock, make_keys


@contextmanager
def serving(db: Database, keyring: Keyring) -> Iterator[tuple[TestClient, dict[str, str]]]:
    clock = FakeClock()
    app = create_app(db=db, keyring=keyring, clock=clock, migrate=False, webhook_worker=False)
    headers = {"Authorization": f"Bearer {make_keys(db, clock())['admin']}"}
    with TestClient(app) as client:
        yield client, headers


def add_device(client: TestClient, headers: dict[str, str], serial: str) -> None:
    body = {"serial": serial, "key": KEY, "starting_code": STARTING_CODE}
    response = client.post("/devices", json=body, headers=headers)
    assert response.status_code == 201, response.text


def token(client: TestClient, headers: dict[str, str], serial: str) -> int:
    response = client.post(
        f"/devices/{serial}/tokens", json={"type": "add_days", "days": 1}, headers=headers
    )
    return response.status_code


def rotate(db: Database, path: Path, *, drop_old: bool = False) -> Keyring:
    """What `paygkit server rotate-master-key` does, as another process would."""
    ring = load_keyring(path)
    keys.verify_keyring(db, ring, START)
    with db.write() as session:
        both = keys.add_version(session, ring, START)
    write_private(path, both.dump())
    keys.reseal_all(db, both)
    if drop_old:
        with db.write() as session:
            keys.drop_old_versions(session, both, START)
            write_private(path, both.only_current().dump())
    return both


def versions_of_devices(db: Database) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(select(Device.serial, Device.key_version))
        return {row.serial: row.key_version for row in rows}


def test_the_database_records_a_check_value_never_the_key(database: Database) -> None:
    ring = Keyring.generate()
    assert keys.verify_keyring(database, ring, START) == [1]
    assert keys.verify_keyring(database, ring, START) == []
    with database.read() as session:
        (row,) = session.scalars(select(MasterKeyVersion))
    assert row.version == 1
    assert row.check_value == ring.check_value(1)
    assert ring.keys[1] not in row.check_value
    assert len(row.check_value) == 32


def test_a_wrong_key_is_refused_before_the_first_device(database: Database) -> None:
    keys.verify_keyring(database, Keyring.generate(), START)
    wrong = Keyring.parse("ab" * 32, "PAYGKIT_MASTER_KEY")
    with pytest.raises(MasterKeyError, match=r"version 1 from PAYGKIT_MASTER_KEY is not the key"):
        keys.verify_keyring(database, wrong, START)
    # The server refuses to start rather than answer 500 (or seal) with it.
    with pytest.raises(MasterKeyError, match="check value differs"):
        create_app(db=database, keyring=wrong, migrate=False, webhook_worker=False)


def test_a_keyring_without_a_version_rows_use_is_refused(
    database: Database, tmp_path: Path
) -> None:
    ring = Keyring.generate()
    with serving(database, ring) as (client, headers):
        add_device(client, headers, "A1")
    path = tmp_path / "paygkit-master.key"
    write_private(path, Keyring({2: bytes(32)}).dump())
    with pytest.raises(MasterKeyError) as caught:
        keys.verify_keyring(database, load_keyring(path), START)
    message = str(caught.value)
    assert "master key version(s) 1" in message
    assert str(path) in message
    assert ring.keys[1].hex() not in message


def test_a_database_from_before_check_values_is_filled_on_first_open(database: Database) -> None:
    ring = Keyring.generate()
    with serving(database, ring) as (client, headers):
        add_device(client, headers, "A1")
    with database.write() as session:
        session.execute(delete(MasterKeyVersion))  # as after migration 0003 on an old database
    # A keyring that does not open the rows records nothing.
    other = Keyring.generate()
    with pytest.raises(MasterKeyError, match="does not open"):
        keys.verify_keyring(database, other, START)
    with database.read() as session:
        assert session.scalars(select(MasterKeyVersion)).all() == []
    assert keys.verify_keyring(database, ring, START) == [1]
    with pytest.raises(MasterKeyError, match="check value differs"):
        keys.verify_keyring(database, other, START)


def test_rotation_next_to_a_running_server(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "paygkit-master.key"
    write_private(path, Keyring.generate().dump())
    with serving(database, load_keyring(path)) as (client, headers):
        add_device(client, headers, "OLD1")
        assert token(client, headers, "OLD1") == 201
        both = rotate(database, path)
        assert versions_of_devices(database) == {"OLD1": 2}
        # The running server opens rows of the new version and seals with it.
        assert token(client, headers, "OLD1") == 201
        add_device(client, headers, "NEW1")
        assert versions_of_devices(database) == {"OLD1": 2, "NEW1": 2}
        assert client.post("/devices/export-keys", headers=headers).status_code == 200
    # The key file keeps version 1 until told otherwise.
    assert set(load_keyring(path).keys) == {1, 2}
    # After a restart everything still opens, including the export of the whole tenant.
    with serving(database, load_keyring(path)) as (client, headers):
        assert token(client, headers, "NEW1") == 201
        exported = client.post("/devices/export-keys", headers=headers)
        assert exported.status_code == 200
        assert exported.text.count(KEY) == 2
    assert both.current_version == 2


def test_drop_old_waits_until_no_row_uses_an_old_version(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "paygkit-master.key"
    first = Keyring.generate()
    write_private(path, first.dump())
    with serving(database, load_keyring(path)) as (client, headers):
        add_device(client, headers, "A1")
    both = rotate(database, path)
    # A server that never saw the new file (its key in PAYGKIT_MASTER_KEY) seals with version 1.
    with database.write() as session:
        actor = access.local_actor(session, "default", START)
        devices.create_device(session, actor, first, devices.DeviceInput("LATE1", KEY), START)
    with database.write() as session, pytest.raises(MasterKeyError, match=r"version\(s\) 1"):
        keys.drop_old_versions(session, both, START)
    assert set(load_keyring(path).keys) == {1, 2}
    rotate(database, path, drop_old=True)
    assert set(load_keyring(path).keys) == {3}
    assert set(versions_of_devices(database).values()) == {3}
    with database.read() as session:
        retired = {r.version for r in session.scalars(select(MasterKeyVersion)) if r.retired_at}
    assert retired == {1, 2}
    keys.verify_keyring(database, load_keyring(path), START)


def test_an_unknown_version_is_a_503_that_says_restart(database: Database) -> None:
    ring = Keyring.generate()
    with serving(database, ring) as (client, headers):
        add_device(client, headers, "A1")
        # Another process rotated; this server's keys came from the environment.
        newer = ring.with_new_version()
        with database.write() as session:
            device = session.scalars(select(Device)).one()
            key = ring.open("A1", device.key_sealed, device.key_version)
            device.key_sealed, device.key_version = newer.seal("A1", key)
        response = client.post(
            "/devices/A1/tokens", json={"type": "add_days", "days": 1}, headers=headers
        )
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "master_key_unavailable"
        assert "restart the server" in error["message"]
        assert KEY not in response.text
        exported = client.post("/devices/export-keys", headers=headers)
        assert exported.status_code == 503


def test_recovering_from_a_lost_version_by_restoring_its_line(
    database: Database, tmp_path: Path
) -> None:
    """Case 1 of docs/server.md: rows under a version the key file lost (old rotations)."""
    old = Keyring.generate()
    with serving(database, old) as (client, headers):
        add_device(client, headers, "A1")
    path = tmp_path / "paygkit-master.key"
    newer = old.with_new_version()
    write_private(path, newer.only_current().dump())
    with pytest.raises(MasterKeyError, match=r"version\(s\) 1"):
        keys.verify_keyring(database, load_keyring(path), START)
    # The recovery: add version 1's line from a backup of the key file.
    backup = old.dump().splitlines()[-1]
    path.write_text(path.read_text() + backup + "\n")
    with serving(database, load_keyring(path)) as (client, headers):
        assert token(client, headers, "A1") == 201
        assert client.post("/devices/export-keys", headers=headers).status_code == 200


def test_the_server_refuses_to_start_with_a_key_file_of_another_database(
    database: Database, tmp_path: Path
) -> None:
    """Case 2: the key file was lost and a new one made elsewhere; nothing is sealed with it."""
    ring = Keyring.generate()
    with serving(database, ring) as (client, headers):
        add_device(client, headers, "A1")
    stray = tmp_path / "stray.key"
    write_private(stray, Keyring.generate().dump())
    with pytest.raises(MasterKeyError, match=str(stray)):
        create_app(db=database, keyring=load_keyring(stray), migrate=False, webhook_worker=False)
    with database.read() as session:
        assert session.scalar(select(Device.key_version)) == 1
        assert [r.version for r in session.scalars(select(MasterKeyVersion))] == [1]


def test_a_row_relabelled_to_a_missing_version_stops_the_start(database: Database) -> None:
    ring = Keyring.generate()
    with serving(database, ring) as (client, headers):
        add_device(client, headers, "A1")
    with database.write() as session:
        session.execute(update(Device).values(key_version=7))
    with pytest.raises(MasterKeyError, match=r"version\(s\) 7"):
        create_app(db=database, keyring=ring, migrate=False, webhook_worker=False)


def test_a_key_file_that_changes_a_version_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "paygkit-master.key"
    first = Keyring.generate()
    write_private(path, first.dump())
    ring = load_keyring(path)
    write_private(path, Keyring({1: bytes(32), 2: bytes(32)}).dump())
    ring.refresh(force=True)
    assert ring.keys == first.keys


def test_check_values_differ_per_version_and_key() -> None:
    ring = Keyring({1: bytes(32), 2: bytes(32)})
    assert ring.check_value(1) != ring.check_value(2)
    assert ring.check_value(1) != Keyring({1: b"\x01" * 32}).check_value(1)
