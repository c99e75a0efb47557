"""Importing the factory's device list (the standard CSV, read by paygkit.factory.devicelist).

All or nothing: a dry run reports what would happen row by row; a real import
writes only when every row is good.  A device already on the server with the
same parameters is "unchanged" (re-importing a file is harmless); one with
different parameters is refused as a duplicate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.factory.devicelist import DeviceListError, DeviceRecord, parse_device_list
from paygkit.server.crypto import Keyring, constant_time_equal
from paygkit.server.models import Device
from paygkit.server.services.common import Actor, audit, require
from paygkit.server.services.devices import SERIAL_RE, DeviceInput, create_device

MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _differences(device: Device, record: DeviceRecord, keyring: Keyring) -> list[str]:
    differ = []
    key = keyring.open(device.serial, device.key_sealed, device.key_version)
    if not constant_time_equal(key, record.key):
        differ.append("Key")
    pairs = [
        ("Starting Code", device.starting_code, record.starting_code),
        ("Time Divider", device.time_divider, record.time_divider),
        ("Restricted Digit Mode", device.restricted, record.restricted),
        ("Hardware Model", device.hardware_model, record.hardware_model),
        ("Version", device.version, record.version),
        ("Test Code", device.test_code, record.test_code),
    ]
    differ += [name for name, stored, given in pairs if stored != given]
    return differ


def import_devices(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    text: str,
    now: dt.datetime,
    *,
    dry_run: bool,
) -> dict[str, Any]:
    """The import report; `ok` tells whether it was (or, dry, would be) imported."""
    require(actor, "devices.import")
    try:
        report = parse_device_list(text)
    except DeviceListError as error:
        report = None
        read_error = str(error)
    problems: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    new: list[DeviceRecord] = []
    unchanged = 0
    if report is None:
        problems.append({"row": None, "column": None, "message": read_error})
        records: tuple[DeviceRecord, ...] = ()
    else:
        problems += [
            {"row": p.row, "column": p.column, "message": p.message} for p in report.problems
        ]
        warnings += [
            {"row": p.row, "column": p.column, "message": p.message} for p in report.warnings
        ]
        records = report.records
    existing: dict[str, Device] = {}
    serials = [r.serial for r in records]
    for start in range(0, len(serials), 500):
        chunk = serials[start : start + 500]
        for found in session.scalars(
            select(Device).where(Device.tenant_id == actor.tenant_id, Device.serial.in_(chunk))
        ):
            existing[found.serial] = found
    for record in records:
        if not SERIAL_RE.fullmatch(record.serial):
            rows.append(
                {
                    "serial": record.serial,
                    "status": "refused",
                    "message": "the server takes serials of letters, digits and . _ : + - only "
                    "(they appear in URLs)",
                }
            )
            continue
        device = existing.get(record.serial)
        if device is None:
            rows.append({"serial": record.serial, "status": "new"})
            new.append(record)
            continue
        differ = _differences(device, record, keyring)
        if differ:
            rows.append(
                {
                    "serial": record.serial,
                    "status": "refused",
                    "message": "duplicate: this serial is already registered with a different "
                    f"{', '.join(differ)}; a serial is imported once",
                }
            )
        else:
            unchanged += 1
            rows.append({"serial": record.serial, "status": "unchanged"})
    refused = sum(1 for row in rows if row["status"] == "refused")
    ok = not problems and not refused
    if ok and not dry_run:
        for record in new:
            create_device(
                session,
                actor,
                keyring,
                DeviceInput(
                    serial=record.serial,
                    key=record.key.hex(),
                    starting_code=record.starting_code,
                    count=record.count,
                    time_divider=record.time_divider,
                    restricted=record.restricted,
                    hardware_model=record.hardware_model,
                    version=record.version,
                    test_code=record.test_code,
                ),
                now,
                audit_it=False,
            )
        audit(
            session,
            actor,
            "device.import",
            None,
            now,
            new=len(new),
            unchanged=unchanged,
            serials=[r.serial for r in new][:1000],
        )
    return {
        "dry_run": dry_run,
        "ok": ok,
        "imported": len(new) if ok and not dry_run else 0,
        "new": len(new),
        "unchanged": unchanged,
        "refused": refused,
        "problems": problems,
        "warnings": warnings,
        "devices": rows,
    }
