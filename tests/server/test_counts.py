"""Count reports: drift, unentered tokens, the counter sync offer."""

from __future__ import annotations

from paygkit.token import DeviceParams, TokenType, decode
from tests.server.conftest import KEY, STARTING_CODE, Server, snapshot

PATH = "/devices/TEST220000001/counts"


def test_count_report_shows_drift_and_unentered_tokens(server: Server) -> None:
    server.add_device(decode_window=6)
    for _ in range(3):
        server.client.post(
            "/devices/TEST220000001/tokens",
            json={"type": "add_days", "days": 1},
            headers=server.headers(),
        )
    report = server.client.post(
        PATH,
        json={"count": 2, "source": "display", "note": "read by phone"},
        headers=server.headers("technician"),
    )
    assert report.status_code == 201, report.text
    body = report.json()
    assert body["report"]["count"] == 2
    assert body["report"]["source"] == "display"
    analysis = body["analysis"]
    assert analysis["drift"] == 4
    assert not analysis["counter_sync_suggested"]
    assert [t["count"] for t in analysis["unentered_tokens"]] == [4, 6]
    assert body["device"]["last_count_reported"] == 2

    for _ in range(3):  # now 10 counts ahead of the device, window 6
        server.client.post(
            "/devices/TEST220000001/tokens",
            json={"type": "add_days", "days": 1},
            headers=server.headers(),
        )
    history = server.get(PATH, "viewer").json()  # type: ignore[attr-defined]
    assert history["analysis"]["drift"] == 10
    assert history["analysis"]["counter_sync_suggested"] is True
    assert "Counter Sync" in history["analysis"]["advice"][0]
    assert [r["count"] for r in history["reports"]] == [2]


def test_a_device_ahead_of_the_server_moves_the_server_count_up(server: Server) -> None:
    """Restored from an old backup, the server is behind: confirmed, it moves up."""
    server.add_device()
    refused = server.client.post(PATH, json={"count": 40}, headers=server.headers("operator"))
    assert refused.status_code == 409, refused.text
    assert "confirming that the server is behind" in refused.json()["error"]["fix"]
    # An operator may not confirm it: the people who check devices may.
    operator = server.client.post(
        PATH, json={"count": 40, "server_behind": True}, headers=server.headers("operator")
    )
    assert operator.status_code == 403
    body = server.client.post(
        PATH, json={"count": 40, "server_behind": True}, headers=server.headers("technician")
    ).json()
    assert "moves up to 40" in body["warnings"][0]
    assert body["device"]["last_count_issued"] == 40
    token = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "add_days", "days": 1},
        headers=server.headers(),
    ).json()["tokens"][0]
    assert token["count"] == 42
    entry = server.get("/audit", params={"action": "count.report"}).json()["entries"][-1]  # type: ignore[attr-defined]
    assert entry["details"]["server_behind"] is True
    assert entry["details"]["count_issued_before"] == 1


def test_older_readings_do_not_move_the_device(server: Server) -> None:
    server.add_device()
    for _ in range(3):  # the server issues up to count 6
        server.client.post(
            "/devices/TEST220000001/tokens",
            json={"type": "add_days", "days": 1},
            headers=server.headers(),
        )
    server.client.post(
        PATH, json={"count": 5, "read_at": "2030-01-01T11:00:00Z"}, headers=server.headers()
    )
    older = server.client.post(
        PATH, json={"count": 3, "read_at": "2030-01-01T10:00:00Z"}, headers=server.headers()
    ).json()
    assert older["device"]["last_count_reported"] == 5
    assert "older reading" in older["warnings"][0]


def test_bad_count_reports(server: Server) -> None:
    server.add_device()
    before = snapshot(server.db)
    for body, status in [
        ({"count": -1}, 422),
        ({"count": "many"}, 422),
        ({"count": 3, "source": "telepathy"}, 422),
        ({"count": 3, "read_at": "2031-01-01T00:00:00Z"}, 422),
        ({"count": 3, "note": "x" * 2000}, 422),
    ]:
        response = server.client.post(PATH, json=body, headers=server.headers())
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["message"]
    assert (
        server.client.post(PATH, json={"count": 3}, headers=server.headers("viewer")).status_code
        == 403
    )
    assert (
        server.client.post(
            "/devices/NOPE/counts", json={"count": 3}, headers=server.headers()
        ).status_code
        == 404
    )
    assert snapshot(server.db) == before


def test_a_counter_sync_is_never_below_the_count_a_device_reported(server: Server) -> None:
    """A server restored from an old backup: the device is ahead; the sync goes above it."""
    server.add_device()
    for count, read_at in ((40, "2030-01-01T11:00:00Z"), (30, "2030-01-01T10:00:00Z")):
        answer = server.client.post(
            PATH,
            json={"count": count, "read_at": read_at, "server_behind": True},
            headers=server.headers("technician"),
        )
        assert answer.status_code == 201, answer.text
    sync = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "counter_sync"},
        headers=server.headers("technician"),
    )
    assert sync.status_code == 201, sync.text
    token = sync.json()["tokens"][0]
    assert token["count"] > 40
    device = DeviceParams.create(KEY, STARTING_CODE)
    result = decode(device, token["token"], last_count=40, used_counts=(40,))
    assert (result.token_type, result.last_count) == (TokenType.COUNTER_SYNC, token["count"])


