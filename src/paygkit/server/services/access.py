"""Tenants and API keys (stored hashed; the key itself is shown once, at creation)."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from paygkit.server.crypto import hash_api_key
from paygkit.server.models import ApiKey, Role, Tenant
from paygkit.server.services import bounds
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
    audit,
    iso,
    require,
)

DEFAULT_TENANT = "default"
# Keys made here are 47 characters; a presented value far longer is refused unhashed.
MAX_PRESENTED_KEY = 200
KEY_PREFIX = "pgk_"


def get_or_create_tenant(session: Session, name: str, now: dt.datetime) -> tuple[Tenant, bool]:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is not None:
        return tenant, False
    tenant = Tenant(name=name, created_at=now)
    session.add(tenant)
    session.flush()
    return tenant, True


def local_actor(
    session: Session, tenant_name: str, now: dt.datetime, role: Role = Role.ADMIN
) -> Actor:
    """The person at the server's own terminal (the CLI), admin of the tenant by default.

    They hold the database and the master key, so they may also act as a
    technician (Counter Sync); the audit log records which role was used.
    """
    tenant, _ = get_or_create_tenant(session, tenant_name, now)
    return Actor(tenant_id=tenant.id, name="local CLI", role=role)


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise InvalidError(
            f"unknown role {value!r}",
            "choose one of " + ", ".join(r.value for r in Role),
        ) from None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    record: ApiKey
    key: str  # shown once; only its hash is stored


def create_api_key(
    session: Session, actor: Actor, role: Role, name: str, now: dt.datetime
) -> NewApiKey:
    require(actor, "api_keys.manage")
    name = bounds.check_text(
        name.strip(),
        "the key name",
        min_length=1,
        max_length=bounds.KEY_NAME_LENGTH,
        fix="name the key after its user",
    )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        tenant_id=actor.tenant_id,
        name=name,
        role=role.value,
        key_hash=hash_api_key(key),
        prefix=key[:10],
        created_at=now,
    )
    session.add(record)
    session.flush()
    audit(session, actor, "api_key.create", f"api_key:{record.id}", now, role=role.value, name=name)
    return NewApiKey(record, key)


def has_api_keys(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(ApiKey)))


def list_api_keys(session: Session, actor: Actor) -> list[ApiKey]:
    require(actor, "api_keys.manage")
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == actor.tenant_id).order_by(ApiKey.id)
        )
    )


def api_key_view(record: ApiKey) -> dict[str, Any]:
    """What the API and the CLI show of a key: never the key, only its first characters."""
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "prefix": record.prefix,
        "created_at": iso(record.created_at),
        "revoked_at": iso(record.revoked_at),
    }


def revoke_api_key(session: Session, actor: Actor, key_id: int, now: dt.datetime) -> ApiKey:
    require(actor, "api_keys.manage")
    bounds.check_id(key_id, "the key id")
    record = session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == actor.tenant_id)
    )
    if record is None:
        raise NotFoundError(f"no API key with id {key_id}", "see the list of API keys")
    if record.revoked_at is not None:
        raise ConflictError(f"API key {key_id} is already revoked")
    if record.id == actor.api_key_id:
        raise ConflictError(
            "an API key cannot revoke itself", "revoke it with another admin key or the CLI"
        )
    record.revoked_at = now
    audit(session, actor, "api_key.revoke", f"api_key:{record.id}", now)
    return record


def authenticate(session: Session, presented: str | None) -> Actor:
    """The actor of the presented key, read from the database now (see `KeyCache`)."""
    return _actor_of_digest(session, _checked_digest(presented))


def _checked_digest(presented: str | None) -> str | None:
    """The stored form of a presented key; None when it cannot be a key at all."""
    if not presented:
        raise UnauthorizedError(
            "no API key given",
            "send 'Authorization: Bearer <key>'; create a key with 'paygkit server api-key create'",
        )
    # A key is short printable ASCII: anything else is not one (and is not hashed).
    if len(presented) > MAX_PRESENTED_KEY or not presented.isascii():
        return None
    return hash_api_key(presented)


_KEYS = ApiKey.__table__.c
_KEY_BY_HASH = select(_KEYS.id, _KEYS.tenant_id, _KEYS.name, _KEYS.role, _KEYS.revoked_at).where(
    _KEYS.key_hash == bindparam("key_hash")
)


def _actor_of_digest(session: Session, digest: str | None) -> Actor:
    row = None
    if digest is not None:
        row = session.connection().execute(_KEY_BY_HASH, {"key_hash": digest}).first()
    if row is None:
        raise UnauthorizedError("the API key is not known", "check the key, or create a new one")
    if row.revoked_at is not None:
        raise UnauthorizedError("the API key was revoked", "ask an admin for a new key")
    return Actor(tenant_id=row.tenant_id, name=row.name, role=Role(row.role), api_key_id=row.id)


# How long a key read valid from the database is taken without reading it again: a
# key revoked by another process (the CLI, another server process) stops working
# within this time; in this process `KeyCache.forget` makes it at once.
KEY_CACHE_SECONDS = 1.0
_MAX_CACHED_KEYS = 4096


class KeyCache:
    """API keys read valid in the last `KEY_CACHE_SECONDS`, per process.

    Every request presents its key, and reading it took a statement of its own
    per request (two: the guard's and the handler's).  Only valid keys are kept,
    by their hash; an unknown key is read every time (and throttled by the guard).
    """

    def __init__(
        self, seconds: float = KEY_CACHE_SECONDS, ticks: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.ticks = ticks
        self._valid: dict[str, tuple[float, Actor]] = {}
        self._lock = threading.Lock()

    def cached(self, presented: str | None) -> Actor | None:
        """The actor of a key read valid recently, without reading the database."""
        if not presented:
            return None
        digest = _checked_digest(presented)
        if digest is None:
            return None
        entry = self._valid.get(digest)
        if entry is None or entry[0] <= self.ticks():
            return None
        return entry[1]

    def authenticate(self, session: Session, presented: str | None) -> Actor:
        """As `authenticate`, from the cache when the key was read valid recently."""
        digest = _checked_digest(presented)
        if digest is not None:
            entry = self._valid.get(digest)
            now = self.ticks()
            if entry is not None and entry[0] > now:
                return entry[1]
        actor = _actor_of_digest(session, digest)
        assert digest is not None  # no digest is never a valid key
        self._remember(digest, actor)
        return actor

    def _remember(self, digest: str, actor: Actor) -> None:
        now = self.ticks()
        with self._lock:
            if len(self._valid) >= _MAX_CACHED_KEYS:
                self._valid = {d: e for d, e in self._valid.items() if e[0] > now}
            if len(self._valid) < _MAX_CACHED_KEYS:
                self._valid[digest] = (now + self.seconds, actor)

    def forget(self) -> None:
        """Drop every cached key (after a revocation in this process)."""
        with self._lock:
            self._valid = {}
