"""The console's forms and filters: bad input is a page that says what is wrong, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.console.conftest import BOTH_DATABASES, ConsoleClient, text_of
from tests.server.conftest import Server, snapshot

pytestmark = pytest.mark.first_pass_only(
    reason="the console refuses bad input before any token is made"
)

SERIAL = "TEST220000001"


def _unchanged(server: Server, before: dict[str, list[tuple[object, ...]]]) -> None:
    after = snapshot(server.db)
    after.pop("console_sessions"), before.pop("console_sessions")
    assert after == before


@BOTH_DATABASES
def test_an_overlong_idempotency_key_is_refused(
    browser: Callable[..., ConsoleClient], server: Server
) -> None:
    server.add_device()
    operator = browser("operator")
    operator.get(f"/console/devices/{SERIAL}")
    before = snapshot(server.db)
    response = operator.post(
        f"/console/devices/{SERIAL}/tokens",
        {"type": "add_days", "days": "1", "idempotency_key": "k" * 300},
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in text_of(response.text)
    _unchanged(server, before)


@BOTH_DATABASES
def test_dates_ids_and_text_beyond_their_bounds(
    browser: Callable[..., ConsoleClient], server: Server
) -> None:
    server.add_device()
    admin = browser("admin")
    for params in (
        {"until": "9999-12-31"},
        {"since": "9999-12-31"},
        {"since": "0001-01-01"},
        {"target": "a\x00b"},
        {"before_id": str(2**31)},
    ):
        page = admin.get("/console/audit", params=params)
        assert page.status_code == 422, (params, page.text[:300])
    assert admin.get("/console/devices", params={"q": "a\x00b"}).status_code == 422
    assert admin.get(f"/console/devices/{SERIAL}", params={"before_id": 10**20}).status_code == 422
    admin.get(f"/console/devices/{SERIAL}")
    before = snapshot(server.db)
    for form in (
        {"type": "add_days", "days": "1e11"},
        {"type": "add_days", "days": "9" * 60},
        {"type": "active_until", "until": "9999-12-31"},
    ):
        response = admin.post(f"/console/devices/{SERIAL}/confirm", form)
        assert response.status_code == 422, (form, text_of(response.text)[:300])
    response = admin.post(f"/console/devices/{SERIAL}/counts", {"count": "9" * 30})
    assert response.status_code == 422
    response = admin.post(f"/console/devices/{SERIAL}/counts", {"count": "1", "note": "a\x00b"})
    assert response.status_code == 422
    assert admin.post(f"/console/payments/{2**31}/confirm", {"serial": SERIAL}).status_code == 422
    _unchanged(server, before)
