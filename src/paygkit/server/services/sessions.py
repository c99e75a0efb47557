"""Web console sessions: an API key exchanged for a session token (kept in a cookie).

The server stores the SHA-256 of the session token, never the token or the
API key.  A session acts with its API key, looked up on every request, so a
revoked key ends its sessions at once.  A session ends at sign-out, after
`IDLE` without a request, or `LIFETIME` after sign-in, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from paygkit.server.crypto import hash_api_key
from paygkit.server.models import ApiKey, AuditEntry, ConsoleSession, Role, Tenant
from paygkit.server.services.access import authenticate
from paygkit.server.services.common import LABEL_LENGTH, Actor, UnauthorizedError, audit

# A working day, and half an hour without a request.
LIFETIME = dt.timedelta(hours=12)
IDLE = dt.timedelta(minutes=30)
# last_seen_at is written at most this often (a page view is otherwise read-only).
TOUCH_EVERY = dt.timedelta(minutes=1)
# Ended or expired rows are removed this long after their end, at the next sign-in.
KEEP_ENDED = dt.timedelta(days=7)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session: who acts, the CSRF token of its forms, when it ends."""

    actor: Actor
    session_id: int
    csrf_token: str
    expires_at: dt.datetime
    # last_seen_at is older than TOUCH_EVERY: call touch_session (in a writing transaction).
    stale: bool = False

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(
            self.csrf_token.encode(), str(presented).encode()
        )


def _expired(record: ConsoleSession, now: dt.datetime) -> bool:
    return (
        record.ended_at is not None or now >= record.expires_at or now >= record.last_seen_at + IDLE
    )


def start_session(
    session: Session, presented_key: str | None, now: dt.datetime
) -> tuple[SignedIn, str]:
    """Check the API key and open a session: (the session, its token for the cookie)."""
    actor = authenticate(session, presented_key)
    assert actor.api_key_id is not None
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now - KEEP_ENDED))
    token = secrets.token_urlsafe(32)
    record = ConsoleSession(
        token_hash=_hash(token),
        api_key_id=actor.api_key_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + LIFETIME,
    )
    session.add(record)
    session.flush()
    audit(session, actor, "console.sign_in", f"api_key:{actor.api_key_id}", now)
    return SignedIn(actor, record.id, record.csrf_token, record.expires_at), token


def record_failed_sign_in(
    session: Session, presented_key: str | None, address: str, reason: str, now: dt.datetime
) -> None:
    """Audit a refused console sign-in (never the key given, not even its start).

    The entry goes to the tenant of the key when it is a known (revoked) one, else
    to the only tenant when there is one: where its admins read the log.
    """
    tenant_id = None
    key = None
    if presented_key and len(presented_key) <= 200 and presented_key.isascii():
        key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(presented_key)))
    if key is not None:
        tenant_id = key.tenant_id
    else:
        tenants = list(session.scalars(select(Tenant.id).limit(2)))
        tenant_id = tenants[0] if len(tenants) == 1 else None
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            at=now,
            actor=f"console sign-in from {address}"[:LABEL_LENGTH],
            api_key_id=key.id if key is not None else None,
            action="console.sign_in_failed",
            target=f"api_key:{key.id}" if key is not None else None,
            details=json.dumps({"address": address[:100], "reason": reason[:200]}),
        )
    )


def resolve_session(session: Session, token: str | None, now: dt.datetime) -> SignedIn:
    """The live session of a cookie; UnauthorizedError when absent, ended or expired."""
    if not token:
        raise UnauthorizedError("you are not signed in", "sign in with your API key")
    record = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _hash(token)))
    if record is None or _expired(record, now):
        raise UnauthorizedError(
            "your session has ended (signed out, or too long without activity)",
            "sign in again with your API key",
        )
    key = session.get(ApiKey, record.api_key_id)
    if key is None or key.revoked_at is not None:
        raise UnauthorizedError(
            "the API key of this session was revoked", "ask an admin for a new key"
        )
    actor = Actor(tenant_id=key.tenant_id, name=key.name, role=Role(key.role), api_key_id=key.id)
    stale = now - record.last_seen_at >= TOUCH_EVERY
    return SignedIn(actor, record.id, record.csrf_token, record.expires_at, stale)


def touch_session(session: Session, session_id: int, now: dt.datetime) -> None:
    """Note activity on a session (it keeps it from idling out)."""
    record = session.get(ConsoleSession, session_id)
    if record is not None and record.last_seen_at < now:
        record.last_seen_at = now


def end_session(session: Session, token: str | None, now: dt.datetime) -> bool:
    """Sign out: end the cookie's session (True when there was a live one)."""
    if not token:
        return False
    record = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _hash(token)))
    if record is None or record.ended_at is not None:
        return False
    record.ended_at = now
    key = session.get(ApiKey, record.api_key_id)
    if key is not None:
        actor = Actor(
            tenant_id=key.tenant_id, name=key.name, role=Role(key.role), api_key_id=key.id
        )
        audit(session, actor, "console.sign_out", f"api_key:{key.id}", now)
    return True
