"""API keys: made (shown once), listed, revoked once confirmed."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from paygkit.server.console.errors import page_status
from paygkit.server.console.forms import Csrf, RowIdPath, Text
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import reading, writing
from paygkit.server.console.views import render
from paygkit.server.context import server_context
from paygkit.server.models import Role
from paygkit.server.services import access
from paygkit.server.services.common import InvalidError, NotFoundError, ServiceError
from paygkit.server.services.sessions import SignedIn

router = page_router()


def _keys_page(
    request: Request,
    session: Session,
    signed: SignedIn,
    *,
    error: ServiceError | None = None,
    created: Any = None,
    notice: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "api_keys.html",
        signed=signed,
        status=200 if error is None else page_status(error),
        title="API keys",
        keys=access.list_api_keys(session, signed.actor),
        roles=[r.value for r in Role],
        error=error,
        created=created,
        notice=notice,
    )


@router.get("/api-keys")
def api_keys(request: Request) -> Response:
    with reading(request) as (session, signed, _now):
        return _keys_page(request, session, signed)


@router.post("/api-keys")
def create_key(request: Request, csrf: Csrf = "", role: Text = "", name: Text = "") -> Response:
    try:
        with writing(request, csrf) as (session, signed, now):
            new = access.create_api_key(session, signed.actor, access.parse_role(role), name, now)
            return _keys_page(request, session, signed, created=new)
    except InvalidError as error:
        with reading(request) as (session, signed, _now):
            return _keys_page(request, session, signed, error=error)


@router.post("/api-keys/{key_id}/confirm")
def confirm_revoke(request: Request, key_id: RowIdPath, csrf: Csrf = "") -> Response:
    with writing(request, csrf) as (session, signed, _now):
        found = [k for k in access.list_api_keys(session, signed.actor) if k.id == key_id]
        if not found:
            raise NotFoundError(f"no API key with id {key_id}")
        return render(
            request,
            "confirm_revoke.html",
            signed=signed,
            title="Revoke an API key",
            key=found[0],
            own=found[0].id == signed.actor.api_key_id,
        )


@router.post("/api-keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: RowIdPath, csrf: Csrf = "") -> Response:
    with writing(request, csrf) as (session, signed, now):
        record = access.revoke_api_key(session, signed.actor, key_id, now)
        page = _keys_page(
            request,
            session,
            signed,
            notice=f"Key {record.id} ({record.name}) is revoked; its sessions have ended.",
        )
    # After the commit: a request in between must not read the key valid again.
    server_context(request).keys.forget()
    return page
