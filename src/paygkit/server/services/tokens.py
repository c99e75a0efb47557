"""Issuing tokens: the count advance, the token record and the device update, in one go.

`issue_tokens` runs inside the caller's writing transaction: it locks the
device row (SELECT ... FOR UPDATE on PostgreSQL; SQLite writing transactions
start with BEGIN IMMEDIATE), makes the tokens from the stored count, records
each one (UNIQUE(device_id, count) backs the lock up), moves the device's
count and expected state, queues the webhook and writes the audit entry.
Everything is checked before the first change, so a refused request changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import math
import uuid
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring
from paygkit.server.models import AnyDevice, Device, DeviceRow, IssuedToken, Tenant, TokenRecord
from paygkit.server.plain import PlainStatement
from paygkit.server.services import bounds, idempotency, reservations
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    NotFoundError,
    allowed,
    audit,
    iso,
    require,
)
from paygkit.server.services.devices import (
    could_be_stored_serial,
    device_params,
    device_view,
    get_device,
)
from paygkit.server.services.webhooks import WebhookTarget, enqueue_token
from paygkit.token import (
    MAX_ACTIVATION_UNITS,
    DecodeWindows,
    GeneratedToken,
    ParameterError,
    TokenType,
    days_number,
    days_to_units,
    generate,
    group_digits,
    number_text,
    plural,
    reset_token,
    units_duration_text,
)
from paygkit.token import duration_text as seconds_duration_text

MAX_TOKENS_PER_REQUEST = 20
COUNTER_SYNC_WINDOW = DecodeWindows().counter_sync
# Set Time 0 locks a device at once: asked for on purpose only (with 'lock'), by the
# people who answer for a device's state (an operator's slip must not lock a customer out).
LOCK_REQUEST = "set_days with days 0 and 'lock'"


class IssueKind(enum.StrEnum):
    ADD_DAYS = "add_days"
    SET_DAYS = "set_days"
    ACTIVE_UNTIL = "active_until"
    DISABLE_PAYG = "disable_payg"
    COUNTER_SYNC = "counter_sync"


class WindowPolicy(enum.StrEnum):
    WARN = "warn"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class IssueSpec:
    """What to issue.  `days` for add/set, `until` for active_until, `reset` for the reset token."""

    kind: IssueKind
    days: Decimal | None = None
    until: dt.datetime | None = None
    reset: bool = False
    on_window: WindowPolicy = WindowPolicy.WARN
    # Raw time units instead of days (payments: money buys whole units).
    units: int | None = None
    # Set Time 0 on purpose: set_days with days 0 (or none) only.
    lock: bool = False

    def check(self) -> None:
        days_given = self.days is not None and self.days != 0
        if self.lock and (self.kind is not IssueKind.SET_DAYS or days_given):
            raise InvalidError(
                "'lock' goes with set_days and days 0 only: it issues Set Time 0, "
                "which locks the device at once",
                f"to lock the device ask for {LOCK_REQUEST}; to give time, leave 'lock' out",
            )
        if self.units is not None:
            if self.kind is not IssueKind.ADD_DAYS or self.days is not None or self.units < 0:
                raise InvalidError("units go with add_days only, instead of days")
            if self.units == 0:
                raise InvalidError(
                    "0 time units: the token would add no time and still use up a count"
                )
            check_token_count(self.units)
        elif self.kind in (IssueKind.ADD_DAYS, IssueKind.SET_DAYS):
            if self.days is None and not self.lock:
                raise InvalidError(f"{self.kind.value} needs 'days'", 'e.g. {"days": 7}')
            days = _days_asked(self)
            if not days.is_finite() or days < 0:
                raise InvalidError(
                    "days must be a finite number of at least 0",
                    "to take time away, use set_days or active_until",
                )
            # Bounded before any arithmetic: 1e308 days must not become a huge integer.
            if days > bounds.MAX_DAYS:
                raise InvalidError(
                    f"days must be at most {bounds.MAX_DAYS}; one request issues at most "
                    f"{MAX_TOKENS_PER_REQUEST} tokens of {MAX_ACTIVATION_UNITS} time units",
                    "ask for less time per request",
                )
            bounds.check_money(days, "days")  # at most 6 decimal places, like money
        elif self.days is not None:
            raise InvalidError(f"{self.kind.value} takes no 'days'", "leave 'days' out")
        if self.kind is IssueKind.ACTIVE_UNTIL:
            if self.until is None:
                raise InvalidError("active_until needs 'until'", 'e.g. {"until": "2030-01-31"}')
        elif self.until is not None:
            raise InvalidError(f"{self.kind.value} takes no 'until'", "leave 'until' out")
        if self.reset and self.kind is not IssueKind.COUNTER_SYNC:
            raise InvalidError("'reset' applies to counter_sync only")

    @property
    def permission(self) -> str:
        if self.lock:
            return "tokens.lock"
        if self.reset:
            return "tokens.reset"
        if self.kind is IssueKind.COUNTER_SYNC:
            return "tokens.counter_sync"
        return "tokens.issue"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind.value,
            "days": None if self.days is None else str(self.days),
            "units": self.units,
            "until": iso(self.until),
            "reset": self.reset,
            "lock": self.lock,
            "on_window": self.on_window.value,
        }


def _days_asked(spec: IssueSpec) -> Decimal:
    """The days of add/set (a lock may leave them out: 0)."""
    days = spec.days if spec.days is not None else Decimal(0)
    return days if isinstance(days, Decimal) else Decimal(str(days))


def authorize(actor: Actor, spec: IssueSpec) -> None:
    """Refuse (403) an actor whose role may not issue what `spec` asks for."""
    require(actor, spec.permission)


def may_lock(actor: Actor) -> bool:
    return allowed(actor, "tokens.lock")


@dataclass(frozen=True, slots=True)
class IssueOutcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def unit_length(time_divider: int) -> dt.timedelta:
    return dt.timedelta(days=1) / time_divider


def check_token_count(units: int) -> None:
    """Refuse, before a single token is made, what needs more tokens than one request issues."""
    _check_tokens_needed(max(1, -(-units // MAX_ACTIVATION_UNITS)))


def _check_tokens_needed(needed: int) -> None:
    if needed > MAX_TOKENS_PER_REQUEST:
        raise InvalidError(
            f"this needs {needed} tokens; at most {MAX_TOKENS_PER_REQUEST} are issued at once",
            "ask for less time per request",
            {"tokens_needed": needed, "max_tokens": MAX_TOKENS_PER_REQUEST},
        )


def _split_units(units: int) -> list[int]:
    check_token_count(units)
    parts = [MAX_ACTIVATION_UNITS] * (units // MAX_ACTIVATION_UNITS)
    if units % MAX_ACTIVATION_UNITS or not parts:
        parts.append(units % MAX_ACTIVATION_UNITS)
    return parts


def _set_then_add(units: int) -> list[tuple[TokenType, int | None]]:
    check_token_count(units)
    first = min(units, MAX_ACTIVATION_UNITS)
    plan: list[tuple[TokenType, int | None]] = [(TokenType.SET_TIME, first)]
    if units > first:
        plan += [(TokenType.ADD_TIME, u) for u in _split_units(units - first)]
    return plan


def _exact_units(span: dt.timedelta, time_divider: int) -> Fraction:
    return Fraction(span / dt.timedelta(microseconds=1)) * time_divider / Fraction(86_400_000_000)


def _ceil_units(span: dt.timedelta, time_divider: int) -> int:
    return max(0, math.ceil(_exact_units(span, time_divider)))


def _minimum_days(time_divider: int) -> str:
    return number_text(Fraction(1, time_divider), 6)


def explain(device: AnyDevice, spec: IssueSpec, now: dt.datetime) -> dict[str, Any] | None:
    """What the request is worth in the device's time units, rounding shown.

    e.g. "0.3 days = 1.2 units at 4 units a day, rounded to 1 unit = 6 h".  None for
    the tokens that carry no time (disable_payg, counter_sync).
    """
    divider = device.time_divider
    if spec.kind is IssueKind.ADD_DAYS and spec.units is not None:
        return dict(_worth_of_units(spec.units, divider))
    if spec.kind in (IssueKind.ADD_DAYS, IssueKind.SET_DAYS):
        return dict(_worth_of_days(spec.kind, _days_asked(spec), divider))
    if spec.kind is IssueKind.ACTIVE_UNTIL:
        assert spec.until is not None
        start, adds = _until_start(device, spec.until, now)
        gap = max(spec.until - start, dt.timedelta(0))
        asked = f"until {_when(spec.until)}"
        since = f"after {_when(start)}, the furthest date issued" if adds else "from now"
        return _worth(
            f"{asked}: {_span(gap)} {since}",
            asked,
            max(Fraction(0), _exact_units(gap, divider)),
            _ceil_units(gap, divider),
            divider,
            rounding="rounded up",
        )
    return None


# The worth of a number of days or units is the same text every time (and most requests
# ask for one of a few amounts): made once.  Callers get a copy.
@functools.lru_cache(maxsize=1024)
def _worth_of_units(units: int, divider: int) -> dict[str, Any]:
    return _worth("", None, Fraction(units), units, divider, rounding="rounded")


@functools.lru_cache(maxsize=1024)
def _worth_of_days(kind: IssueKind, days: Decimal, divider: int) -> dict[str, Any]:
    asked = plural(format(days.normalize(), "f"), "day")
    lead = asked + (" from now" if kind is IssueKind.SET_DAYS else "")
    exact = Fraction(days) * divider
    return _worth(lead, asked, exact, days_to_units(days, divider), divider, rounding="rounded")


def _worth(
    lead: str, asked: str | None, exact: Fraction, units: int, divider: int, *, rounding: str
) -> dict[str, Any]:
    text = f"{lead} = " if lead else ""
    text += f"{plural(number_text(exact), 'unit')} at {plural(divider, 'unit')} a day"
    rounded = exact != units
    if rounded:
        text += f", {rounding} to {plural(units, 'unit')}"
    text += f" = {units_duration_text(units, divider)}"
    return {
        "requested": asked,
        "units_exact": number_text(exact),
        "units": units,
        "rounded": rounded,
        "units_per_day": divider,
        "unit_length": units_duration_text(1, divider),
        "duration": units_duration_text(units, divider),
        "text": text,
    }


def _when(moment: dt.datetime) -> str:
    shape = "%Y-%m-%d %H:%M UTC" if moment.second == 0 else "%Y-%m-%d %H:%M:%S UTC"
    return moment.astimezone(dt.UTC).strftime(shape)


def _span(gap: dt.timedelta) -> str:
    """A gap in whole minutes (seconds dropped): "2 days 3 h 5 min", "0 min"."""
    seconds = int(gap.total_seconds() // 60) * 60
    return seconds_duration_text(seconds) if seconds > 0 else "0 min"


def _until_start(
    device: AnyDevice, target: dt.datetime, now: dt.datetime
) -> tuple[dt.datetime, bool]:
    """Where active_until counts from, and whether it adds time (else: Set Time from now).

    As the reference server: Add Time when the date is beyond the furthest date the
    device can reach with the tokens issued so far, else Set Time from now.  A
    disabled device needs a Set Time to lock again.
    """
    furthest = max(now, device.furthest_until or now)
    if device.payg_enabled and target > furthest:
        return furthest, True
    return now, False


def _refuse_worthless(device: AnyDevice, spec: IssueSpec, units: int, now: dt.datetime) -> None:
    """A token worth 0 units still uses up a count; Set Time 0 locks the customer out."""
    if units > 0 or spec.lock:
        return
    divider = device.time_divider
    worth = explain(device, spec, now)
    assert worth is not None
    least = f"{_minimum_days(divider)} day (1 unit = {units_duration_text(1, divider)})"
    details = {"units": 0, "units_per_day": divider, "time": worth["text"]}
    if spec.kind is IssueKind.ADD_DAYS:
        raise InvalidError(
            f"{worth['text']}: the token would add no time and still use up a count on the "
            "device; nothing was issued",
            f"ask for at least {least}",
            details,
        )
    if spec.kind is IssueKind.SET_DAYS:
        what = f"{worth['text']}: that is a Set Time 0 token"
    else:
        assert spec.until is not None
        what = f"{_when(spec.until)} is not in the future: that is a Set Time 0 token"
    raise InvalidError(
        f"{what}, which locks the device at once; nothing was issued",
        f"to lock the device on purpose ask for {LOCK_REQUEST} (admin or technician; audited "
        f"as token.lock); to give time, ask for at least {least}"
        + (" or a date in the future" if spec.kind is IssueKind.ACTIVE_UNTIL else ""),
        details,
    )


def plan_tokens(
    device: AnyDevice, spec: IssueSpec, now: dt.datetime
) -> list[tuple[TokenType, int | None]]:
    """The tokens (type, units) that carry out the request, in the order to enter them.

    Refuses (before anything is made) a token worth nothing, and a Set Time 0 not
    asked for with "lock".
    """
    divider = device.time_divider
    if spec.kind is IssueKind.DISABLE_PAYG:
        return [(TokenType.DISABLE_PAYG, None)]
    if spec.kind is IssueKind.COUNTER_SYNC:
        return [(TokenType.COUNTER_SYNC, None)]
    if spec.kind is IssueKind.ADD_DAYS:
        if spec.units is not None:
            units = spec.units
        else:
            assert spec.days is not None
            units = days_to_units(spec.days, divider)
        _refuse_worthless(device, spec, units, now)
        return [(TokenType.ADD_TIME, u) for u in _split_units(units)]
    if spec.kind is IssueKind.SET_DAYS:
        units = days_to_units(_days_asked(spec), divider)
        _refuse_worthless(device, spec, units, now)
        return _set_then_add(units)
    assert spec.until is not None
    start, adds = _until_start(device, spec.until, now)
    units = _ceil_units(spec.until - start, divider)
    _refuse_worthless(device, spec, units, now)
    if adds:
        return [(TokenType.ADD_TIME, u) for u in _split_units(units)]
    return _set_then_add(units)


def _apply_to_state(device: AnyDevice, token: GeneratedToken, now: dt.datetime) -> None:
    """The device's expected state once the token is entered."""
    step = unit_length(device.time_divider)
    if token.token_type is TokenType.ADD_TIME:
        assert token.units is not None
        start = max(now, device.active_until or now)
        device.active_until = start + step * token.units
        device.furthest_until = max(device.furthest_until or now, device.active_until)
    elif token.token_type is TokenType.SET_TIME:
        assert token.units is not None
        device.active_until = now + step * token.units
        device.furthest_until = device.active_until
        device.payg_enabled = True
    elif token.token_type is TokenType.DISABLE_PAYG:
        device.payg_enabled = False


