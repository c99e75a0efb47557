"""Count reports: the count read from a device, to see drift and offer a counter sync."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from paygkit.server.models import CountReport, Device, Role, TokenRecord
from paygkit.server.services import bounds
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    NotFoundError,
    audit,
    iso,
    require,
)
from paygkit.server.services.devices import device_view, get_device
from paygkit.server.services.tokens import COUNTER_SYNC_WINDOW, token_view
from paygkit.token import MAX_COUNT


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
        "withdrawn": None
        if report.withdrawn_at is None
        else {
            "at": iso(report.withdrawn_at),
            "by": report.withdrawn_by,
            "reason": report.withdraw_reason,
        },
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
            "or issue a Counter Sync token"
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


# How far above the last count issued a technician may move the server (a server
# restored from a backup is behind by the tokens issued since): the larger of the
# device's decode window and the Counter Sync window.  An admin may go further, up
# to ADMIN_AHEAD; no one leaves less than HEADROOM counts for the tokens to come.
ADMIN_AHEAD = 1_000_000
HEADROOM = 1_000_000


def _ahead_limit(actor: Actor, device: Device) -> tuple[int, str]:
    if actor.role is Role.ADMIN:
        return ADMIN_AHEAD, "an admin"
    return max(device.decode_window, COUNTER_SYNC_WINDOW), "a technician"


def _check_ahead(actor: Actor, device: Device, count: int, server_behind: bool) -> None:
    """A count above the last one issued is refused unless confirmed (and bounded)."""
    issued = device.last_count_issued
    if not server_behind:
        raise ConflictError(
            f"the device cannot show count {count}: this server issued tokens up to count "
            f"{issued} only, so a genuine device is at {issued} or below; nothing was recorded",
            "check the count on the device's display and the serial number, and report it "
            "again. Only if this server was restored from an old backup (the device got tokens "
            "issued since) report it again confirming that the server is behind (technician "
            "or admin; audited)",
            {"count": count, "last_count_issued": issued},
        )
    require(actor, "counts.server_behind")
    limit, who = _ahead_limit(actor, device)
    if count - issued > limit:
        raise ConflictError(
            f"count {count} is {count - issued} above the last count issued ({issued}); "
            f"{who} may move the server at most {limit} counts ahead; nothing was recorded",
            "check the count read on the device; an admin may confirm a larger gap",
            {"count": count, "last_count_issued": issued, "limit": limit},
        )
    if count > MAX_COUNT - HEADROOM:
        raise ConflictError(
            f"count {count} would leave no room for further tokens; nothing was recorded",
            "check the count read on the device",
            {"count": count, "max": MAX_COUNT - HEADROOM},
        )


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
    server_behind: bool = False,
) -> dict[str, Any]:
    """Record a count read from a device.

    A count above the last count issued is impossible for a genuine device and is
    refused (409), unless `server_behind` confirms that this server is the one
    behind (restored from a backup): then, within bounds, the server's count moves up
    to the device's so its next token is accepted.  Never is a device moved back.
    """
    require(actor, "counts.report")
    bounds.check_count(count)
    if note is not None:
        bounds.check_text(note, "the note", max_length=bounds.MAX_NOTE)
    read_at = read_at or now
    bounds.check_time(read_at, "read_at")
    if read_at > now + dt.timedelta(minutes=5):
        raise InvalidError(
            f"read_at {iso(read_at)} is in the future", "give the time of the reading"
        )
    device = get_device(session, actor, serial, lock=True)
    ahead = count > device.last_count_issued
    if ahead:
        _check_ahead(actor, device, count, server_behind)
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
    if ahead:
        warnings.append(
            f"the device shows count {count}, above the last count issued here "
            f"({device.last_count_issued}), confirmed as a server behind the device: "
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
        report_id=report.id,
        **({"server_behind": True, "count_issued_before": report.count_issued} if ahead else {}),
    )
    return {
        "report": report_view(report),
        "analysis": analyse(session, device),
        "device": device_view(device, now),
        "warnings": warnings,
    }


def withdraw_report(
    session: Session,
    actor: Actor,
    serial: str,
    report_id: int,
    reason: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Take back a mistaken count report (admin, audited; the report stays, marked withdrawn).

    The device's reported count becomes that of the latest remaining reading; the
    server's issued count goes back down only as far as nothing issued or reported
    since stands above it, so no token count is ever used twice.
    """
    require(actor, "counts.withdraw")
    bounds.check_id(report_id, "the report id")
    reason = bounds.check_text(
        reason.strip(),
        "the reason",
        min_length=1,
        max_length=bounds.MAX_NOTE,
        fix="say why the report is withdrawn, e.g. 'typed 170 for 16'",
    )
    device = get_device(session, actor, serial, lock=True)
    report = session.scalar(
        select(CountReport).where(CountReport.id == report_id, CountReport.device_id == device.id)
    )
    if report is None:
        raise NotFoundError(
            f"device {serial} has no count report {report_id}",
            "see the device's count reports",
        )
    if report.withdrawn_at is not None:
        raise ConflictError(
            f"count report {report_id} of device {serial} was already withdrawn "
            f"({iso(report.withdrawn_at)}, by {report.withdrawn_by})",
            "see the device's count reports",
        )
    report.withdrawn_at = now
    report.withdrawn_by = actor.label
    report.withdraw_reason = reason
    session.flush()
    withdrawn = report_view(report)
    standing = (CountReport.device_id == device.id, CountReport.withdrawn_at.is_(None))
    latest = session.scalar(
        select(CountReport)
        .where(*standing)
        .order_by(CountReport.read_at.desc(), CountReport.id.desc())
        .limit(1)
    )
    first_token = session.scalar(
        select(TokenRecord)
        .where(TokenRecord.device_id == device.id)
        .order_by(TokenRecord.id)
        .limit(1)
    )
    before = (device.last_count_issued, device.last_count_reported)
    if latest is not None:
        device.last_count_reported = latest.count
        device.count_reported_at = latest.read_at
    else:
        # No reading left: the count the device had when the server first issued to it.
        device.last_count_reported = (
            first_token.count_before if first_token is not None else report.count_issued
        )
        device.count_reported_at = None
    floors = [
        report.count_issued,
        session.scalar(
            select(func.max(TokenRecord.token_count)).where(TokenRecord.device_id == device.id)
        ),
        session.scalar(select(func.max(CountReport.count)).where(*standing)),
    ]
    if device.last_count_issued == report.count and report.count > report.count_issued:
        device.last_count_issued = max(f for f in floors if f is not None)
    warnings = []
    if device.last_count_issued > report.count_issued and report.count > report.count_issued:
        warnings.append(
            f"the server's count stays at {device.last_count_issued}: tokens or readings since "
            "stand above it, and a count is never used twice"
        )
    device.updated_at = now
    audit(
        session,
        actor,
        "count.withdraw",
        f"device:{serial}",
        now,
        report=withdrawn,
        reason=reason,
        count_issued=[before[0], device.last_count_issued],
        count_reported=[before[1], device.last_count_reported],
    )
    return {
        "withdrawn": withdrawn,
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
