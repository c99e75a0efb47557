"""Idempotency keys are bound to the operation and its content, and survive the upgrade.

Before, a key's fingerprint hashed the API's method and path; now it hashes the
operation's name, so the console and the API share it and no URL is involved.
Rows stored the old way must still replay their answer, not be refused as a
different request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select, update

from paygkit.server.models import IdempotencyRecord
from tests.server.conftest import Server, snapshot

SERIAL = "TEST220000001"
PATH = f"/devices/{SERIAL}/tokens"
THREE_DAYS = {"type": "add_days", "days": 3}
# What the token service fingerprints for THREE_DAYS (IssueSpec.to_json()).
THREE_DAYS_CONTENT = {
    "type": "add_days",
    "days": "3",
    "units": None,
    "until": None,
    "reset": False,
    "lock": False,
    "on_window": "warn",
}


def sha256_of(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def issue(server: Server, body: dict[str, Any], key: str) -> Any:
    return server.client.post(PATH, json=body, headers=server.headers(**{"Idempotency-Key": key}))


def stored_fingerprint(server: Server, key: str) -> str:
    with server.db.read() as session:
        record = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
        assert record is not None
        return record.fingerprint


def test_the_fingerprint_names_the_operation_not_a_url(server: Server) -> None:
    server.add_device()
    assert issue(server, THREE_DAYS, "k-1").status_code == 201
    assert stored_fingerprint(server, "k-1") == sha256_of(
        ["tokens.issue", SERIAL, THREE_DAYS_CONTENT]
    )


def test_a_key_stored_before_the_upgrade_still_replays_its_answer(server: Server) -> None:
    server.add_device()
    first = issue(server, THREE_DAYS, "k-old")
    assert first.status_code == 201
    # The row as the previous release wrote it: the method and path in the digest.
    old = sha256_of(["POST", PATH, THREE_DAYS_CONTENT])
    with server.db.write() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "k-old")
            .values(fingerprint=old)
        )
    again = issue(server, THREE_DAYS, "k-old")
    assert again.status_code == 201
    assert again.json()["replayed"] is True
    assert again.json()["tokens"] == first.json()["tokens"]
    # Another request under the old key is still another request.
    before = snapshot(server.db)
    other = issue(server, {"type": "add_days", "days": 4}, "k-old")
    assert other.status_code == 409
    assert "different request" in other.json()["error"]["message"]
    assert snapshot(server.db) == before
    assert stored_fingerprint(server, "k-old") == old
