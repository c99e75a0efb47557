"""The server itself: is it up (no key needed), and who is asking."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from paygkit import __version__
from paygkit.server.api.transactions import reading
from paygkit.server.context import server_context
from paygkit.server.models import Tenant

router = APIRouter(tags=["server"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """No key needed: is the server up, and on which database."""
    return {
        "status": "ok",
        "version": __version__,
        "database": server_context(request).db.engine.dialect.name,
    }


@router.get("/me")
def me(request: Request) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        tenant = session.get_one(Tenant, actor.tenant_id)
        return {"name": actor.name, "role": actor.role.value, "tenant": tenant.name}
