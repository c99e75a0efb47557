"""Count reports: the count read from a device, withdrawn when mistaken, and their history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from paygkit.server.api.params import IdPath, Limit, SerialPath
from paygkit.server.api.schemas import CountCreate, CountWithdraw
from paygkit.server.api.transactions import reading, writing
from paygkit.server.services import counts
from paygkit.server.services.common import parse_time

router = APIRouter(tags=["counts"])


@router.post("/devices/{serial}/counts", status_code=201)
def report_count(request: Request, serial: SerialPath, body: CountCreate) -> dict[str, Any]:
    """Record the count read from a device (display, UART, support call).

    A count above the last count issued is impossible for a genuine device and is
    refused (409), unless `server_behind` confirms this server is the one behind
    (restored from a backup): a technician may then move it up to the decode
    window, an admin further; audited.
    """
    read_at = parse_time(body.read_at, "read_at") if body.read_at else None
    with writing(request) as (session, actor, now):
        return counts.report_count(
            session,
            actor,
            serial,
            body.count,
            body.source,
            now,
            read_at=read_at,
            note=body.note,
            server_behind=body.server_behind,
        )


@router.post("/devices/{serial}/counts/{report_id}/withdraw")
def withdraw_count(
    request: Request, serial: SerialPath, report_id: IdPath, body: CountWithdraw
) -> dict[str, Any]:
    """Admin: take back a mistaken count report (audited with what it said)."""
    with writing(request) as (session, actor, now):
        return counts.withdraw_report(session, actor, serial, report_id, body.reason, now)


@router.get("/devices/{serial}/counts")
def count_history(request: Request, serial: SerialPath, limit: Limit = 100) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        device, reports = counts.count_history(session, actor, serial, limit=limit)
        return {
            "serial": device.serial,
            "analysis": counts.analyse(session, device),
            "reports": [counts.report_view(r) for r in reports],
        }