def days_of_units(units: int | None, time_divider: int) -> str | None:
    """The "days" of a token or payment: the units as days, a number for data."""
    return None if units is None else days_number(Fraction(units, time_divider))


def token_view(record: TokenRecord | IssuedToken, time_divider: int) -> dict[str, Any]:
    digits = record.token
    return {
        "id": record.id,
        "token": group_digits(digits),
        "digits": digits,
        "type": record.token_type,
        "units": record.units,
        "days": days_of_units(record.units, time_divider),
        "count": record.token_count,
        "count_before": record.count_before,
        "count_after": record.count_after,
        "reset": record.count is None,
        "source": record.source,
        "issued_by": record.actor,
        "issued_at": iso(record.created_at),
        "request_id": record.request_id,
        "payment_id": record.payment_id,
    }


def _window_warnings(
    device: AnyDevice, final_count: int, counter_sync: bool, policy: WindowPolicy
) -> list[str]:
    window = COUNTER_SYNC_WINDOW if counter_sync else device.decode_window
    ahead = final_count - device.last_count_reported
    if ahead <= window:
        if ahead > window * 3 // 4:
            return [
                f"the device's last known count is {device.last_count_reported} and this token "
                f"is at {final_count}: {window - ahead} counts left in its decode window of "
                f"{window}; report the device's count"
            ]
        return []
    message = (
        f"the device's last known count is {device.last_count_reported}; it accepts tokens up "
        f"to count {device.last_count_reported + window} only, and this one is at "
        f"{final_count}. It works only if tokens issued since then were entered"
    )
    fix = "report the count shown by the device, or issue a Counter Sync token"
    if policy is WindowPolicy.REFUSE:
        raise ConflictError(
            message,
            fix,
            {"last_count_reported": device.last_count_reported, "token_count": final_count},
        )
    return [f"{message}; {fix}"]


