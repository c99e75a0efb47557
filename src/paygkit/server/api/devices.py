"""Devices: create, list, change, import the factory's list, export the keys."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from paygkit.server.api.errors import error_body
from paygkit.server.api.params import AccountQuery, Limit, SerialPath, SerialQuery
from paygkit.server.api.schemas import DeviceCreate, DeviceUpdate
from paygkit.server.api.transactions import reading, writing
from paygkit.server.context import server_context
from paygkit.server.services import devices, importer
from paygkit.server.services.common import InvalidError

log = logging.getLogger("paygkit.server")
router = APIRouter(tags=["devices"])


@router.get("/devices")
def list_devices(
    request: Request,
    after: SerialQuery = None,
    limit: Limit = 100,
    account: AccountQuery = None,
) -> dict[str, Any]:
    with reading(request) as (session, actor, now):
        found = devices.list_devices(session, actor, after=after, limit=limit, account=account)
        return {
            "devices": [devices.device_view(d, now) for d in found],
            "next_after": found[-1].serial if len(found) == limit else None,
        }


@router.post("/devices", status_code=201)
def create_device(request: Request, body: DeviceCreate) -> dict[str, Any]:
    with writing(request) as (session, actor, now):
        device = devices.create_device(
            session,
            actor,
            server_context(request).keyring,
            devices.DeviceInput(
                serial=body.serial,
                key=body.key,
                starting_code=body.starting_code,
                count=body.count,
                time_divider=body.time_divider,
                restricted=body.restricted_digits,
                hardware_model=body.hardware_model,
                version=body.version,
                test_code=body.test_code,
                account=body.account,
                decode_window=body.decode_window,
            ),
            now,
        )
        return devices.device_view(device, now)


@router.post("/devices/import")
def import_devices(
    request: Request,
    body: Annotated[
        str, Body(media_type="text/csv", description="the standard device list CSV")
    ] = "",
    dry_run: bool = False,
) -> Response:
    """Import the factory's device list; `dry_run=true` only reports.

    Every row is checked first: a file with any problem imports nothing.  A good
    file is written in batches of 1000 devices, each its own short transaction
    (tokens are issued meanwhile); progress is logged.  Should it stop midway,
    import the same file again: devices already imported are "unchanged".
    """
    if len(body.encode()) > importer.MAX_IMPORT_BYTES:
        raise InvalidError("the device list is over 50 MB", "split it into several files")
    with reading(request) as (_session, actor, now):
        pass

    def progress(done: int, total: int) -> None:
        log.info("device import by %s: %d of %d devices written", actor.label, done, total)

    context = server_context(request)
    report = importer.import_batched(
        context.db, actor, context.keyring, body, now, dry_run=dry_run, progress=progress
    )
    if report["ok"] or dry_run:
        return JSONResponse(report, status_code=200)
    refused = error_body(
        "import_refused",
        f"nothing was imported: {len(report['problems'])} problem(s) "
        f"and {report['refused']} refused device(s)",
        "correct the rows named in the report and import the file again",
    )
    return JSONResponse({**refused, "report": report}, status_code=422)


@router.post("/devices/export-keys", response_class=PlainTextResponse)
def export_keys(request: Request) -> PlainTextResponse:
    """Admin only, audited: every device with its key, as the standard CSV (for migrations)."""
    with writing(request) as (session, actor, now):
        text = devices.export_keys_csv(session, actor, server_context(request).keyring, now)
    return PlainTextResponse(text, media_type="text/csv", headers={"Cache-Control": "no-store"})


@router.get("/devices/{serial}")
def get_device(request: Request, serial: SerialPath) -> dict[str, Any]:
    with reading(request) as (session, actor, now):
        return devices.device_view(devices.get_device(session, actor, serial), now)


@router.patch("/devices/{serial}")
def update_device(request: Request, serial: SerialPath, body: DeviceUpdate) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    if "price_per_day" in given and given["price_per_day"] is not None:
        given["price_per_day"] = str(given["price_per_day"])
    with writing(request) as (session, actor, now):
        device = devices.update_device(session, actor, serial, now, **given)
        return devices.device_view(device, now)
