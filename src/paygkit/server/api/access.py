"""Access: API keys (made, listed, revoked) and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from paygkit.server.api.params import AfterId, IdPath, Limit, SearchQuery
from paygkit.server.api.schemas import ApiKeyCreate
from paygkit.server.api.transactions import reading, writing
from paygkit.server.context import server_context
from paygkit.server.services import access, audit

router = APIRouter(tags=["access"])


@router.get("/api-keys")
def list_api_keys(request: Request) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        keys = access.list_api_keys(session, actor)
        return {"api_keys": [access.api_key_view(k) for k in keys]}


@router.post("/api-keys", status_code=201)
def create_api_key(request: Request, body: ApiKeyCreate) -> dict[str, Any]:
    """A new key; the key itself is in this answer only (the server keeps its hash)."""
    role = access.parse_role(body.role)
    with writing(request) as (session, actor, now):
        new = access.create_api_key(session, actor, role, body.name, now)
        return {**access.api_key_view(new.record), "key": new.key}


@router.delete("/api-keys/{key_id}")
def revoke_api_key(request: Request, key_id: IdPath) -> dict[str, Any]:
    with writing(request) as (session, actor, now):
        revoked = access.api_key_view(access.revoke_api_key(session, actor, key_id, now))
    # After the commit: a request in between must not read the key valid again.
    server_context(request).keys.forget()
    return revoked


@router.get("/audit")
def audit_log(
    request: Request,
    after_id: AfterId = None,
    limit: Limit = 100,
    action: SearchQuery = None,
    target: SearchQuery = None,
) -> dict[str, Any]:
    """The audit log, oldest first (page with after_id).

    `action`: exact, or a prefix ending in "." (token.); `target`: text found in the target.
    """
    with reading(request) as (session, actor, _now):
        entries = audit.list_audit(
            session, actor, after_id=after_id, limit=limit, action=action, target=target
        )
        return {
            "entries": [audit.entry_view(e) for e in entries],
            "next_after_id": entries[-1].id if len(entries) == limit else None,
        }
