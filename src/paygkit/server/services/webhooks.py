"""The tenant's webhook: configuration and the outbox of deliveries.

A delivery row is written in the same transaction as the token it carries
(an outbox), so a token is never issued without its delivery being queued,
nor delivered when its transaction rolled back.  `paygkit.server.webhook_delivery`
sends them.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring
from paygkit.server.models import AnyDevice, IssuedToken, Tenant, WebhookDelivery
from paygkit.server.services import bounds
from paygkit.server.services.common import Actor, InvalidError, audit, iso, require
from paygkit.token import days_number, group_digits


def secret_label(tenant_id: int) -> str:
    return f"webhook:{tenant_id}"


URL_EXAMPLE = "e.g. https://sms-gateway.example/paygkit"


def check_url(url: str) -> str:
    bounds.check_text(url.strip(), "the webhook URL", min_length=1, max_length=bounds.URL_LENGTH)
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - a bad port raises here, not later in the sender
    except ValueError:
        raise InvalidError("the webhook URL is not an http(s) URL", URL_EXAMPLE) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InvalidError(f"the webhook URL {url[:100]!r} is not an http(s) URL", URL_EXAMPLE)
    return url.strip()


def set_webhook(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    url: str,
    secret: str | None,
    now: dt.datetime,
) -> tuple[Tenant, str]:
    """Set the URL (and the HMAC secret, generated when not given); returns the secret."""
    require(actor, "webhook.write")
    url = check_url(url)
    if secret is None:
        secret = secrets.token_urlsafe(32)
    else:
        bounds.check_text(
            secret, "the webhook secret", min_length=16, max_length=200, fix="or leave it out"
        )
    tenant = session.get_one(Tenant, actor.tenant_id)
    sealed, version = keyring.seal(secret_label(tenant.id), secret.encode())
    tenant.webhook_url = url
    tenant.webhook_secret_sealed = sealed
    tenant.webhook_secret_version = version
    audit(session, actor, "webhook.set", f"tenant:{tenant.name}", now, url=url)
    return tenant, secret


def delete_webhook(session: Session, actor: Actor, now: dt.datetime) -> None:
    require(actor, "webhook.write")
    tenant = session.get_one(Tenant, actor.tenant_id)
    tenant.webhook_url = None
    tenant.webhook_secret_sealed = None
    tenant.webhook_secret_version = None
    audit(session, actor, "webhook.delete", f"tenant:{tenant.name}", now)


def webhook_view(tenant: Tenant) -> dict[str, Any]:
    return {"url": tenant.webhook_url, "configured": tenant.webhook_url is not None}


def enqueue_token(
    session: Session,
    target: WebhookTarget,
    device: AnyDevice,
    record: IssuedToken,
    now: dt.datetime,
) -> None:
    """Queue the delivery of a new token when the device's tenant has a webhook.

    No webhook, no row: most tenants have none, and the token issue path is the
    server's hot path.
    """
    if target.url is None:
        return
    payload = {
        "event": "token.issued",
        "tenant": target.tenant_name,
        "serial": device.serial,
        "account": device.account,
        "token": group_digits(record.token),
        "digits": record.token,
        "type": record.token_type,
        "units": record.units,
        "days": (
            None
            if record.units is None
            else days_number(Fraction(record.units, device.time_divider))
        ),
        "count": record.token_count,
        "request_id": record.request_id,
        "issued_at": iso(record.created_at),
    }
    session.connection().execute(
        _DELIVERY_INSERT,
        {
            "tenant_id": device.tenant_id,
            "token_id": record.id,
            "url": target.url,
            "payload": json.dumps(payload, sort_keys=True),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )


def enqueue_event(
    session: Session, tenant_id: int, event: str, body: dict[str, Any], now: dt.datetime
) -> None:
    """Queue an event that is not a token (a token book created, synced, closed), if the
    tenant has a webhook; same outbox, same signature, no token_id."""
    tenant = session.get_one(Tenant, tenant_id)
    if tenant.webhook_url is None:
        return
    payload = {"event": event, "tenant": tenant.name, **body}
    session.connection().execute(
        _DELIVERY_INSERT,
        {
            "tenant_id": tenant_id,
            "token_id": None,
            "url": tenant.webhook_url,
            "payload": json.dumps(payload, sort_keys=True, default=str),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a tenant's token deliveries go (read with the device being issued for)."""

    tenant_name: str
    url: str | None


_DELIVERY_INSERT = insert(cast(Table, WebhookDelivery.__table__))


def list_deliveries(
    session: Session, actor: Actor, *, status: str | None, limit: int
) -> list[WebhookDelivery]:
    require(actor, "read")
    query = select(WebhookDelivery).where(WebhookDelivery.tenant_id == actor.tenant_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "token_id": delivery.token_id,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "delivered_at": iso(delivery.delivered_at),
    }
