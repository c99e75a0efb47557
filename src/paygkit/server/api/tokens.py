"""Tokens: issue them for a device (idempotent with Idempotency-Key), and its history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from paygkit.server.api.params import BeforeId, IdempotencyKey, Limit, SerialPath
from paygkit.server.api.schemas import TokenCreate
from paygkit.server.api.transactions import reading, run_db, writing
from paygkit.server.context import server_context
from paygkit.server.services import idempotency, tokens
from paygkit.server.services.common import parse_time

router = APIRouter(tags=["tokens"])


@router.post("/devices/{serial}/tokens", status_code=201)
async def issue_token(
    request: Request,
    serial: SerialPath,
    body: TokenCreate,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Issue tokens: add_days, set_days, active_until, disable_payg, counter_sync.

    More than 995 time units become several tokens, to be entered in the order given.
    `time` in the answer says what the request is worth in the device's time units
    and how it was rounded.  A request worth 0 units, or one that would lock the
    device (Set Time 0), is refused unless `lock` asks for the lock on purpose.
    """
    spec = tokens.IssueSpec(
        kind=body.type,
        days=body.days,
        until=parse_time(body.until, "until") if body.until is not None else None,
        reset=body.reset,
        lock=body.lock,
        on_window=body.on_window,
    )
    key = idempotency.check_key(idempotency_key)

    def work() -> Response:
        with writing(request) as (session, actor, now):
            outcome = tokens.issue_tokens(
                session,
                actor,
                server_context(request).keyring,
                serial,
                spec,
                now,
                idempotency_key=key,
            )
        return JSONResponse(outcome.body, status_code=outcome.status)

    return await run_db(request, work)


@router.get("/devices/{serial}/tokens")
def token_history(
    request: Request, serial: SerialPath, before_id: BeforeId = None, limit: Limit = 100
) -> dict[str, Any]:
    """The device's tokens, newest first."""
    with reading(request) as (session, actor, _now):
        device, records = tokens.token_history(
            session, actor, serial, before_id=before_id, limit=limit
        )
        return {
            "serial": device.serial,
            "tokens": [tokens.token_view(r, device.time_divider) for r in records],
            "next_before_id": records[-1].id if len(records) == limit else None,
        }
