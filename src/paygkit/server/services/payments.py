"""Payments: money into days by tariff, the token issued at once, orphans kept for a person.

(provider, transaction id) is unique per tenant: a replay returns the answer
of the first delivery (the same tokens), and a different payment under the
same id is refused.  A payment that matches no device, or several, or whose
device has no tariff in its currency, waits as an orphan until someone
applies it to a device by hand.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring
from paygkit.server.models import AnyDevice, Device, Payment, TokenRecord
from paygkit.server.services import bounds, reservations
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    NotFoundError,
    audit,
    iso,
    require,
)
from paygkit.server.services.devices import (
    check_currency,
    check_serial_reference,
    device_view,
    parse_money,
    tariff_for,
)
from paygkit.server.services.tokens import (
    IssueKind,
    IssueSpec,
    IssueTarget,
    _make_tokens,
    days_of_units,
    find_for_issue,
    lock_for_issue,
    token_view,
)
from paygkit.token import number_text, plural, units_duration_text

# The provider of the payments a token book's hand-outs record (services/books.py).
BOOK_PROVIDER = "token-book"


@dataclass(frozen=True, slots=True)
class PaymentInput:
    provider: str
    transaction_id: str
    amount: str
    currency: str
    paid_at: dt.datetime
    account: str | None = None
    serial: str | None = None

    def checked(self) -> PaymentInput:
        provider = bounds.check_text(
            self.provider.strip(),
            "the provider",
            min_length=1,
            max_length=bounds.PROVIDER_LENGTH,
            fix="e.g. mpesa",
        )
        transaction = bounds.check_text(
            self.transaction_id.strip(),
            "the transaction_id",
            min_length=1,
            max_length=bounds.TRANSACTION_LENGTH,
        )
        bounds.check_time(self.paid_at, "paid_at")
        if provider == BOOK_PROVIDER:
            raise InvalidError(
                f"the provider {BOOK_PROVIDER!r} is the server's own, for the money agents "
                "take for token book hand-outs",
                "name the payment provider, e.g. mpesa",
            )
        if not self.account and not self.serial:
            raise InvalidError(
                "a payment needs an account or a serial to find its device",
                "give 'account' (the customer's account) or 'serial'",
            )
        if self.account is not None:
            bounds.check_text(
                self.account, "the account", min_length=1, max_length=bounds.ACCOUNT_LENGTH
            )
        # The serial is checked against the stored devices (record_payment): one registered
        # under the server's older serial rule still takes payments.
        amount = parse_money(self.amount, "the amount")
        if amount <= 0:
            raise InvalidError(f"the amount must be above 0, got {self.amount}")
        return PaymentInput(
            provider=provider,
            transaction_id=transaction,
            amount=str(amount),
            currency=check_currency(self.currency),
            paid_at=self.paid_at,
            account=self.account,
            serial=self.serial,
        )


def payment_view(payment: Payment, device: Device | None) -> dict[str, Any]:
    return {
        "id": payment.id,
        "provider": payment.provider,
        "transaction_id": payment.transaction_id,
        "account": payment.account,
        "serial": payment.serial,
        "amount": payment.amount,
        "currency": payment.currency,
        "paid_at": iso(payment.paid_at),
        "status": payment.status,
        "orphan_reason": payment.orphan_reason,
        "device": device.serial if device is not None else None,
        "units": payment.units,
        "days": days_of_units(payment.units, device.time_divider) if device is not None else None,
        "created_at": iso(payment.created_at),
        "applied_at": iso(payment.applied_at),
    }


def payment_body(
    session: Session,
    payment: Payment,
    *,
    replayed: bool,
    warnings: list[str] | None = None,
    time: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The answer about a payment; `time` (what the money bought, rounding shown) when
    it was just applied."""
    device = session.get(Device, payment.device_id) if payment.device_id is not None else None
    tokens = (
        list(
            session.scalars(
                select(TokenRecord)
                .where(TokenRecord.payment_id == payment.id)
                .order_by(TokenRecord.id)
            )
        )
        if payment.status == "applied"
        else []
    )
    body: dict[str, Any] = {
        "payment": payment_view(payment, device),
        "tokens": [token_view(t, device.time_divider) for t in tokens] if device else [],
        "warnings": warnings or [],
        "replayed": replayed,
    }
    if time is not None:
        body["time"] = time
    if device is not None:
        body["device"] = device_view(device)
    return body