def issue_tokens(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    serial: str,
    spec: IssueSpec,
    now: dt.datetime,
    *,
    source: str = "api",
    payment_id: int | None = None,
    idempotency_key: str | None = None,
) -> IssueOutcome:
    spec.check()
    authorize(actor, spec)
    target = lock_for_issue(session, actor, serial)
    device = target.device
    print_ = ""
    if idempotency_key is not None:
        print_ = idempotency.fingerprint("tokens.issue", serial, spec.to_json())
        stored = idempotency.lookup(session, actor.tenant_id, idempotency_key, print_)
        if stored is not None:
            status, body = stored
            return IssueOutcome(status, {**body, "replayed": True}, replayed=True)

    # Explained before the tokens move the device's furthest date (active_until).
    worth = explain(device, spec, now)
    records, warnings = _make_tokens(
        session, actor, keyring, target, spec, now, source=source, payment_id=payment_id
    )
    body = {
        "serial": device.serial,
        "request_id": records[0].request_id,
        "time": worth,
        "tokens": [token_view(r, device.time_divider) for r in records],
        "device": device_view(device, now),
        "warnings": warnings,
        "replayed": False,
    }
    if idempotency_key is not None:
        idempotency.store(session, actor.tenant_id, idempotency_key, print_, 201, body, now)
    return IssueOutcome(201, body)


