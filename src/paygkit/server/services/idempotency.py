"""Idempotency-Key: a retried request gets the stored answer of the first one.

A key is bound to the request it was first used for by a fingerprint: the
operation's name, what it acts on, and the request's content, never how the
request arrived (the API and the console share one fingerprint).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.models import IdempotencyRecord
from paygkit.server.services.bounds import IDEMPOTENCY_KEY_LENGTH
from paygkit.server.services.common import ConflictError, InvalidError

# The column's length (the API's header bound comes from the same place).
MAX_KEY_LENGTH = IDEMPOTENCY_KEY_LENGTH

# Rows stored before fingerprints named the operation hashed the API's method and
# path instead.  Those rows are never rewritten (a digest cannot be turned into
# another), and a client retrying such a request after an upgrade must get its
# stored answer, not a 409 saying it is a different request: so each operation
# also knows its old shape, and `lookup` accepts either digest.  Remove an entry
# only once no stored row can still be replayed (rows are never deleted today).
_BEFORE_OPERATION_NAMES = {
    "tokens.issue": ("POST", "/devices/{target}/tokens"),
}


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


def _digest(parts: list[Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Fingerprint(str):
    """The digest stored for a request (the string itself), and its digest in the old format.

    A string, so that callers keep and pass it like the plain digest it was.
    """

    earlier_digest: str | None

    def __new__(cls, digest: str, earlier_digest: str | None = None) -> Fingerprint:
        made = super().__new__(cls, digest)
        made.earlier_digest = earlier_digest
        return made

    def matches(self, stored: str) -> bool:
        return stored == str(self) or (
            self.earlier_digest is not None and stored == self.earlier_digest
        )


def fingerprint(operation: str, target: str, content: Any) -> Fingerprint:
    """The fingerprint of `operation` (e.g. "tokens.issue") on `target` with `content`."""
    earlier = None
    if operation in _BEFORE_OPERATION_NAMES:
        method, path = _BEFORE_OPERATION_NAMES[operation]
        earlier = _digest([method, path.format(target=target), content])
    return Fingerprint(_digest([operation, target, content]), earlier)


def lookup(
    session: Session, tenant_id: int, key: str, print_: Fingerprint
) -> tuple[int, dict[str, Any]] | None:
    """The stored (status, body) of this key, or None; ConflictError if it was another request."""
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if not print_.matches(record.fingerprint):
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
            fingerprint=str(print_),
            status_code=status,
            response=json.dumps(body, default=str),
            created_at=now,
        )
    )