def _same(payment: Payment, data: PaymentInput) -> list[str]:
    differ = []
    if Decimal(payment.amount) != Decimal(data.amount):
        differ.append("amount")
    if payment.currency != data.currency:
        differ.append("currency")
    if payment.account != data.account:
        differ.append("account")
    if payment.serial != data.serial:
        differ.append("serial")
    return differ


def _units_for(amount: Decimal, price: Decimal, time_divider: int) -> int:
    """Whole time units the money buys (rounded down: never more time than paid for)."""
    return math.floor(amount * time_divider / price)


def payment_worth(
    amount: Decimal, price: Decimal, currency: str, time_divider: int
) -> dict[str, Any]:
    """What the money buys, rounding shown: "45 KES at 40 KES a day = 1.125 days = 4.5 units
    at 4 units a day, rounded down to 4 units = 1 day"."""
    days = Fraction(amount) / Fraction(price)
    exact = days * time_divider
    units = _units_for(amount, price, time_divider)
    text = (
        f"{amount} {currency} at {price} {currency} a day = {plural(number_text(days), 'day')}"
        f" = {plural(number_text(exact), 'unit')} at {plural(time_divider, 'unit')} a day"
    )
    if exact != units:
        text += f", rounded down to {plural(units, 'unit')}"
    text += f" = {units_duration_text(units, time_divider)}"
    return {
        "units_exact": number_text(exact),
        "units": units,
        "rounded": exact != units,
        "units_per_day": time_divider,
        "unit_length": units_duration_text(1, time_divider),
        "duration": units_duration_text(units, time_divider),
        "unit_price": number_text(Fraction(price) / time_divider, 6),
        "text": text,
    }


def _too_little(amount: Decimal, price: Decimal, currency: str, time_divider: int) -> str:
    """Why a payment worth less than one unit gives no token (a token uses up a count)."""
    worth = payment_worth(amount, price, currency, time_divider)
    return (
        f"{amount} {currency} buys less than one time unit ({worth['text']}); one unit "
        f"({worth['unit_length']}) costs {worth['unit_price']} {currency}"
    )


def _match(session: Session, tenant_id: int, data: PaymentInput) -> tuple[IssueTarget | None, str]:
    """The device the payment is for, its row locked for issuing; else why none."""
    if data.serial is not None:
        target = find_for_issue(session, tenant_id, data.serial)
        if target is None:
            return None, f"no device has serial {data.serial}"
        if data.account is not None and target.device.account != data.account:
            return None, f"device {data.serial} does not belong to account {data.account}"
        return target, ""
    serials = list(
        session.scalars(
            select(Device.serial)
            .where(Device.tenant_id == tenant_id, Device.account == data.account)
            .limit(5)
        )
    )
    if not serials:
        return None, f"no device has account {data.account}"
    if len(serials) > 1:
        return None, f"several devices have account {data.account}; choose one"
    return find_for_issue(session, tenant_id, serials[0]), ""


def _price(session: Session, device: AnyDevice, currency: str) -> tuple[Decimal | None, str]:
    tariff = tariff_for(session, device)
    if tariff is None:
        return None, (
            f"device {device.serial} (model {device.hardware_model or '-'}) has no tariff"
        )
    price, tariff_currency = tariff
    if tariff_currency != currency:
        return None, f"the tariff of device {device.serial} is in {tariff_currency}, not {currency}"
    return price, ""


def _apply(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    payment: Payment,
    target: IssueTarget,
    price: Decimal,
    now: dt.datetime,
) -> tuple[list[str], dict[str, Any]]:
    """Issue the payment's tokens: (warnings, what the money bought)."""
    device = target.device
    worth = payment_worth(Decimal(payment.amount), price, payment.currency, device.time_divider)
    units = worth["units"]
    records, warnings = _make_tokens(
        session,
        actor,
        keyring,
        target,
        IssueSpec(IssueKind.ADD_DAYS, units=units),
        now,
        source="payment",
        payment_id=payment.id,
    )
    payment.status = "applied"
    payment.orphan_reason = None
    payment.device_id = device.id
    payment.units = units
    payment.request_id = records[0].request_id
    payment.applied_at = now
    return warnings, worth


