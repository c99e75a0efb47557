"""The webhook: where each new token is POSTed, and how its deliveries went."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from paygkit.server.api.params import Limit
from paygkit.server.api.schemas import WebhookSet
from paygkit.server.api.transactions import reading, writing
from paygkit.server.context import server_context
from paygkit.server.models import Tenant
from paygkit.server.services import webhooks
from paygkit.server.services.common import require

router = APIRouter(tags=["webhook"])


@router.get("/webhook")
def get_webhook(request: Request) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        require(actor, "read")
        return webhooks.webhook_view(session.get_one(Tenant, actor.tenant_id))


@router.put("/webhook")
def set_webhook(request: Request, body: WebhookSet) -> dict[str, Any]:
    """Each new token is POSTed there, signed (see X-Paygkit-Signature); secret shown once."""
    with writing(request) as (session, actor, now):
        tenant, secret = webhooks.set_webhook(
            session, actor, server_context(request).keyring, body.url, body.secret, now
        )
        return {**webhooks.webhook_view(tenant), "secret": secret}


@router.delete("/webhook")
def delete_webhook(request: Request) -> dict[str, Any]:
    with writing(request) as (session, actor, now):
        webhooks.delete_webhook(session, actor, now)
        return {"url": None, "configured": False}


@router.get("/webhook/deliveries")
def list_deliveries(
    request: Request,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        found = webhooks.list_deliveries(session, actor, status=status, limit=limit)
        return {"deliveries": [webhooks.delivery_view(d) for d in found]}
