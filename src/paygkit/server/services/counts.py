"""Count reports: the count read from a device, to see drift and offer a counter sync."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.models import CountReport, Device, TokenRecord
from paygkit.server.services.common import Actor, InvalidError, audit, iso, require
from paygkit.server.services.devices import MAX_COUNT, device_view, get_device
from paygkit.server.services.tokens import COUNTER_SYNC_WINDOW, token_view


class CountSource(enum.StrEnum):
    DISPLAY = "display"
    UART = "uart"
    SUPPORT_CALL = "support_call"
    OTHER = "other"


def report_view(report: CountReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "count": report.count,
        "source": report.source,
        "note": report.note,
        "read_at": iso(report.read_at),
        "count_issued": report.count_issued,
        "reported_by": report.actor,
        "created_at": iso(report.created_at),
    }


def analyse(session: Session, device: Device) -> dict[str, Any]:
    """Drift between what was issued and what the device last showed, and what to do."""
    issued, seen = device.last_count_issued, device.last_count_reported
    pending = list(
        session.scalars(
            select(TokenRecord)
            .where(
                TokenRecord.device_id == device.id,
                TokenRecord.count.is_not(None),
                TokenRecord.token_count > seen,
            )
            .order_by(TokenRecord.token_count)
        )
    )
    drift = issued - seen
    advice: list[str] = []
    sync = False
    if drift > device.decode_window:
        sync = True
        advice.append(
            f"the device is {drift} counts behind: tokens above count {seen + device.decode_window}"
            " are refused until older ones are entered; enter the unentered tokens in order, "
            "or issue a counter_sync token"
            + (
                ""
                if drift <= COUNTER_SYNC_WINDOW
                else f" (a Counter Sync reaches {COUNTER_SYNC_WINDOW} counts: beyond that, enter "
                "the unentered tokens in order, each moves the device up to "
                f"{device.decode_window} counts forward)"
            )
        )
    elif drift > 0:
        advice.append(f"{len(pending)} issued token(s) not entered yet (counts above {seen})")
    return {
        "count_issued": issued,
        "count_reported": seen,
        "drift": drift,
        "unentered_tokens": [token_view(t, device.time_divider) for t in pending],
        "counter_sync_suggested": sync,
        "advice": advice,
    }


def report_count(
    session: Session,
    actor: Actor,
    serial: str,
    count: int,
    source: CountSource,
    now: dt.datetime,
    *,
    read_at: dt.datetime | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    require(actor, "counts.report")
    if not 0 <= count <= MAX_COUNT:
        raise InvalidError(f"the count must be 0 to {MAX_COUNT}, got {count}")
    if note is not None and len(note) > 1000:
        raise InvalidError("the note must be at most 1000 characters")
    read_at = read_at or now
    if read_at > now + dt.timedelta(minutes=5):
        raise InvalidError(
            f"read_at {iso(read_at)} is in the future", "give the time of the reading"
        )
    device = get_device(session, actor, serial, lock=True)
    warnings: list[str] = []
    report = CountReport(
        device_id=device.id,
        count=count,
        source=source.value,
        note=note,
        read_at=read_at,
        count_issued=device.last_count_issued,
        actor=actor.label,
        created_at=now,
    )
    session.add(report)
    if device.count_reported_at is None or read_at >= device.count_reported_at:
        device.last_count_reported = count
        device.count_reported_at = read_at
    else:
        warnings.append("an older reading than the last one: recorded, the device is unchanged")
    if count > device.last_count_issued:
        warnings.append(
            f"the device shows count {count}, above the last count issued here "
            f"({device.last_count_issued}): it got tokens from elsewhere or was reset; "
            f"the server's count moves up to {count} so its next token is accepted"
        )
        device.last_count_issued = count
    device.updated_at = now
    session.flush()
    audit(
        session,
        actor,
        "count.report",
        f"device:{serial}",
        now,
        count=count,
        source=source.value,
        read_at=iso(read_at),
    )
    return {
        "report": report_view(report),
        "analysis": analyse(session, device),
        "device": device_view(device, now),
        "warnings": warnings,
    }


def count_history(
    session: Session, actor: Actor, serial: str, *, limit: int
) -> tuple[Device, list[CountReport]]:
    device = get_device(session, actor, serial)
    reports = session.scalars(
        select(CountReport)
        .where(CountReport.device_id == device.id)
        .order_by(CountReport.id.desc())
        .limit(limit)
    )
    return device, list(reports)