_DEVICES = cast(Table, Device.__table__)
_TOKENS = cast(Table, TokenRecord.__table__)
_TENANTS = cast(Table, Tenant.__table__)
_DEVICE_FIELDS = tuple(column.key for column in _DEVICES.columns)
_LOCK_FOR_ISSUE = PlainStatement(
    select(_DEVICES, _TENANTS.c.name, _TENANTS.c.webhook_url)
    .join_from(_DEVICES, _TENANTS, _DEVICES.c.tenant_id == _TENANTS.c.id)
    .where(_DEVICES.c.tenant_id == bindparam("tenant_id"), _DEVICES.c.serial == bindparam("serial"))
    # FOR UPDATE OF devices on PostgreSQL; SQLite's writing transaction holds the lock.
    .with_for_update(of=_DEVICES)
)
_RECORD_TOKEN = PlainStatement(
    insert(_TOKENS)
    .values({column.key: bindparam(column.key) for column in _TOKENS.columns if column.key != "id"})
    .returning(_TOKENS.c.id)
)
_MOVE_DEVICE = PlainStatement(
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("device_id"))
    .values(
        last_count_issued=bindparam("last_count_issued"),
        active_until=bindparam("active_until"),
        furthest_until=bindparam("furthest_until"),
        payg_enabled=bindparam("payg_enabled"),
        updated_at=bindparam("updated_at"),
    )
)


