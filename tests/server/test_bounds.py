"""Every bad input is a 4xx that changes nothing, on SQLite and PostgreSQL alike.

Each case below once gave a 500 (some on PostgreSQL only); test_fuzz.py looks
for the rest of their class.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from paygkit.server.models import Role
from paygkit.server.services import access
from tests.server.conftest import KEY, STARTING_CODE, Server, snapshot
from tests.server.test_devices import HEADER, upload

pytestmark = pytest.mark.first_pass_only(reason="bad input is refused before any token is made")

SERIAL = "TEST220000001"
BIG_ID = 2**31
HUGE_ID = 10**20


def refused(server: Server, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """The request is answered 422 (or 404), says what is wrong, and changes nothing."""
    before = snapshot(server.db)
    headers = {**server.headers(), **kwargs.pop("headers", {})}
    if "json" in kwargs:  # escaped as \uXXXX: a lone surrogate is sent as JSON allows
        kwargs["content"] = json.dumps(kwargs.pop("json")).encode()
        headers["Content-Type"] = "application/json"
    response = server.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code in (404, 422), (method, path, response.status_code, response.text)
    error = response.json()["error"]
    assert error["message"]
    assert snapshot(server.db) == before
    return error  # type: ignore[no-any-return]


def setup(server: Server) -> None:
    server.add_device(SERIAL, hardware_model="M1", account="ACC")
    response = server.client.put(
        "/tariffs/M1", json={"price_per_day": "10", "currency": "KES"}, headers=server.headers()
    )
    assert response.status_code == 200


PAYMENT = {"provider": "mpesa", "transaction_id": "T1", "amount": "30", "currency": "KES"}


@pytest.mark.parametrize("date", ["9999-12-31", "9999-12-31T23:59:59Z", "0001-01-01"])
def test_dates_out_of_range(server: Server, date: str) -> None:
    setup(server)
    error = refused(
        server,
        "post",
        f"/devices/{SERIAL}/tokens",
        json={"type": "active_until", "until": date},
    )
    assert "between" in error["message"]
    refused(server, "post", f"/devices/{SERIAL}/counts", json={"count": 1, "read_at": date})
    refused(server, "post", "/payments", json={**PAYMENT, "serial": SERIAL, "paid_at": date})


@pytest.mark.parametrize("bad", ["\ud800", "a\x00b"])
def test_text_that_cannot_be_stored(server: Server, bad: str) -> None:
    setup(server)
    for field in ("provider", "transaction_id", "account"):
        body = {**PAYMENT, "serial": SERIAL, field: bad}
        error = refused(server, "post", "/payments", json=body)
        assert field in error["message"]
    refused(server, "post", "/devices", json={"serial": "N1", "key": KEY, "hardware_model": bad})
    refused(server, "patch", f"/devices/{SERIAL}", json={"account": bad})
    refused(server, "post", f"/devices/{SERIAL}/counts", json={"count": 1, "note": bad})
    refused(server, "post", "/api-keys", json={"role": "viewer", "name": bad})
    refused(server, "put", "/webhook", json={"url": f"http://127.0.0.1:9/{bad}"})
    if bad == "\ud800":
        return  # a lone surrogate cannot even be sent in a URL or a header
    refused(server, "get", "/devices", params={"account": bad})
    refused(server, "get", "/audit", params={"target": bad})
    refused(
        server,
        "post",
        f"/devices/{SERIAL}/tokens",
        json={"type": "add_days", "days": 1},
        headers={"Idempotency-Key": f"k{bad}"},
    )


def test_nul_in_paths_and_csv_cells(server: Server) -> None:
    setup(server)
    assert server.client.get("/devices/A%00B", headers=server.headers()).status_code == 422
    assert (
        server.client.put(
            "/tariffs/M%001",
            json={"price_per_day": "1", "currency": "KES"},
            headers=server.headers(),
        ).status_code
        == 422
    )
    before = snapshot(server.db)
    for cell in ("Super\x00Light", "M" * 150):
        row = f"NUL0001,{STARTING_CODE},{KEY},1,1,0,{cell},v1,\n"
        response = upload(server, HEADER + row)
        assert response.status_code == 422, response.text
        assert "Hardware Model" in response.text
    assert snapshot(server.db) == before


def test_values_longer_than_their_column(server: Server) -> None:
    setup(server)
    digits = "9" * 45
    refused(server, "post", "/payments", json={**PAYMENT, "serial": SERIAL, "amount": digits})
    refused(server, "post", "/payments", json={**PAYMENT, "serial": SERIAL, "amount": "1e600000"})
    refused(server, "put", "/tariffs/M1", json={"price_per_day": digits, "currency": "KES"})
    refused(
        server, "patch", f"/devices/{SERIAL}", json={"price_per_day": digits, "currency": "KES"}
    )
    refused(
        server, "post", "/devices", json={"serial": "N1", "key": KEY, "hardware_model": "M" * 150}
    )
    refused(server, "patch", f"/devices/{SERIAL}", json={"hardware_model": "M" * 150})
    refused(server, "put", f"/tariffs/{'M' * 150}", json={"price_per_day": "1", "currency": "KES"})
    refused(server, "post", "/api-keys", json={"role": "viewer", "name": "n" * 101})
    refused(server, "post", f"/devices/{SERIAL}/tokens", json={"type": "add_days", "days": 1},
            headers={"Idempotency-Key": "k" * 300})  # fmt: skip


@pytest.mark.parametrize("big", [BIG_ID, HUGE_ID])
def test_ids_beyond_the_column(server: Server, big: int) -> None:
    setup(server)
    refused(server, "get", f"/payments/{big}")
    refused(server, "post", f"/payments/{big}/apply", json={"serial": SERIAL})
    refused(server, "get", "/payments", params={"before_id": big})
    refused(server, "get", f"/devices/{SERIAL}/tokens", params={"before_id": big})
    refused(server, "get", "/audit", params={"after_id": big})
    refused(server, "delete", f"/api-keys/{big}")
    refused(server, "post", f"/devices/{SERIAL}/counts/{big}/withdraw", json={"reason": "x"})
    refused(server, "post", f"/devices/{SERIAL}/counts", json={"count": big})
    refused(server, "post", "/devices", json={"serial": "N1", "key": KEY, "count": big})


def test_a_key_with_the_longest_name_still_works(server: Server) -> None:
    """Its audit label ("name (key 7, technician)") is cut to fit, never the request."""
    setup(server)
    with server.db.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, server.clock())
        key = access.create_api_key(session, actor, Role.TECHNICIAN, "t" * 100, server.clock()).key
    headers = {"Authorization": f"Bearer {key}"}
    report = server.client.post(f"/devices/{SERIAL}/counts", json={"count": 1}, headers=headers)
    assert report.status_code == 201, report.text
    assert report.json()["report"]["reported_by"].endswith(", technician)")
    assert len(report.json()["report"]["reported_by"]) <= 120
    sync = server.client.post(
        f"/devices/{SERIAL}/tokens", json={"type": "counter_sync"}, headers=headers
    )
    assert sync.status_code == 201, sync.text


@pytest.mark.parametrize("days", [1e11, 1e308, "1e-600000", 10**30])
def test_days_are_bounded_before_any_token_is_made(server: Server, days: object) -> None:
    setup(server)
    refused(server, "post", f"/devices/{SERIAL}/tokens", json={"type": "add_days", "days": days})
    refused(server, "post", f"/devices/{SERIAL}/tokens", json={"type": "set_days", "days": days})


def test_a_far_date_is_refused_as_too_many_tokens(server: Server) -> None:
    setup(server)
    error = refused(
        server,
        "post",
        f"/devices/{SERIAL}/tokens",
        json={"type": "active_until", "until": "2199-12-30"},
    )
    assert "at most 20 are issued" in error["message"]
