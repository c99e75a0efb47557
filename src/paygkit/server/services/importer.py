"""Importing the factory's device list (the standard CSV, read by paygkit.factory.devicelist).

All or nothing: a dry run reports what would happen row by row; a real import
writes only when every row is good.  A device already on the server with the
same parameters is "unchanged" (re-importing a file is harmless); one with
different parameters is refused as a duplicate.

A Hardware Model or Version that a spreadsheet would run as a formula
(`=cmd|...`, `+HYPERLINK(...)`, `@SUM(...)`, `-...`: OWASP's CSV injection
list) is imported as written, with a warning: the key export is opened in
spreadsheets, and such a cell there may run commands or leak data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from paygkit.factory.devicelist import DeviceListError, DeviceRecord, parse_device_list
from paygkit.server.crypto import Keyring, constant_time_equal
from paygkit.server.db import Database
from paygkit.server.models import Device
from paygkit.server.services import bounds
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    ServiceError,
    audit,
    require,
)
from paygkit.server.services.devices import (
    DeviceInput,
    checked_params,
    from_spreadsheet_safe,
    looks_like_formula,
    new_device_row,
)

MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _formula_warnings(records: tuple[DeviceRecord, ...]) -> list[dict[str, Any]]:
    warnings = []
    for record in records:
        for column, value in (
            ("Hardware Model", record.hardware_model),
            ("Version", record.version),
        ):
            if looks_like_formula(value):
                warnings.append(
                    {
                        "row": None,
                        "column": column,
                        "message": f"device {record.serial}: {column} starts with "
                        f"{value[:1]!r}, which a spreadsheet runs as a formula; it is kept "
                        "as text, but check the factory's list (a model name does not "
                        "usually start so)",
                    }
                )
    return warnings


# Devices written per transaction: the write lock is held for one batch at a time.
BATCH_SIZE = 1000


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


def _check_rows(
    session: Session, actor: Actor, keyring: Keyring, text: str
) -> tuple[dict[str, Any], list[DeviceRecord]]:
    """The report of a dry run, and the new devices to write when it is ok."""
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
        # A list exported by this server marks formula-like cells with an apostrophe.
        records = tuple(
            replace(
                r,
                hardware_model=from_spreadsheet_safe(r.hardware_model),
                version=from_spreadsheet_safe(r.version),
            )
            for r in report.records
        )
        warnings += _formula_warnings(records)
    existing: dict[str, Device] = {}
    # The device list's parser takes only serials of the one grammar (device.serial_number),
    # which the server stores as they are: no row needs a serial check of its own here.
    serials = [r.serial for r in records]
    for start in range(0, len(serials), 500):
        chunk = serials[start : start + 500]
        for found in session.scalars(
            select(Device).where(Device.tenant_id == actor.tenant_id, Device.serial.in_(chunk))
        ):
            existing[found.serial] = found
    for record in records:
        cell = _cell_problem(record)
        if cell is not None:
            rows.append({"serial": record.serial, "status": "refused", "message": cell})
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
    return {
        "dry_run": True,
        "ok": ok,
        "imported": 0,
        "new": len(new),
        "unchanged": unchanged,
        "refused": refused,
        "problems": problems,
        "warnings": warnings,
        "devices": rows,
    }, new


def _cell_problem(record: DeviceRecord) -> str | None:
    """The text cells the server stores, within their columns (see bounds)."""
    for value, what, length in (
        (record.hardware_model, "the Hardware Model", bounds.MODEL_LENGTH),
        (record.version, "the Version", bounds.VERSION_LENGTH),
        (record.test_code or "", "the Test Code", bounds.TEST_CODE_LENGTH),
    ):
        try:
            bounds.check_text(value, what, max_length=length)
        except InvalidError as error:
            return error.message
    return None


def _new_device(actor: Actor, keyring: Keyring, record: DeviceRecord, now: dt.datetime) -> Device:
    data = DeviceInput(
        serial=record.serial,
        key=record.key.hex(),
        starting_code=record.starting_code,
        count=record.count,
        time_divider=record.time_divider,
        restricted=record.restricted,
        hardware_model=record.hardware_model,
        version=record.version,
        test_code=record.test_code,
    )
    return new_device_row(actor, keyring, data, checked_params(data), now)


def import_devices(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    text: str,
    now: dt.datetime,
    *,
    dry_run: bool,
) -> dict[str, Any]:
    """The import report, in the caller's one transaction (small lists; see import_batched).

    `ok` tells whether it was (or, dry, would be) imported.
    """
    require(actor, "devices.import")
    report, new = _check_rows(session, actor, keyring, text)
    report["dry_run"] = dry_run
    if report["ok"] and not dry_run:
        devices = [_new_device(actor, keyring, record, now) for record in new]
        session.add_all(devices)
        session.flush()
        _audit_import(session, actor, now, new, report["unchanged"])
        report["imported"] = len(new)
    return report


def _audit_import(
    session: Session,
    actor: Actor,
    now: dt.datetime,
    new: list[DeviceRecord],
    unchanged: int,
    **extra: Any,
) -> None:
    audit(
        session,
        actor,
        "device.import",
        None,
        now,
        new=len(new),
        unchanged=unchanged,
        serials=[r.serial for r in new][:1000],
        **extra,
    )


Progress = Callable[[int, int], None]


def import_batched(
    db: Database,
    actor: Actor,
    keyring: Keyring,
    text: str,
    now: dt.datetime,
    *,
    dry_run: bool,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The import report, checked in a reading transaction, written in short batches.

    Every row is checked before anything is written, so a bad file changes
    nothing.  The writes then go `batch_size` devices per transaction: the
    database's write lock is never held for more than one batch, and token
    issues go on meanwhile.  Should a batch fail (a device registered by someone
    else in the meantime, the database gone), the batches before it stay
    imported, the report says how many, and importing the same file again
    finishes the job (devices already imported are "unchanged").  `progress` is
    called with (devices written, devices to write) after each batch.
    """
    require(actor, "devices.import")
    with db.read() as session:
        report, new = _check_rows(session, actor, keyring, text)
    report["dry_run"] = dry_run
    if not report["ok"] or dry_run:
        return report
    batches = max(1, -(-len(new) // batch_size))
    imported = 0
    for number in range(batches):
        chunk = new[number * batch_size : (number + 1) * batch_size]
        # Sealing the keys is the slow part: done before the write lock is taken.
        devices = [_new_device(actor, keyring, record, now) for record in chunk]
        try:
            with db.write() as session:
                taken = set(
                    session.scalars(
                        select(Device.serial).where(
                            Device.tenant_id == actor.tenant_id,
                            Device.serial.in_([d.serial for d in devices]),
                        )
                    )
                )
                if taken:
                    raise ConflictError(
                        f"{len(taken)} device(s) of this file were registered by someone else "
                        f"during the import (e.g. {sorted(taken)[0]})",
                        "import the file again: the report then shows what differs",
                    )
                session.add_all(devices)
                session.flush()
                _audit_import(
                    session,
                    actor,
                    now,
                    chunk,
                    report["unchanged"] if number == 0 else 0,
                    batch=number + 1,
                    batches=batches,
                )
        except (ServiceError, SQLAlchemyError) as error:
            report["ok"] = False
            report["imported"] = imported
            message = error.message if isinstance(error, ServiceError) else "the database failed"
            report["problems"].append(
                {
                    "row": None,
                    "column": None,
                    "message": f"{message}; {imported} of {len(new)} new device(s) were imported "
                    "before that: import the same file again to finish (those are unchanged)",
                }
            )
            return report
        imported += len(chunk)
        if progress is not None:
            progress(imported, len(new))
    report["imported"] = imported
    report["batches"] = batches
    return report
