"""The token issue path's shortcuts keep every guarantee: the key cache, plain rows, no ORM."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from decimal import Decimal

from sqlalchemy import func, select

from paygkit.server.context import ServerContext
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import Device, DeviceRow, Role, WebhookDelivery
from paygkit.server.services import access, tokens
from paygkit.server.services.access import KeyCache
from tests.server.conftest import Server

PATH = "/devices/TEST220000001/tokens"
ADD_DAY = {"type": "add_days", "days": 1}


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_device_row_has_the_fields_of_the_device_table() -> None:
    assert [f.name for f in dataclasses.fields(DeviceRow)] == [
        column.key for column in Device.__table__.columns
    ]


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_time(server: Server) -> None:
    server.add_device()
    ticks = Ticks()
    cache = server.client.app.state.paygkit.keys  # type: ignore[attr-defined]
    cache.ticks = ticks
    headers = server.headers("operator")
    assert server.client.post(PATH, json=ADD_DAY, headers=headers).status_code == 201
    # Revoked by another process (the CLI): this one's cache does not know yet.
    with server.db.write() as session:
        admin = access.local_actor(session, access.DEFAULT_TENANT, server.clock())
        key_id = next(
            key.id for key in access.list_api_keys(session, admin) if key.role == "operator"
        )
        access.revoke_api_key(session, admin, key_id, server.clock())
    ticks.now += access.KEY_CACHE_SECONDS / 2
    assert server.client.post(PATH, json=ADD_DAY, headers=headers).status_code == 201
    ticks.now += access.KEY_CACHE_SECONDS
    refused = server.client.post(PATH, json=ADD_DAY, headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


def test_the_cache_keeps_only_valid_keys(database: Database) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with database.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, now)
        key = access.create_api_key(session, actor, Role.VIEWER, "reader", now).key
    cache = KeyCache(ticks=Ticks())
    assert cache.cached(key) is None
    with database.read() as session:
        assert cache.authenticate(session, key).role is Role.VIEWER
    assert cache.cached(key) is not None
    assert cache.cached(key + "x") is None
    assert cache.cached(None) is None
    cache.forget()
    assert cache.cached(key) is None


def test_no_webhook_no_delivery_row(server: Server) -> None:
    server.add_device()
    assert server.post(PATH, role="operator", json=ADD_DAY).status_code == 201  # type: ignore[attr-defined]
    with server.db.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_device_loaded_before_the_issue_is_read_again_after_it(server: Server) -> None:
    """The CLI looks a device up, then issues in the same session: it must see the new count."""
    server.add_device()
    with server.db.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, server.clock())
        loaded = session.scalar(select(Device).where(Device.serial == "TEST220000001"))
        assert loaded is not None
        before = loaded.last_count_issued
        spec = tokens.IssueSpec(tokens.IssueKind.ADD_DAYS, days=Decimal(2))
        outcome = tokens.issue_tokens(
            session, actor, server.keyring, "TEST220000001", spec, server.clock()
        )
        after = outcome.body["tokens"][-1]["count"]
        assert after > before
        assert outcome.body["device"]["last_count_issued"] == after
        assert loaded.last_count_issued == after
    with server.db.read() as session:
        stored = session.scalar(select(Device).where(Device.serial == "TEST220000001"))
        assert stored is not None
        assert stored.last_count_issued == after


def test_sqlite_takes_the_token_transactions_one_at_a_time_in_their_order(
    database: Database, keyring: Keyring
) -> None:
    """SQLite writes one at a time anyway: in order of arrival, the last one waits no longer
    than its turn.  PostgreSQL takes them side by side."""
    context = ServerContext(database, keyring, lambda: dt.datetime.now(dt.UTC))
    started: list[int] = []
    running = [0, 0]  # now, most at once
    guard = threading.Lock()
    second_in = threading.Event()

    def work(number: int) -> None:
        with guard:
            started.append(number)
            running[0] += 1
            running[1] = max(running)
        if number == 1:
            second_in.set()
        if number == 0 and not database.is_sqlite:
            second_in.wait(timeout=30)  # side by side: the second starts while the first runs
        time.sleep(0.02)
        with guard:
            running[0] -= 1

    try:
        for future in [context.db_threads.submit(work, n) for n in range(8)]:
            future.result(timeout=30)
    finally:
        context.db_threads.shutdown(wait=True)
    if database.is_sqlite:
        assert started == list(range(8))
        assert running[1] == 1
    else:
        assert running[1] > 1
