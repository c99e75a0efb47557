"""POST/GET /devices/{serial}/tokens: every kind, splitting, the window, idempotency, roles."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from paygkit.device.firmware import OutcomeKind
from paygkit.token import TokenType
from tests.server.conftest import Server, simulated_device, snapshot

SERIAL = "TEST220000001"
PATH = f"/devices/{SERIAL}/tokens"


def issue(server: Server, body: dict[str, Any], role: str = "admin", **headers: str) -> Any:
    return server.client.post(PATH, json=body, headers=server.headers(role, **headers))


def test_add_days_is_accepted_by_the_device_and_recorded(server: Server) -> None:
    server.add_device()
    response = issue(server, {"type": "add_days", "days": 7})
    assert response.status_code == 201, response.text
    body = response.json()
    (token,) = body["tokens"]
    # The published first token of the test device: 7 days at count 2.
    assert token["token"] == "397 287 017"
    assert (token["type"], token["units"], token["days"], token["count"]) == ("add_time", 7, "7", 2)
    assert (token["count_before"], token["count_after"]) == (1, 2)
    assert token["issued_by"].startswith("admin")
    assert token["source"] == "api"
    assert token["issued_at"] == "2030-01-01T12:00:00Z"
    assert body["device"]["last_count_issued"] == 2
    assert body["device"]["active_until"] == "2030-01-08T12:00:00Z"
    device = simulated_device()
    outcome = device.enter_token(token["digits"])
    assert outcome.kind is OutcomeKind.APPLIED
    assert outcome.units == 7

    history = server.get(PATH).json()["tokens"]  # type: ignore[attr-defined]
    assert [t["digits"] for t in history] == [token["digits"]]


def test_every_kind_in_order_is_accepted_by_a_simulated_device(server: Server) -> None:
    server.add_device(time_divider=1)
    requests: list[dict[str, Any]] = [
        {"type": "add_days", "days": 7},
        {"type": "set_days", "days": 30},
        {"type": "add_days", "days": "1.5"},
        {"type": "active_until", "until": "2030-03-01"},
        {"type": "active_until", "until": "2030-01-05T12:00:00Z"},
        {"type": "disable_payg"},
        {"type": "set_days", "days": 0, "lock": True},
        {"type": "counter_sync"},
    ]
    made = []
    for body in requests:
        role = "technician" if body["type"] == "counter_sync" else "admin"
        response = issue(server, body, role)
        assert response.status_code == 201, response.text
        made += response.json()["tokens"]
    counts = [t["count"] for t in made]
    assert counts == sorted(counts)
    assert len(set(counts)) == len(counts)
    device = simulated_device()
    for token in made:
        outcome = device.enter_token(token["digits"])
        assert outcome.kind is OutcomeKind.APPLIED, (token, outcome)
        assert outcome.token_type is TokenType(token["type"])
    assert device.status().count == counts[-1]


def test_more_than_995_units_become_several_add_time_tokens(server: Server) -> None:
    server.add_device(time_divider=4)
    response = issue(server, {"type": "add_days", "days": 600})  # 2400 units
    assert response.status_code == 201, response.text
    made = response.json()["tokens"]
    assert [t["units"] for t in made] == [995, 995, 410]
    assert {t["type"] for t in made} == {"add_time"}
    assert len({t["request_id"] for t in made}) == 1
    device = simulated_device(time_divider=4)
    for token in made:
        assert device.enter_token(token["digits"]).kind is OutcomeKind.APPLIED
    assert device.status().seconds_left == 600 * 86400


def test_set_days_beyond_995_units_is_a_set_then_adds(server: Server) -> None:
    server.add_device()
    made = issue(server, {"type": "set_days", "days": 1000}).json()["tokens"]
    assert [(t["type"], t["units"]) for t in made] == [("set_time", 995), ("add_time", 5)]


def test_active_until_adds_beyond_the_furthest_date_and_sets_below_it(server: Server) -> None:
    server.add_device()
    first = issue(server, {"type": "active_until", "until": "2030-01-10T12:00:00Z"}).json()
    assert [(t["type"], t["units"]) for t in first["tokens"]] == [("add_time", 9)]
    # Beyond the furthest date: Add Time with the difference.
    later = issue(server, {"type": "active_until", "until": "2030-01-15"}).json()
    assert [(t["type"], t["units"]) for t in later["tokens"]] == [("add_time", 6)]
    assert later["device"]["active_until"] == "2030-01-16T12:00:00Z"  # whole days, rounded up
    # Earlier than what was already given: Set Time from now.
    earlier = issue(server, {"type": "active_until", "until": "2030-01-04T12:00:00Z"}).json()
    assert [(t["type"], t["units"]) for t in earlier["tokens"]] == [("set_time", 3)]
    assert earlier["device"]["active_until"] == "2030-01-04T12:00:00Z"
    assert earlier["device"]["furthest_until"] == "2030-01-04T12:00:00Z"


def test_active_until_on_a_disabled_device_uses_set_time(server: Server) -> None:
    server.add_device()
    issue(server, {"type": "disable_payg"})
    body = issue(server, {"type": "active_until", "until": "2030-02-01T12:00:00Z"}).json()
    assert [(t["type"], t["units"]) for t in body["tokens"]] == [("set_time", 31)]
    assert body["device"]["payg_enabled"] is True


def test_add_time_counts_from_now_once_the_device_expired(server: Server) -> None:
    server.add_device()
    issue(server, {"type": "add_days", "days": 2})
    server.clock.advance(days=10)
    body = issue(server, {"type": "add_days", "days": 1}).json()
    assert body["device"]["active_until"] == "2030-01-12T12:00:00Z"
    assert body["device"]["active"] is True


def test_reset_token_is_for_technicians_only(server: Server) -> None:
    server.add_device()
    issue(server, {"type": "add_days", "days": 1})
    for role in ("admin", "operator", "viewer"):
        before = snapshot(server.db)
        refused = issue(server, {"type": "counter_sync", "reset": True}, role)
        assert refused.status_code == 403, refused.text
        assert "technician" in refused.json()["error"]["fix"]
        assert snapshot(server.db) == before
    response = issue(server, {"type": "counter_sync", "reset": True}, "technician")
    assert response.status_code == 201, response.text
    (token,) = response.json()["tokens"]
    assert (token["type"], token["count"], token["reset"]) == ("counter_sync", 0, True)
    assert response.json()["device"]["last_count_issued"] == 2  # unchanged
    assert any("reset" in w for w in response.json()["warnings"])
    # A paygkit device refuses it; one configured to take it goes back to count 0.
    refusing = simulated_device(count=30)
    assert refusing.enter_token(token["digits"]).kind is OutcomeKind.ALREADY_USED
    assert refusing.status().count == 30
    device = simulated_device(count=30, accept_reset_token=True)
    outcome = device.enter_token(token["digits"])
    assert outcome.kind is OutcomeKind.APPLIED
    assert device.status().count == 0


def test_technician_may_issue_counter_sync_but_not_time(server: Server) -> None:
    server.add_device()
    assert issue(server, {"type": "counter_sync"}, "technician").status_code == 201
    refused = issue(server, {"type": "add_days", "days": 1}, "technician")
    assert refused.status_code == 403
    assert issue(server, {"type": "add_days", "days": 1}, "viewer").status_code == 403
    assert issue(server, {"type": "add_days", "days": 1}, "operator").status_code == 201


def test_idempotency_key_returns_the_same_answer(server: Server) -> None:
    server.add_device()
    first = issue(server, {"type": "add_days", "days": 3}, **{"Idempotency-Key": "abc-1"})
    again = issue(server, {"type": "add_days", "days": 3}, **{"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["replayed"] is True
    assert again.json()["tokens"] == first.json()["tokens"]
    assert len(server.get(PATH).json()["tokens"]) == 1  # type: ignore[attr-defined]
    before = snapshot(server.db)
    other = issue(server, {"type": "add_days", "days": 4}, **{"Idempotency-Key": "abc-1"})
    assert other.status_code == 409
    assert "different request" in other.json()["error"]["message"]
    assert snapshot(server.db) == before
    fresh = issue(server, {"type": "add_days", "days": 3}, **{"Idempotency-Key": "abc-2"})
    assert fresh.json()["tokens"][0]["count"] == 4


def test_tokens_beyond_the_decode_window_warn_or_are_refused(server: Server) -> None:
    server.add_device(decode_window=8)
    for _ in range(3):
        response = issue(server, {"type": "add_days", "days": 1})  # counts 2, 4, 6
        assert response.json()["warnings"] == []
    near = issue(server, {"type": "add_days", "days": 1})  # count 8: 0 left
    (warning,) = near.json()["warnings"]
    assert warning.endswith("counts left in its decode window of 8; report the device's count")
    before = snapshot(server.db)
    refused = issue(server, {"type": "add_days", "days": 1, "on_window": "refuse"})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert "accepts tokens up to count 9" in error["message"]
    # The service says what to do in words of the operation, never an endpoint.
    assert error["fix"] == "report the count shown by the device, or issue a Counter Sync token"
    assert snapshot(server.db) == before
    warned = issue(server, {"type": "add_days", "days": 1})
    assert warned.status_code == 201
    assert "accepts tokens up to count 9" in warned.json()["warnings"][0]
    # Once the device reports its count, the window moves on.
    server.client.post(
        f"/devices/{SERIAL}/counts", json={"count": 8}, headers=server.headers("technician")
    )
    assert issue(server, {"type": "add_days", "days": 1}).json()["warnings"] == []


def test_history_pages_newest_first(server: Server) -> None:
    server.add_device()
    for days in range(1, 6):
        issue(server, {"type": "add_days", "days": days})
    page = server.client.get(PATH, params={"limit": 2}, headers=server.headers("viewer")).json()
    assert [t["units"] for t in page["tokens"]] == [5, 4]
    rest = server.client.get(
        PATH, params={"limit": 10, "before_id": page["next_before_id"]}, headers=server.headers()
    ).json()
    assert [t["units"] for t in rest["tokens"]] == [3, 2, 1]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "add_days"}, "needs 'days'"),
        ({"type": "add_days", "days": -1}, "days: Input should be greater than or equal to 0"),
        ({"type": "add_days", "days": "NaN"}, "finite"),
        ({"type": "set_days", "days": 1, "until": "2030-01-01"}, "takes no 'until'"),
        ({"type": "disable_payg", "days": 1}, "takes no 'days'"),
        ({"type": "active_until"}, "needs 'until'"),
        ({"type": "active_until", "until": "next tuesday"}, "ISO 8601"),
        ({"type": "add_days", "days": 1, "reset": True}, "counter_sync only"),
        ({"type": "make_money"}, "type"),
        ({"type": "add_days", "days": 1, "colour": "red"}, "colour"),
        ({"type": "add_days", "days": 100_000}, "at most 20 are issued"),
    ],
)
def test_bad_requests_are_clear_and_change_nothing(
    server: Server, body: dict[str, Any], expected: str
) -> None:
    server.add_device()
    before = snapshot(server.db)
    response = issue(server, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert expected in error["message"]
    assert snapshot(server.db) == before


def test_unknown_device_and_bad_idempotency_key(server: Server) -> None:
    response = server.client.post(
        "/devices/NOPE1/tokens", json={"type": "add_days", "days": 1}, headers=server.headers()
    )
    assert response.status_code == 404
    assert "import the device list" in response.json()["error"]["fix"]
    server.add_device()
    bad = issue(server, {"type": "add_days", "days": 1}, **{"Idempotency-Key": "x" * 300})
    assert bad.status_code == 422
    assert "Idempotency-Key" in bad.json()["error"]["message"]


def test_times_are_utc(server: Server) -> None:
    server.add_device()
    server.clock.now = dt.datetime(2030, 6, 1, 8, 30, tzinfo=dt.UTC)
    body = issue(server, {"type": "active_until", "until": "2030-06-02T10:30:00+02:00"}).json()
    assert body["tokens"][0]["issued_at"] == "2030-06-01T08:30:00Z"
    assert body["device"]["active_until"] == "2030-06-02T08:30:00Z"


# --- tokens worth nothing, and locks nobody asked for (issue 13) ------------------------


@pytest.mark.parametrize(
    ("divider", "body", "message", "fix"),
    [
        (1, {"type": "add_days", "days": 0}, "0 days = 0 units at 1 unit a day", "at least 1 day"),
        (
            4,
            {"type": "add_days", "days": "0.1"},
            "0.1 days = 0.4 units at 4 units a day, rounded to 0 units = no time: the token "
            "would add no time and still use up a count",
            "at least 0.25 day (1 unit = 6 h)",
        ),
        (
            1,
            {"type": "set_days", "days": 0},
            "Set Time 0 token, which locks the device at once",
            "to lock the device on purpose ask for set_days with days 0 and 'lock'",
        ),
        (
            4,
            {"type": "set_days", "days": "0.1"},
            "which locks the device at once",
            "set_days with days 0 and 'lock'",
        ),
        (
            1,
            {"type": "active_until", "until": "2020-01-01"},
            "2020-01-02 00:00 UTC is not in the future: that is a Set Time 0 token, which locks",
            "set_days with days 0 and 'lock'",
        ),
    ],
)
def test_a_token_worth_nothing_or_locking_the_device_is_refused(
    server: Server, divider: int, body: dict[str, Any], message: str, fix: str
) -> None:
    server.add_device(time_divider=divider)
    before = snapshot(server.db)
    response = issue(server, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert "nothing was issued" in error["message"]
    assert fix in error["fix"]
    assert snapshot(server.db) == before  # no count used


def test_locking_is_its_own_request_for_admins_and_technicians_and_audited(
    server: Server,
) -> None:
    server.add_device()
    issue(server, {"type": "add_days", "days": 5})
    lock = {"type": "set_days", "days": 0, "lock": True}
    for role in ("operator", "viewer"):
        before = snapshot(server.db)
        refused = issue(server, lock, role)
        assert refused.status_code == 403, refused.text
        assert "may not lock a device" in refused.json()["error"]["message"]
        assert snapshot(server.db) == before
    for role in ("admin", "technician"):
        response = issue(server, lock, role)
        assert response.status_code == 201, response.text
        (token,) = response.json()["tokens"]
        assert (token["type"], token["units"]) == ("set_time", 0)
        assert response.json()["device"]["active"] is False
    # "days" may be left out of a lock; a lock with time is refused.
    assert issue(server, {"type": "set_days", "lock": True}).status_code == 201
    wrong = issue(server, {"type": "set_days", "days": 3, "lock": True})
    assert wrong.status_code == 422
    assert "'lock' goes with set_days and days 0 only" in wrong.json()["error"]["message"]
    assert issue(server, {"type": "add_days", "days": 0, "lock": True}).status_code == 422
    entries = server.get("/audit", params={"action": "token.lock"}).json()["entries"]  # type: ignore[attr-defined]
    assert len(entries) == 3
    # The lock is a genuine Set Time 0: the device takes it and stops.
    device = simulated_device()
    history = server.get(PATH).json()["tokens"]  # type: ignore[attr-defined]
    for made in reversed(history):
        assert device.enter_token(made["digits"]).kind is OutcomeKind.APPLIED
    assert device.status().seconds_left == 0


@pytest.mark.parametrize(
    ("divider", "body", "text", "units"),
    [
        (
            4,
            {"type": "add_days", "days": "0.3"},
            "0.3 days = 1.2 units at 4 units a day, rounded to 1 unit = 6 h",
            1,
        ),
        (4, {"type": "add_days", "days": 7}, "7 days = 28 units at 4 units a day = 7 days", 28),
        (
            1,
            {"type": "set_days", "days": "1.5"},
            "1.5 days from now = 1.5 units at 1 unit a day, rounded to 2 units = 2 days",
            2,
        ),
        (
            24,
            {"type": "active_until", "until": "2030-01-02T12:30:00Z"},
            "until 2030-01-02 12:30 UTC: 1 day 30 min after 2030-01-01 12:00 UTC, the "
            "furthest date issued = 24.5 units at 24 units a day, rounded up to 25 units "
            "= 1 day 1 h",
            25,
        ),
    ],
)
def test_the_answer_shows_units_and_rounding(
    server: Server, divider: int, body: dict[str, Any], text: str, units: int
) -> None:
    server.add_device(time_divider=divider)
    response = issue(server, body)
    assert response.status_code == 201, response.text
    time = response.json()["time"]
    assert time["text"] == text
    assert time["units"] == units == sum(t["units"] for t in response.json()["tokens"])
    assert time["units_per_day"] == divider


def test_tokens_without_time_have_no_time_explanation(server: Server) -> None:
    server.add_device()
    assert issue(server, {"type": "disable_payg"}).json()["time"] is None