@dataclass(frozen=True, slots=True)
class IssueTarget:
    """A device whose row is locked for issuing, and where its tokens are announced.

    `device` is a plain copy of the row: the issue path reads and writes it with
    plain statements (`paygkit.server.plain`), not through the ORM.
    """

    device: DeviceRow
    webhook: WebhookTarget


def lock_for_issue(session: Session, actor: Actor, serial: str) -> IssueTarget:
    """The actor's device `serial`, its row locked until the transaction ends."""
    require(actor, "read")
    target = find_for_issue(session, actor.tenant_id, serial)
    if target is None:
        raise NotFoundError(
            f"no device with serial {serial!r}"[:200],
            "check the serial, or import the device list",
        )
    return target


def find_for_issue(session: Session, tenant_id: int, serial: str) -> IssueTarget | None:
    if not could_be_stored_serial(serial):
        return None
    row = _LOCK_FOR_ISSUE.first(session.connection(), {"tenant_id": tenant_id, "serial": serial})
    if row is None:
        return None
    *fields, tenant_name, webhook_url = row
    device = DeviceRow(**dict(zip(_DEVICE_FIELDS, fields, strict=True)))
    return IssueTarget(device, WebhookTarget(tenant_name, webhook_url))


def _make_tokens(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    target: IssueTarget,
    spec: IssueSpec,
    now: dt.datetime,
    *,
    source: str,
    payment_id: int | None,
) -> tuple[list[IssuedToken], list[str]]:
    """Make, record and apply the tokens of `spec` for a locked device."""
    device = target.device
    # Every issuing path comes through here: a count an open token book reserved is the agent's.
    if device.book_id is not None:
        reservations.refuse_if_reserved(session, device, now)
    plan = plan_tokens(device, spec, now)
    _check_tokens_needed(len(plan))  # the plan's own check, kept as a guard before any token
    params = device_params(device, keyring)
    request_id = str(uuid.uuid4())
    warnings: list[str] = []
    made: list[tuple[GeneratedToken, int, int, int | None]] = []
    count = device.last_count_issued
    try:
        if spec.reset:
            token = reset_token(params)
            made.append((token, count, count, None))
            warnings.append(
                "reset token: it puts a device back to count 0, which makes every token it "
                "ever accepted work again: a technician's tool for a device going back to the "
                "factory, never a customer's token. paygkit devices refuse it unless "
                "configured to take it; reference-rule devices take it only below count 64. "
                f"Tokens are still issued after count {count}: report the device's count "
                "afterwards. Never give this token to a customer"
            )
        else:
            for token_type, units in plan:
                token = generate(params, count=count, token_type=token_type, units=units)
                made.append((token, count, token.count, token.count))
                count = token.count
    except ParameterError as error:
        raise InvalidError(str(error)) from None
    if not spec.reset:
        warnings += _window_warnings(
            device, count, spec.kind is IssueKind.COUNTER_SYNC, spec.on_window
        )

    rows = [
        {
            "device_id": device.id,
            "count": unique_count,
            "token_count": token.count,
            "count_before": before,
            "count_after": after,
            "token_type": token.token_type.value,
            "units": token.units,
            "token": token.digits,
            "request_id": request_id,
            "source": source,
            "actor": actor.label,
            "api_key_id": actor.api_key_id,
            "payment_id": payment_id,
            "created_at": now,
        }
        for token, before, after, unique_count in made
    ]
    connection = session.connection()
    records = []
    for row in rows:
        # UNIQUE(device_id, count) refuses a count recorded twice, whatever the lock did.
        inserted = _RECORD_TOKEN.first(connection, row)
        assert inserted is not None
        records.append(IssuedToken(id=inserted[0], **row))
    if not spec.reset:
        for token, *_counts in made:
            _apply_to_state(device, token, now)
    device.last_count_issued = count
    device.updated_at = now
    _MOVE_DEVICE.run(
        connection,
        {
            "device_id": device.id,
            "last_count_issued": device.last_count_issued,
            "active_until": device.active_until,
            "furthest_until": device.furthest_until,
            "payg_enabled": device.payg_enabled,
            "updated_at": device.updated_at,
        },
    )
    # A copy of this row the session loaded earlier is stale now: read it again if used.
    loaded = session.identity_map.get(session.identity_key(Device, device.id))
    if loaded is not None:
        session.expire(loaded)
    for record in records:
        enqueue_token(session, target.webhook, device, record, now)
    audit(
        session,
        actor,
        "token.lock" if spec.lock else "token.issue",
        f"device:{device.serial}",
        now,
        request=spec.to_json(),
        source=source,
        counts=[r.token_count for r in records],
        types=[r.token_type for r in records],
        units=[r.units for r in records],
        payment_id=payment_id,
    )
    return records, warnings


def token_history(
    session: Session, actor: Actor, serial: str, *, before_id: int | None, limit: int
) -> tuple[Device, list[TokenRecord]]:
    device = get_device(session, actor, serial)
    query = select(TokenRecord).where(TokenRecord.device_id == device.id)
    if before_id is not None:
        query = query.where(TokenRecord.id < bounds.check_id(before_id, "before_id"))
    return device, list(session.scalars(query.order_by(TokenRecord.id.desc()).limit(limit)))