def test_the_reset_token_comes_with_what_it_is(server: Server) -> None:
    server.add_device()
    answer = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "counter_sync", "reset": True},
        headers=server.headers("technician"),
    )
    assert answer.status_code == 201, answer.text
    warning = " ".join(answer.json()["warnings"])
    assert "Never give this token to a customer" in warning
    assert "paygkit devices refuse it unless configured" in warning


def test_an_impossible_count_is_refused_and_changes_nothing(server: Server) -> None:
    """A typo (170 for 16) or a huge count must not brick the device's record."""
    server.add_device()
    before = snapshot(server.db)
    for body, role in [
        ({"count": 170}, "technician"),
        ({"count": 2147483647}, "technician"),
        ({"count": 2147483647}, "admin"),
        # Confirmed, but beyond what each role may confirm.
        ({"count": 170, "server_behind": True}, "technician"),
        ({"count": 2147483647, "server_behind": True}, "technician"),
        ({"count": 2147483647, "server_behind": True}, "admin"),
    ]:
        response = server.client.post(PATH, json=body, headers=server.headers(role))
        assert response.status_code == 409, (body, role, response.text)
        error = response.json()["error"]
        assert "nothing was recorded" in error["message"]
        assert error["fix"]
    assert snapshot(server.db) == before
    token = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "add_days", "days": 1},
        headers=server.headers(),
    )
    assert token.status_code == 201
    assert token.json()["tokens"][0]["count"] == 2


def test_an_admin_may_confirm_a_larger_gap(server: Server) -> None:
    server.add_device()
    answer = server.client.post(
        PATH, json={"count": 5001, "server_behind": True}, headers=server.headers()
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["device"]["last_count_issued"] == 5001


def test_a_mistaken_report_is_withdrawn_by_an_admin_and_audited(server: Server) -> None:
    server.add_device()
    for _ in range(8):  # the server issues up to count 16
        server.client.post(
            "/devices/TEST220000001/tokens",
            json={"type": "add_days", "days": 1},
            headers=server.headers(),
        )
    good = server.client.post(
        PATH, json={"count": 14, "read_at": "2030-01-01T10:00:00Z"}, headers=server.headers()
    ).json()["report"]
    # 61 instead of 16, confirmed by mistake as a server behind the device.
    wrong = server.client.post(
        PATH,
        json={"count": 61, "server_behind": True, "read_at": "2030-01-01T11:00:00Z"},
        headers=server.headers("technician"),
    ).json()
    assert wrong["device"]["last_count_issued"] == 61
    report_id = wrong["report"]["id"]
    withdraw = f"{PATH}/{report_id}/withdraw"
    for role in ("operator", "technician", "viewer"):
        response = server.client.post(
            withdraw, json={"reason": "typo"}, headers=server.headers(role)
        )
        assert response.status_code == 403
    missing_reason = server.client.post(withdraw, json={}, headers=server.headers())
    assert missing_reason.status_code == 422
    answer = server.client.post(
        withdraw, json={"reason": "typed 61 for 16"}, headers=server.headers()
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["withdrawn"]["count"] == 61
    assert body["device"]["last_count_issued"] == 16
    assert body["device"]["last_count_reported"] == good["count"]
    # The history keeps the mistaken reading, marked withdrawn with who and why.
    history = server.get(PATH).json()  # type: ignore[attr-defined]
    shown = {r["id"]: r for r in history["reports"]}
    assert set(shown) == {good["id"], report_id}
    assert shown[good["id"]]["withdrawn"] is None
    assert shown[report_id]["count"] == 61
    assert shown[report_id]["withdrawn"]["reason"] == "typed 61 for 16"
    assert shown[report_id]["withdrawn"]["by"]
    entry = server.get("/audit", params={"action": "count.withdraw"}).json()["entries"][0]  # type: ignore[attr-defined]
    assert entry["details"]["reason"] == "typed 61 for 16"
    assert entry["details"]["report"]["count"] == 61
    assert entry["details"]["count_issued"] == [61, 16]
    before = snapshot(server.db)
    again = server.client.post(withdraw, json={"reason": "again"}, headers=server.headers())
    assert again.status_code == 409
    assert "already withdrawn" in again.json()["error"]["message"]
    assert snapshot(server.db) == before
    token = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "add_days", "days": 1},
        headers=server.headers(),
    ).json()["tokens"][0]
    assert token["count"] == 18


def test_withdrawing_never_moves_the_server_below_a_token_issued_since(server: Server) -> None:
    server.add_device()
    server.client.post(
        PATH, json={"count": 40, "server_behind": True}, headers=server.headers("technician")
    )
    token = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "add_days", "days": 1},
        headers=server.headers(),
    ).json()["tokens"][0]
    assert token["count"] == 42
    report_id = server.get(PATH).json()["reports"][0]["id"]  # type: ignore[attr-defined]
    answer = server.client.post(
        f"{PATH}/{report_id}/withdraw", json={"reason": "wrong device"}, headers=server.headers()
    ).json()
    assert answer["device"]["last_count_issued"] == 42
    assert "never used twice" in answer["warnings"][0]
