"""Authentication, every role refusal, API keys, audit log, errors and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import KEY, Server, snapshot

pytestmark = pytest.mark.first_pass_only(
    reason="who may do what is decided before any token is made"
)

# The staff roles read the fleet; an agent reads only their own token books.
ALL = {"admin", "operator", "technician", "viewer"}
ROLES = ALL | {"agent"}
BOOK = {
    "agent_key_id": 1,
    "serials": ["TEST220000001"],
    "steps": 1,
    "menu": [1],
    "value_cap_days": 10,
    "expires_at": "2030-01-02",
}
HANDOUT = {
    "id": "h1",
    "serial": "TEST220000001",
    "count": 2,
    "days": 1,
    "amount": 1,
    "currency": "KES",
    "handed_out_at": "2030-01-01",
}
# (method, path, body, roles allowed)
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("get", "/me", None, ROLES),
    ("get", "/devices", None, ALL),
    ("get", "/devices/TEST220000001", None, ALL),
    ("post", "/devices", {"serial": "NEW1", "key": KEY}, {"admin"}),
    ("patch", "/devices/TEST220000001", {"account": "A"}, {"admin"}),
    ("post", "/devices/import?dry_run=true", None, {"admin"}),
    ("post", "/devices/export-keys", None, {"admin"}),
    (
        "post",
        "/devices/TEST220000001/tokens",
        {"type": "add_days", "days": 1},
        {"admin", "operator"},
    ),
    ("post", "/devices/TEST220000001/tokens", {"type": "disable_payg"}, {"admin", "operator"}),
    (
        "post",
        "/devices/TEST220000001/tokens",
        {"type": "counter_sync"},
        {"technician"},
    ),
    (
        "post",
        "/devices/TEST220000001/tokens",
        {"type": "counter_sync", "reset": True},
        {"technician"},
    ),
    ("get", "/devices/TEST220000001/tokens", None, ALL),
    ("post", "/devices/TEST220000001/counts", {"count": 1}, {"admin", "operator", "technician"}),
    ("get", "/devices/TEST220000001/counts", None, ALL),
    (
        "post",
        "/payments",
        {"provider": "p", "transaction_id": "t", "serial": "X1", "amount": 1, "currency": "USD"},
        {"admin", "operator"},
    ),
    ("get", "/payments", None, ALL),
    ("post", "/payments/1/apply", {"serial": "TEST220000001"}, {"admin", "operator"}),
    ("get", "/tariffs", None, ALL),
    ("put", "/tariffs/M1", {"price_per_day": 1, "currency": "USD"}, {"admin"}),
    ("get", "/webhook", None, ALL),
    ("put", "/webhook", {"url": "http://127.0.0.1:9/hook"}, {"admin"}),
    ("delete", "/webhook", None, {"admin"}),
    ("get", "/webhook/deliveries", None, ALL),
    ("get", "/api-keys", None, {"admin"}),
    ("post", "/api-keys", {"role": "viewer", "name": "n"}, {"admin"}),
    ("delete", "/api-keys/999", None, {"admin"}),
    ("get", "/audit", None, {"admin"}),
    ("post", "/books", BOOK, {"admin", "operator"}),
    ("get", "/books", None, ROLES),
    ("get", "/books/1", None, ROLES),
    ("get", "/books/1/tokens", None, {"agent"}),
    ("post", "/books/1/sync", {"handouts": [HANDOUT]}, {"admin", "operator", "agent"}),
    ("post", "/books/1/close", {}, {"admin", "operator"}),
    ("post", "/books/expire", None, {"admin", "operator"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"),
    ENDPOINTS,
    ids=[f"{m} {p} {b}" for m, p, b, _ in ENDPOINTS],
)
def test_every_endpoint_refuses_the_roles_it_must(
    server: Server, method: str, path: str, body: Any, allowed: set[str]
) -> None:
    server.add_device()
    for role in sorted(ROLES - allowed):
        before = snapshot(server.db)
        response = server.client.request(method, path, json=body, headers=server.headers(role))
        assert response.status_code == 403, (role, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden"
        assert f"the {role} role may not" in error["message"]
        assert "use an API key with the role" in error["fix"]
        assert snapshot(server.db) == before
    for role in sorted(allowed):
        response = server.client.request(method, path, json=body, headers=server.headers(role))
        assert response.status_code != 403, (role, response.text)


def test_no_bad_or_revoked_key_is_refused(server: Server) -> None:
    server.add_device()
    assert server.client.get("/devices").status_code == 401
    assert "Bearer" in server.client.get("/devices").json()["error"]["fix"]
    bad = server.client.get("/devices", headers={"Authorization": "Bearer pgk_nope"})
    assert bad.status_code == 401
    assert "not known" in bad.json()["error"]["message"]
    basic = server.client.get("/devices", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    assert (
        server.client.get("/devices", headers={"X-API-Key": server.keys["viewer"]}).status_code
        == 200
    )
    created = server.client.post(
        "/api-keys", json={"role": "operator", "name": "till 1"}, headers=server.headers()
    )
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["key"].startswith("pgk_")
    assert new["role"] == "operator"
    listed = server.get("/api-keys").json()["api_keys"]  # type: ignore[attr-defined]
    assert new["key"] not in str(listed)
    assert len(listed) == 6
    headers = {"Authorization": f"Bearer {new['key']}"}
    assert server.client.get("/me", headers=headers).json()["role"] == "operator"
    token = {"type": "add_days", "days": 1}
    path = "/devices/TEST220000001/tokens"
    assert server.client.post(path, json=token, headers=headers).status_code == 201
    revoked = server.client.delete(f"/api-keys/{new['id']}", headers=server.headers())
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    after = server.client.get("/me", headers=headers)
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]["message"]
    # At once, although the key was seen valid a moment ago: nothing is issued.
    before = snapshot(server.db)
    refused = server.client.post(path, json=token, headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    assert snapshot(server.db) == before
    assert (
        server.client.delete(f"/api-keys/{new['id']}", headers=server.headers()).status_code == 409
    )
    bad_role = server.client.post(
        "/api-keys", json={"role": "king", "name": "x"}, headers=server.headers()
    )
    assert bad_role.status_code == 422
    assert "admin, operator" in bad_role.json()["error"]["fix"]


def test_every_change_is_in_the_audit_log_in_utc(server: Server) -> None:
    server.add_device(hardware_model="M1")
    server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "add_days", "days": 2},
        headers=server.headers(),
    )
    server.client.post("/devices/TEST220000001/counts", json={"count": 2}, headers=server.headers())
    server.client.put(
        "/tariffs/M1", json={"price_per_day": "1", "currency": "USD"}, headers=server.headers()
    )
    server.client.post(
        "/payments",
        json={
            "provider": "p",
            "transaction_id": "1",
            "serial": "TEST220000001",
            "amount": 2,
            "currency": "USD",
        },
        headers=server.headers(),
    )
    server.client.put("/webhook", json={"url": "http://127.0.0.1:9/x"}, headers=server.headers())
    server.client.patch("/devices/TEST220000001", json={"account": "A1"}, headers=server.headers())
    entries = server.get("/audit").json()["entries"]  # type: ignore[attr-defined]
    actions = [e["action"] for e in entries]
    assert actions == [
        "api_key.create",
        "api_key.create",
        "api_key.create",
        "api_key.create",
        "api_key.create",
        "device.create",
        "token.issue",
        "count.report",
        "tariff.set",
        "token.issue",
        "payment.record",
        "webhook.set",
        "device.update",
    ]
    assert all(e["at"].endswith("Z") for e in entries)
    assert entries[6]["details"]["counts"] == [2]
    assert entries[6]["actor"].startswith("admin")
    page = server.client.get(
        "/audit", params={"after_id": entries[-2]["id"]}, headers=server.headers()
    ).json()
    assert [e["action"] for e in page["entries"]] == ["device.update"]

    # Filters: an action, an action prefix ending in ".", a part of the target.
    def actions_for(**filters: str) -> list[str]:
        answer = server.client.get("/audit", params=filters, headers=server.headers())
        return [e["action"] for e in answer.json()["entries"]]

    assert actions_for(action="token.issue") == ["token.issue", "token.issue"]
    assert actions_for(action="api_key.") == ["api_key.create"] * 5
    assert actions_for(target="M1") == ["tariff.set"]
    assert actions_for(action="token.", target="TEST22") == ["token.issue", "token.issue"]
    assert actions_for(target="100%_") == []


def test_unknown_routes_and_methods_answer_json(server: Server) -> None:
    missing = server.client.get("/nothing-here", headers=server.headers())
    assert missing.status_code == 404
    assert missing.json()["error"]["fix"]
    wrong = server.client.put("/devices", headers=server.headers())
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "http_error"
    bad_json = server.client.post(
        "/devices",
        content=b"{not json",
        headers={**server.headers(), "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 422
    assert "not valid" in bad_json.json()["error"]["message"]
    limit = server.client.get("/devices", params={"limit": 0}, headers=server.headers())
    assert limit.status_code == 422
    assert "limit" in limit.json()["error"]["message"]


def test_health_and_openapi(server: Server) -> None:
    health = server.client.get("/health").json()
    assert health["status"] == "ok"
    assert health["database"] in ("sqlite", "postgresql")
    schema = server.client.get("/openapi.json").json()
    for path in (
        "/devices/{serial}/tokens",
        "/payments",
        "/devices/import",
        "/audit",
        "/books",
        "/books/{book_id}/sync",
    ):
        assert path in schema["paths"]
