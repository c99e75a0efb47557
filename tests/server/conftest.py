"""Fixtures of the server tests: every test runs on SQLite and on a real PostgreSQL.

The PostgreSQL server is started by the tests themselves (paygkit.server.pgtemp)
once per session; each test gets a fresh database cloned from a migrated
template.  Without PostgreSQL binaries the PostgreSQL cases are skipped, or
fail when PAYGKIT_REQUIRE_POSTGRES=1 (as `make test` sets it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from paygkit.server.app import create_app
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import Role
from paygkit.server.pgtemp import PostgresUnavailableError, TemporaryPostgres
from paygkit.server.services import access

# The first published test device (SPEC vectors); its key is not a secret.
KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
START = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)

_counter = itertools.count()


class FakeClock:
    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres | None]:
    try:
        server = TemporaryPostgres().start()
    except PostgresUnavailableError as error:
        if os.environ.get("PAYGKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PAYGKIT_REQUIRE_POSTGRES=1 but PostgreSQL cannot run: {error}")
        yield None
        return
    try:
        template = Database(server.create_database("paygkit_template"))
        template.migrate()
        template.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    database.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
) -> Iterator[str]:
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "paygkit.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    server: TemporaryPostgres | None = request.getfixturevalue("postgres")
    if server is None:
        pytest.skip("PostgreSQL binaries not found (set PAYGKIT_REQUIRE_POSTGRES=1 to fail)")
    name = f"t{os.getpid()}_{next(_counter)}"
    yield server.create_database(name, template="paygkit_template")
    server.drop_database(name)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@dataclass
class Server:
    """A test client on a fresh database, with one API key per role."""

    client: TestClient
    db: Database
    keyring: Keyring
    clock: FakeClock
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str = "admin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}", **extra}

    def post(self, path: str, role: str = "admin", **kwargs: object) -> object:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return self.client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, role: str = "admin", **kwargs: object) -> object:
        return self.client.get(path, headers=self.headers(role), **kwargs)  # type: ignore[arg-type]

    def add_device(
        self, serial: str = "TEST220000001", *, key: str = KEY, **fields: object
    ) -> dict[str, object]:
        body = {"serial": serial, "key": key, "starting_code": STARTING_CODE, **fields}
        response = self.client.post("/devices", json=body, headers=self.headers())
        assert response.status_code == 201, response.text
        data: dict[str, object] = response.json()
        return data


def make_keys(db: Database, now: dt.datetime) -> dict[str, str]:
    keys = {}
    with db.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, now)
        for role in Role:
            keys[role.value] = access.create_api_key(session, actor, role, role.value, now).key
    return keys


@pytest.fixture
def server(database: Database, keyring: Keyring) -> Iterator[Server]:
    clock = FakeClock()
    app = create_app(db=database, keyring=keyring, clock=clock, migrate=False, webhook_worker=False)
    keys = make_keys(database, clock())
    with TestClient(app) as client:
        yield Server(client=client, db=database, keyring=keyring, clock=clock, keys=keys)


def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: compared before and after a refused request."""
    from sqlalchemy import select

    from paygkit.server.models import Base

    rows = {}
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            rows[table.name] = sorted(
                (tuple(row) for row in session.execute(select(table))), key=repr
            )
    return rows


def simulated_device(  # type: ignore[no-untyped-def]
    count: int = 1,
    *,
    time_divider: int = 1,
    restricted: bool = False,
    accept_reset_token: bool = False,
):
    """A simulated device provisioned like the server's TEST220000001."""
    from paygkit.device.simulator import SimulatedDevice
    from paygkit.device.state import DeviceConfig

    device = SimulatedDevice(config=DeviceConfig(accept_reset_token=accept_reset_token))
    device.provision(
        serial="TEST220000001",
        starting_code=STARTING_CODE,
        key=KEY,
        count=count,
        time_divider=time_divider,
        restricted_digits=restricted,
    )
    return device