def record_payment(
    session: Session, actor: Actor, keyring: Keyring, data: PaymentInput, now: dt.datetime
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 201 applied, 202 orphan, 200 a replay of an earlier delivery."""
    require(actor, "payments.write")
    data = data.checked()
    if data.serial is not None:
        check_serial_reference(session, actor.tenant_id, data.serial)
    existing = session.scalar(
        select(Payment).where(
            Payment.tenant_id == actor.tenant_id,
            Payment.provider == data.provider,
            Payment.transaction_id == data.transaction_id,
        )
    )
    if existing is not None:
        differ = _same(existing, data)
        if differ:
            raise ConflictError(
                f"transaction {data.transaction_id} of {data.provider} was already recorded "
                f"with a different {', '.join(differ)}",
                "a transaction id names one payment; check the provider's record",
                {"payment_id": existing.id, "different": differ},
            )
        return 200, payment_body(session, existing, replayed=True)

    payment = Payment(
        tenant_id=actor.tenant_id,
        provider=data.provider,
        transaction_id=data.transaction_id,
        account=data.account,
        serial=data.serial,
        amount=data.amount,
        currency=data.currency,
        paid_at=data.paid_at,
        status="orphan",
        created_at=now,
    )
    session.add(payment)
    session.flush()  # the unique (provider, transaction id) is checked here
    target, reason = _match(session, actor.tenant_id, data)
    device = None if target is None else target.device
    price = None
    if device is not None:
        price, reason = _price(session, device, data.currency)
        held = reservations.holder(session, device, now)
        if held is not None:
            # The money is kept for a person, not refused: the provider would only retry.
            price, reason = None, reservations.refusal(device, held).message
    warnings: list[str] = []
    worth = None
    if device is not None and price is not None:
        # A token worth 0 units would still use up a count: a person decides instead.
        if _units_for(Decimal(data.amount), price, device.time_divider) == 0:
            reason = _too_little(Decimal(data.amount), price, data.currency, device.time_divider)
        else:
            assert target is not None
            warnings, worth = _apply(session, actor, keyring, payment, target, price, now)
    if payment.status == "orphan":
        payment.orphan_reason = reason
        payment.device_id = device.id if device is not None else None
    audit(
        session,
        actor,
        "payment.record",
        f"payment:{payment.id}",
        now,
        provider=data.provider,
        transaction_id=data.transaction_id,
        amount=data.amount,
        currency=data.currency,
        status=payment.status,
        orphan_reason=payment.orphan_reason,
    )
    status = 201 if payment.status == "applied" else 202
    return status, payment_body(session, payment, replayed=False, warnings=warnings, time=worth)


def apply_orphan(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    payment_id: int,
    serial: str,
    now: dt.datetime,
) -> dict[str, Any]:
    require(actor, "payments.write")
    bounds.check_id(payment_id, "the payment id")
    payment = session.scalar(
        select(Payment)
        .where(Payment.id == payment_id, Payment.tenant_id == actor.tenant_id)
        .with_for_update()
    )
    if payment is None:
        raise NotFoundError(f"no payment with id {payment_id}", "see the orphan payments")
    if payment.status != "orphan":
        raise ConflictError(f"payment {payment_id} is already applied", "a payment gives time once")
    target = lock_for_issue(session, actor, serial)
    device = target.device
    price, reason = _price(session, device, payment.currency)
    if price is None:
        raise InvalidError(
            reason, f"set a tariff in {payment.currency} for the device or its model"
        )
    if _units_for(Decimal(payment.amount), price, device.time_divider) == 0:
        raise InvalidError(
            _too_little(Decimal(payment.amount), price, payment.currency, device.time_divider)
            + "; a token worth nothing would still use up a count on the device, so none "
            "is issued",
            "settle this payment outside the server (refund it, or give the time with the "
            "customer's next payment); it stays in the orphan queue",
        )
    warnings, worth = _apply(session, actor, keyring, payment, target, price, now)
    audit(session, actor, "payment.apply", f"payment:{payment.id}", now, serial=serial)
    return payment_body(session, payment, replayed=False, warnings=warnings, time=worth)


def list_payments(
    session: Session, actor: Actor, *, status: str | None, before_id: int | None, limit: int
) -> list[Payment]:
    require(actor, "read")
    if status is not None and status not in ("applied", "orphan"):
        raise InvalidError(f"unknown payment status {status!r}", "use applied or orphan")
    query = select(Payment).where(Payment.tenant_id == actor.tenant_id)
    if status is not None:
        query = query.where(Payment.status == status)
    if before_id is not None:
        query = query.where(Payment.id < bounds.check_id(before_id, "before_id"))
    return list(session.scalars(query.order_by(Payment.id.desc()).limit(limit)))


def get_payment(session: Session, actor: Actor, payment_id: int) -> Payment:
    require(actor, "read")
    bounds.check_id(payment_id, "the payment id")
    payment = session.scalar(
        select(Payment).where(Payment.id == payment_id, Payment.tenant_id == actor.tenant_id)
    )
    if payment is None:
        raise NotFoundError(f"no payment with id {payment_id}")
    return payment
