"""Idempotency-Key: a retried request gets the stored answer of the first one."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.models import IdempotencyRecord
from paygkit.server.services.common import ConflictError, InvalidError

MAX_KEY_LENGTH = 200


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidError(
            f"the Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable characters",
            "send a UUID per logical request",
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    text = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def lookup(
    session: Session, tenant_id: int, key: str, print_: str
) -> tuple[int, dict[str, Any]] | None:
    """The stored (status, body) of this key, or None; ConflictError if it was another request."""
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if record.fingerprint != print_:
        raise ConflictError(
            "this Idempotency-Key was already used for a different request",
            "send a new key for a new request; reuse a key only to retry the same request",
        )
    body = json.loads(record.response)
    assert isinstance(body, dict)
    return record.status_code, body


def store(
    session: Session,
    tenant_id: int,
    key: str,
    print_: str,
    status: int,
    body: dict[str, Any],
    now: dt.datetime,
) -> None:
    session.add(
        IdempotencyRecord(
            tenant_id=tenant_id,
            key=key,
            fingerprint=print_,
            status_code=status,
            response=json.dumps(body, default=str),
            created_at=now,
        )
    )
