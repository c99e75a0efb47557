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
import math
import uuid
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring
from paygkit.server.models import Device, TokenRecord
from paygkit.server.services import bounds, idempotency
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    audit,
    iso,
    require,
)
from paygkit.server.services.devices import device_params, device_view, get_device
from paygkit.server.services.webhooks import enqueue_token
from paygkit.token import (
    GeneratedToken,
    ParameterError,
    TokenType,
    days_to_units,
    generate,
    reset_token,
)

MAX_UNITS_PER_TOKEN = 995
MAX_TOKENS_PER_REQUEST = 20
COUNTER_SYNC_WINDOW = 100
MAX_COUNT = 2**31 - 1


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

    def check(self) -> None:
        if self.units is not None:
            if self.kind is not IssueKind.ADD_DAYS or self.days is not None or self.units < 0:
                raise InvalidError("units go with add_days only, instead of days")
            check_token_count(self.units)
        elif self.kind in (IssueKind.ADD_DAYS, IssueKind.SET_DAYS):
            if self.days is None:
                raise InvalidError(f"{self.kind.value} needs 'days'", 'e.g. {"days": 7}')
            days = self.days if isinstance(self.days, Decimal) else Decimal(str(self.days))
            if not days.is_finite() or days < 0:
                raise InvalidError(
                    "days must be a finite number of at least 0",
                    "to take time away, use set_days or active_until",
                )
            # Bounded before any arithmetic: 1e308 days must not become a huge integer.
            if days > bounds.MAX_DAYS:
                raise InvalidError(
                    f"days must be at most {bounds.MAX_DAYS}; one request issues at most "
                    f"{MAX_TOKENS_PER_REQUEST} tokens of {MAX_UNITS_PER_TOKEN} time units",
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
            "on_window": self.on_window.value,
        }


@dataclass(frozen=True, slots=True)
class IssueOutcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def unit_length(time_divider: int) -> dt.timedelta:
    return dt.timedelta(days=1) / time_divider


