"""Payments: tariffs, tokens from money, replays, conflicts and the orphan queue."""

from __future__ import annotations

from typing import Any

import pytest

from paygkit.device.firmware import OutcomeKind
from tests.server.conftest import KEY, Server, simulated_device, snapshot

KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"


def pay(server: Server, role: str = "operator", **fields: Any) -> Any:
    body = {"provider": "mpesa", "transaction_id": "T1", "amount": "300", "currency": "KES"}
    body.update(fields)
    return server.client.post("/payments", json=body, headers=server.headers(role))


def tariff(
    server: Server, model: str = "SuperLight", price: str = "50", currency: str = "KES"
) -> None:
    response = server.client.put(
        f"/tariffs/{model}",
        json={"price_per_day": price, "currency": currency},
        headers=server.headers(),
    )
    assert response.status_code == 200, response.text


def test_payment_by_account_buys_days_by_the_model_tariff(server: Server) -> None:
    server.add_device(account="ACC-1", hardware_model="SuperLight")
    tariff(server)
    response = pay(server, account="ACC-1", paid_at="2030-01-01T10:00:00Z")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["payment"]["status"] == "applied"
    assert body["payment"]["units"] == 6
    assert body["payment"]["device"] == "TEST220000001"
    (token,) = body["tokens"]
    assert (token["type"], token["units"], token["source"]) == ("add_time", 6, "payment")
    assert token["payment_id"] == body["payment"]["id"]
    device = simulated_device()
    assert device.enter_token(token["digits"]).kind is OutcomeKind.APPLIED
    assert server.get("/tariffs").json()["models"][0]["price_per_day"] == "50"  # type: ignore[attr-defined]


def test_the_device_tariff_wins_and_money_rounds_down(server: Server) -> None:
    server.add_device(hardware_model="SuperLight", time_divider=4)
    tariff(server)
    server.client.patch(
        "/devices/TEST220000001",
        json={"price_per_day": "40", "currency": "KES"},
        headers=server.headers(),
    )
    body = pay(server, serial="TEST220000001", amount="130").json()
    assert body["payment"]["units"] == 13  # 130/40 = 3.25 days = 13 quarter days
    assert body["payment"]["days"] == "3.25"


def test_replay_returns_the_original_token_and_a_different_payment_is_refused(
    server: Server,
) -> None:
    server.add_device(hardware_model="SuperLight")
    tariff(server)
    first = pay(server, serial="TEST220000001")
    replay = pay(server, serial="TEST220000001")
    assert first.status_code == 201
    assert replay.status_code == 200
    assert replay.json()["replayed"] is True
    assert replay.json()["tokens"] == first.json()["tokens"]
    history = server.get("/devices/TEST220000001/tokens").json()["tokens"]  # type: ignore[attr-defined]
    assert len(history) == 1
    before = snapshot(server.db)
    other = pay(server, serial="TEST220000001", amount="500")
    assert other.status_code == 409
    assert "different amount" in other.json()["error"]["message"]
    assert snapshot(server.db) == before
    # Another provider may use the same transaction id.
    assert pay(server, provider="airtel", serial="TEST220000001").status_code == 201


