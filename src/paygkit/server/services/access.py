"""Tenants and API keys (stored hashed; the key itself is shown once, at creation)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
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
            "choose one of admin, operator, technician, viewer",
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
    if not presented:
        raise UnauthorizedError(
            "no API key given",
            "send 'Authorization: Bearer <key>'; create a key with 'paygkit server api-key create'",
        )
    # A key is short printable ASCII: anything else is not one (and is not hashed).
    if len(presented) > MAX_PRESENTED_KEY or not presented.isascii():
        record = None
    else:
        record = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(presented)))
    if record is None:
        raise UnauthorizedError("the API key is not known", "check the key, or create a new one")
    if record.revoked_at is not None:
        raise UnauthorizedError("the API key was revoked", "ask an admin for a new key")
    return Actor(
        tenant_id=record.tenant_id, name=record.name, role=Role(record.role), api_key_id=record.id
    )
