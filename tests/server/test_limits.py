"""One request must not stall or bloat the server; keys are throttled and never echoed."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from typing import Any

import pytest
from limits import parse

from paygkit.server import guard
from paygkit.server.services.access import KeyCache
from tests.console.conftest import hidden_fields
from tests.server.conftest import KEY, STARTING_CODE, Server, snapshot
from tests.server.test_devices import HEADER, upload

pytestmark = pytest.mark.first_pass_only(
    reason="limits and throttling are decided before any token is made"
)

SERIAL = "TEST220000001"


def _guard(server: Server) -> guard.RequestGuard:
    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        raise AssertionError("the handler must not run")

    return guard.RequestGuard(app, server.db, guard.Throttle(), KeyCache())


def _call(middleware: guard.RequestGuard, path: str, headers: dict[str, str], chunks: list[bytes]):  # type: ignore[no-untyped-def]
    """Run one request through the guard: (status, how many body chunks it read)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        more = read < len(chunks)
        return {"type": "http.request", "body": chunks[read - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": ("10.9.9.9", 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"], read


def test_an_unauthenticated_body_is_never_read(server: Server) -> None:
    middleware = _guard(server)
    chunk = b"x" * 65536
    status, read = _call(middleware, "/devices/import", {"content-type": "text/csv"}, [chunk] * 8)
    assert (status, read) == (401, 0)
    wrong = {"authorization": "Bearer pgk_wrong", "content-type": "text/csv"}
    assert _call(middleware, "/devices/import", wrong, [chunk] * 8) == (401, 0)


def test_a_console_upload_without_a_session_is_never_read(server: Server) -> None:
    middleware = _guard(server)
    chunk = b"x" * 65536
    for cookie in ({}, {"cookie": f"{guard.CONSOLE_COOKIE}=forged"}):
        for path in ("/console/import", "/console/import/confirm"):
            status, read = _call(middleware, path, cookie, [chunk] * 8)
            assert (status, read) == (303, 0), (path, cookie)


def test_a_body_over_the_route_limit_is_413_without_reading_it(server: Server) -> None:
    middleware = _guard(server)
    key = {"authorization": f"Bearer {server.keys['admin']}"}
    declared = {**key, "content-length": str(guard.DEFAULT_BODY_LIMIT + 1)}
    assert _call(middleware, "/devices", declared, [b"{}"]) == (413, 0)
    # Undeclared (chunked): read only until it passes the limit.
    chunk = b"x" * 16384
    status, read = _call(middleware, "/devices", key, [chunk] * 100)
    assert status == 413
    assert read == guard.DEFAULT_BODY_LIMIT // len(chunk) + 1
    # The import's limit is larger than the others'.
    assert guard.body_limit("POST", "/devices/import") > guard.body_limit("POST", "/devices")


def test_413_over_http_says_what_to_do(server: Server) -> None:
    server.add_device()
    before = snapshot(server.db)
    response = server.client.post(
        f"/devices/{SERIAL}/counts",
        content=b'{"count": 1, "note": "' + b"n" * 70000 + b'"}',
        headers={**server.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert "64 KB" in error["message"]
    assert snapshot(server.db) == before


def test_failed_keys_are_throttled_per_address(server: Server) -> None:
    throttle: guard.Throttle = server.client.app.state.paygkit_throttle  # type: ignore[attr-defined]
    throttle.item = parse("5/10 minutes")
    for _ in range(5):
        wrong = server.client.get("/devices", headers={"Authorization": "Bearer pgk_guess"})
        assert wrong.status_code == 401
    blocked = server.client.get("/devices", headers={"Authorization": "Bearer pgk_guess"})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "too many wrong API keys" in blocked.json()["error"]["message"]
    # The right key waits too, from that address; other addresses do not.
    assert server.client.get("/devices", headers=server.headers()).status_code == 429
    assert throttle.retry_after("192.0.2.1") is None
    # No key at all is not a guess: not counted, and /health needs none.
    assert server.client.get("/health").status_code == 200


def test_failed_console_sign_ins_are_throttled_and_audited(server: Server) -> None:
    throttle: guard.Throttle = server.client.app.state.paygkit_throttle  # type: ignore[attr-defined]
    throttle.item = parse("3/10 minutes")
    # Each sign-in page carries a fresh token (cookie and field).
    token = hidden_fields(server.client.get("/console/sign-in").text)["signin_token"]
    for _ in range(3):
        response = server.client.post(
            "/console/sign-in",
            data={"api_key": "pgk_not_a_key", "signin_token": token},
        )
        assert response.status_code == 401
        assert "pgk_not_a_key" not in response.text
        token = hidden_fields(response.text)["signin_token"]
    blocked = server.client.post(
        "/console/sign-in", data={"api_key": server.keys["admin"], "signin_token": token}
    )
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"]
    throttle.item = parse("1000/second")
    throttle.limiter.storage.reset()  # type: ignore[attr-defined]
    entries = server.get("/audit", params={"action": "console.sign_in_failed"}).json()["entries"]  # type: ignore[attr-defined]
    assert len(entries) == 3
    assert entries[0]["details"]["address"] == "testclient"
    assert "pgk_not_a_key" not in str(entries)


@pytest.mark.parametrize(
    "pasted", ["pgk_" + secrets.token_urlsafe(32), "bc41ec9530f6dac86b1a29ab82edc5fb"]
)
def test_a_key_in_a_url_is_not_echoed(server: Server, pasted: str) -> None:
    response = server.client.get(f"/devices/{pasted}", headers=server.headers())
    assert response.status_code in (404, 422)
    assert pasted not in response.text
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/devices/{pasted}?x=1", "1.1", 404), None,
    )  # fmt: skip
    guard.AccessLogRedactor().filter(record)
    assert pasted not in record.getMessage()
    assert "/devices/<hidden>?x=1" in record.getMessage()


def test_a_writer_waiting_for_the_lock_does_not_stall_the_process(server: Server) -> None:
    """A token issue waiting for SQLite's write lock runs in a thread: /health answers."""
    if not server.db.is_sqlite:
        pytest.skip("PostgreSQL locks rows, not the database")
    server.add_device()
    holder = server.db.engine.raw_connection()
    holder.cursor().execute("BEGIN IMMEDIATE")  # another process holding the write lock
    answers: list[int] = []

    def issue() -> None:
        response = server.client.post(
            f"/devices/{SERIAL}/tokens",
            json={"type": "add_days", "days": 1},
            headers=server.headers(),
        )
        answers.append(response.status_code)

    worker = threading.Thread(target=issue)
    worker.start()
    try:
        assert server.client.get("/health").status_code == 200
        assert not answers  # the issue still waits for the lock, and /health did not
    finally:
        holder.rollback()
        holder.close()
    worker.join(timeout=60)
    assert answers == [201]


def test_a_long_import_is_written_in_short_batches_and_reported(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from paygkit.server.services import importer

    monkeypatch.setattr(importer, "BATCH_SIZE", 4)
    original = importer.import_batched

    def small_batches(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "batch_size": 4})

    monkeypatch.setattr(importer, "import_batched", small_batches)
    rows = "".join(f"BATCH{n:04d},{STARTING_CODE},{KEY},1,1,0,M1,v1,\n" for n in range(10))
    caplog.set_level(logging.INFO, logger="paygkit.server")
    done = upload(server, HEADER + rows)
    assert done.status_code == 200, done.text
    report = done.json()
    assert (report["imported"], report["batches"]) == (10, 3)
    entries = server.get("/audit", params={"action": "device.import"}).json()["entries"]  # type: ignore[attr-defined]
    assert [(e["details"]["batch"], e["details"]["new"]) for e in entries] == [
        (1, 4),
        (2, 4),
        (3, 2),
    ]
    progress = [r.getMessage() for r in caplog.records if "devices written" in r.getMessage()]
    assert progress[-1].endswith("10 of 10 devices written")
    again = upload(server, HEADER + rows).json()
    assert (again["imported"], again["unchanged"]) == (0, 10)