@pytest.mark.parametrize(
    ("setup", "fields", "reason"),
    [
        ("none", {"account": "NOBODY"}, "no device has account NOBODY"),
        ("two", {"account": "ACC-1"}, "several devices"),
        ("no_tariff", {"serial": "TEST220000001"}, "has no tariff"),
        ("usd", {"serial": "TEST220000001"}, "is in USD, not KES"),
        ("tiny", {"serial": "TEST220000001", "amount": "1"}, "less than one time unit"),
        ("one", {"serial": "UNKNOWN1"}, "no device has serial UNKNOWN1"),
        ("one", {"serial": "TEST220000001", "account": "ACC-2"}, "does not belong"),
    ],
)
def test_orphans_wait_and_are_applied_by_hand(
    server: Server, setup: str, fields: dict[str, str], reason: str
) -> None:
    if setup != "none":
        server.add_device(account="ACC-1", hardware_model="SuperLight")
    if setup == "two":
        server.add_device("TEST220000002", key=KEY2, account="ACC-1", hardware_model="SuperLight")
    if setup in ("two", "one", "tiny", "none"):
        tariff(server)
    if setup == "usd":
        tariff(server, currency="USD")
    response = pay(server, **fields)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["payment"]["status"] == "orphan"
    assert body["tokens"] == []
    assert reason in body["payment"]["orphan_reason"]
    orphans = server.client.get(
        "/payments", params={"status": "orphan"}, headers=server.headers("viewer")
    ).json()["payments"]
    assert [p["payment"]["id"] for p in orphans] == [body["payment"]["id"]]
    # Replaying an orphan returns it as it is.
    assert pay(server, **fields).json()["payment"]["status"] == "orphan"

    payment_id = body["payment"]["id"]
    if setup in ("none", "one") and setup == "none":
        server.add_device(account="ACC-1", hardware_model="SuperLight")
    if setup in ("no_tariff", "usd"):
        before = snapshot(server.db)
        refused = server.client.post(
            f"/payments/{payment_id}/apply",
            json={"serial": "TEST220000001"},
            headers=server.headers("operator"),
        )
        assert refused.status_code == 422
        assert "tariff" in refused.json()["error"]["fix"]
        assert snapshot(server.db) == before
        tariff(server)
    if setup == "tiny":
        return
    applied = server.client.post(
        f"/payments/{payment_id}/apply",
        json={"serial": "TEST220000001"},
        headers=server.headers("operator"),
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["payment"]["status"] == "applied"
    assert applied.json()["tokens"][0]["units"] == 6
    again = server.client.post(
        f"/payments/{payment_id}/apply",
        json={"serial": "TEST220000001"},
        headers=server.headers("operator"),
    )
    assert again.status_code == 409
    got = server.get(f"/payments/{payment_id}", "viewer").json()  # type: ignore[attr-defined]
    assert got["payment"]["status"] == "applied"
    assert len(got["tokens"]) == 1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"amount": "-5", "serial": "TEST220000001"},
            "amount: Input should be greater than or equal to 0",
        ),
        ({"amount": "0", "serial": "TEST220000001"}, "above 0"),
        ({"amount": "abc", "serial": "TEST220000001"}, "amount"),
        ({"currency": "shillings", "serial": "TEST220000001"}, "currency"),
        ({}, "account or a serial"),
        ({"provider": "", "serial": "TEST220000001"}, "provider"),
        ({"transaction_id": "x" * 200, "serial": "TEST220000001"}, "transaction_id"),
        ({"paid_at": "yesterday", "serial": "TEST220000001"}, "paid_at"),
    ],
)
def test_bad_payments_are_refused_and_change_nothing(
    server: Server, fields: dict[str, str], expected: str
) -> None:
    server.add_device(hardware_model="SuperLight")
    tariff(server)
    before = snapshot(server.db)
    response = pay(server, **fields)
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"]["message"]
    assert snapshot(server.db) == before


def test_payment_roles(server: Server) -> None:
    server.add_device(hardware_model="SuperLight")
    tariff(server)
    for role in ("technician", "viewer"):
        assert pay(server, role, serial="TEST220000001").status_code == 403
    assert pay(server, "admin", serial="TEST220000001").status_code == 201
    assert KEY not in pay(server, "admin", serial="TEST220000001").text


def test_the_answer_shows_what_the_money_bought_and_the_rounding(server: Server) -> None:
    server.add_device(hardware_model="SuperLight", time_divider=4)
    tariff(server, price="40")
    body = pay(server, serial="TEST220000001", amount="45").json()
    assert body["time"]["text"] == (
        "45 KES at 40 KES a day = 1.125 days = 4.5 units at 4 units a day, "
        "rounded down to 4 units = 1 day"
    )
    assert body["time"]["units"] == body["payment"]["units"] == 4


def test_a_payment_worth_less_than_one_unit_waits_and_says_what_a_unit_costs(
    server: Server,
) -> None:
    server.add_device(hardware_model="SuperLight", time_divider=4)
    tariff(server, price="40")
    body = pay(server, serial="TEST220000001", amount="9").json()
    assert body["payment"]["status"] == "orphan"
    reason = body["payment"]["orphan_reason"]
    assert "9 KES buys less than one time unit" in reason
    assert "0.9 units at 4 units a day, rounded down to 0 units" in reason
    assert "one unit (6 h) costs 10 KES" in reason
    before = snapshot(server.db)
    refused = server.client.post(
        f"/payments/{body['payment']['id']}/apply",
        json={"serial": "TEST220000001"},
        headers=server.headers("operator"),
    )
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "would still use up a count" in error["message"]
    assert "orphan queue" in error["fix"]
    assert snapshot(server.db) == before