def check_token_count(units: int) -> None:
    """Refuse, before a single token is made, what needs more tokens than one request issues."""
    needed = max(1, -(-units // MAX_UNITS_PER_TOKEN))
    if needed > MAX_TOKENS_PER_REQUEST:
        raise InvalidError(
            f"this needs {needed} tokens; at most {MAX_TOKENS_PER_REQUEST} are issued at once",
            "ask for less time per request",
            {"tokens_needed": needed, "max_tokens": MAX_TOKENS_PER_REQUEST},
        )


def _split_units(units: int) -> list[int]:
    check_token_count(units)
    parts = [MAX_UNITS_PER_TOKEN] * (units // MAX_UNITS_PER_TOKEN)
    if units % MAX_UNITS_PER_TOKEN or not parts:
        parts.append(units % MAX_UNITS_PER_TOKEN)
    return parts


def _set_then_add(units: int) -> list[tuple[TokenType, int | None]]:
    check_token_count(units)
    first = min(units, MAX_UNITS_PER_TOKEN)
    plan: list[tuple[TokenType, int | None]] = [(TokenType.SET_TIME, first)]
    if units > first:
        plan += [(TokenType.ADD_TIME, u) for u in _split_units(units - first)]
    return plan


def _ceil_units(span: dt.timedelta, time_divider: int) -> int:
    return max(
        0,
        math.ceil(
            Fraction(span / dt.timedelta(microseconds=1)) * time_divider / Fraction(86_400_000_000)
        ),
    )


def plan_tokens(
    device: Device, spec: IssueSpec, now: dt.datetime
) -> list[tuple[TokenType, int | None]]:
    """The tokens (type, units) that carry out the request, in the order to enter them."""
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
        return [(TokenType.ADD_TIME, u) for u in _split_units(units)]
    if spec.kind is IssueKind.SET_DAYS:
        assert spec.days is not None
        return _set_then_add(days_to_units(spec.days, divider))
    # active_until, as the reference server: Add Time when the date is beyond the
    # furthest date the device can reach with the tokens issued so far, else Set
    # Time from now.  A disabled device needs a Set Time to lock again.
    assert spec.until is not None
    target = spec.until
    furthest = max(now, device.furthest_until or now)
    if device.payg_enabled and target > furthest:
        return [
            (TokenType.ADD_TIME, u) for u in _split_units(_ceil_units(target - furthest, divider))
        ]
    return _set_then_add(_ceil_units(target - now, divider))


def _apply_to_state(device: Device, token: GeneratedToken, now: dt.datetime) -> None:
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


def days_text(units: int | None, time_divider: int) -> str | None:
    if units is None:
        return None
    days = Fraction(units, time_divider)
    if days.denominator == 1:
        return str(days.numerator)
    return format(Decimal(days.numerator) / Decimal(days.denominator), ".6f").rstrip("0")


def token_view(record: TokenRecord, time_divider: int) -> dict[str, Any]:
    digits = record.token
    return {
        "id": record.id,
        "token": " ".join(digits[i : i + 3] for i in range(0, len(digits), 3)),
        "digits": digits,
        "type": record.token_type,
        "units": record.units,
        "days": days_text(record.units, time_divider),
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
    device: Device, final_count: int, counter_sync: bool, policy: WindowPolicy
) -> list[str]:
    window = COUNTER_SYNC_WINDOW if counter_sync else device.decode_window
    ahead = final_count - device.last_count_reported
    if ahead <= window:
        if ahead > window * 3 // 4:
            return [
                f"the device's last known count is {device.last_count_reported} and this token "
                f"is at {final_count}: {window - ahead} counts left in its decode window of "
                f"{window}; report the device's count (POST /devices/{device.serial}/counts)"
            ]
        return []
    message = (
        f"the device's last known count is {device.last_count_reported}; it accepts tokens up "
        f"to count {device.last_count_reported + window} only, and this one is at "
        f"{final_count}. It works only if tokens issued since then were entered"
    )
    fix = (
        f"report the count shown by the device (POST /devices/{device.serial}/counts), or "
        "issue a counter_sync token"
    )
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
    require(actor, spec.permission)
    device = get_device(session, actor, serial, lock=True)
    print_ = ""
    if idempotency_key is not None:
        print_ = idempotency.fingerprint("POST", f"/devices/{serial}/tokens", spec.to_json())
        stored = idempotency.lookup(session, actor.tenant_id, idempotency_key, print_)
        if stored is not None:
            status, body = stored
            return IssueOutcome(status, {**body, "replayed": True}, replayed=True)

    records, warnings = _make_tokens(
        session, actor, keyring, device, spec, now, source=source, payment_id=payment_id
    )
    body = {
        "serial": device.serial,
        "request_id": records[0].request_id,
        "tokens": [token_view(r, device.time_divider) for r in records],
        "device": device_view(device, now),
        "warnings": warnings,
        "replayed": False,
    }
    if idempotency_key is not None:
        idempotency.store(session, actor.tenant_id, idempotency_key, print_, 201, body, now)
    return IssueOutcome(201, body)


def _make_tokens(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    device: Device,
    spec: IssueSpec,
    now: dt.datetime,
    *,
    source: str,
    payment_id: int | None,
) -> tuple[list[TokenRecord], list[str]]:
    """Make, record and apply the tokens of `spec` for a locked device."""
    plan = plan_tokens(device, spec, now)
    if len(plan) > MAX_TOKENS_PER_REQUEST:
        raise InvalidError(
            f"this needs {len(plan)} tokens; at most {MAX_TOKENS_PER_REQUEST} are issued at once",
            "ask for less time per request",
        )
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

    records = []
    for token, before, after, unique_count in made:
        record = TokenRecord(
            device_id=device.id,
            count=unique_count,
            token_count=token.count,
            count_before=before,
            count_after=after,
            token_type=token.token_type.value,
            units=token.units,
            token=token.digits,
            request_id=request_id,
            source=source,
            actor=actor.label,
            api_key_id=actor.api_key_id,
            payment_id=payment_id,
            created_at=now,
        )
        session.add(record)
        records.append(record)
        if not spec.reset:
            _apply_to_state(device, token, now)
    device.last_count_issued = count
    device.updated_at = now
    session.flush()
    for record in records:
        enqueue_token(session, device, record, now)
    audit(
        session,
        actor,
        "token.issue",
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
