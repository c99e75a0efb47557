"""Devices: create, read, change, tariffs, and the key export for migrations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from paygkit.device.serial_number import SERIAL_RULE, is_serial_number
from paygkit.factory.devicelist import COLUMNS as CSV_HEADER
from paygkit.factory.devicelist import bad_test_code
from paygkit.server.crypto import Keyring
from paygkit.server.models import AnyDevice, Device, ModelTariff
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
from paygkit.token import DecodeWindows, DeviceParams, ParameterError, parse_key

CURRENCY_RE = re.compile(r"[A-Z]{3}")
DEFAULT_WINDOW = DecodeWindows().forward
# The server's own bound on a device's decode window (the token layer takes up to this too).
MAX_DECODE_WINDOW = 10_000


def check_serial(serial: str) -> str:
    """A new serial (create, import): the one grammar of paygkit.device.serial_number.

    Lookups do not ask this: a device stored under the server's older, looser rule
    (up to 64 characters) stays reachable by its serial (see find_device and
    check_serial_reference).
    """
    if not is_serial_number(serial):
        raise InvalidError(f"the serial number {serial!r} is not valid"[:200], "use " + SERIAL_RULE)
    return serial


def check_serial_reference(session: Session, tenant_id: int, serial: str) -> str:
    """A serial that names a device: in the grammar, or one a stored device already has.

    Devices registered before the server took the one grammar may have serials of 33
    to 64 characters; they keep working.  Any other serial outside the grammar is
    refused with the rule, as a new one would be.
    """
    if is_serial_number(serial) or find_device(session, tenant_id, serial) is not None:
        return serial
    return check_serial(serial)


def check_decode_window(window: int | None) -> int:
    if window is None or not 1 <= window <= MAX_DECODE_WINDOW:
        raise InvalidError(
            f"the decode window must be 1 to {MAX_DECODE_WINDOW} counts",
            f"the reference uses {DEFAULT_WINDOW}",
        )
    return window


def parse_money(value: object, what: str) -> Decimal:
    text = str(value).strip()
    try:
        if len(text) > 60:  # longer than any amount the column holds: no need to parse it
            raise ValueError
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise InvalidError(
            f"{what} must be a decimal number, got {text[:40]!r}", "e.g. 1.50"
        ) from None
    return bounds.check_money(amount, what)


def parse_price(value: object) -> Decimal:
    """A price per day: money above 0 (a free day would give time for nothing)."""
    amount = parse_money(value, "price_per_day")
    if amount <= 0:
        raise InvalidError("price_per_day must be above 0")
    return amount


def check_currency(value: str) -> str:
    if not isinstance(value, str) or not CURRENCY_RE.fullmatch(value.strip().upper()):
        raise InvalidError(
            f"the currency {value!r} is not a 3-letter ISO 4217 code", "e.g. KES, USD"
        )
    return value.strip().upper()


@dataclass(frozen=True, slots=True)
class DeviceInput:
    """A new device, as from one row of the device list (key as 32 hex characters)."""

    serial: str
    key: str
    starting_code: int | None = None
    count: int = 1
    time_divider: int = 1
    restricted: bool = False
    hardware_model: str = ""
    version: str = ""
    test_code: str | None = None
    account: str | None = None
    decode_window: int = DEFAULT_WINDOW


def checked_params(data: DeviceInput) -> DeviceParams:
    """The token parameters of a new device; InvalidError (without the key) when refused."""
    check_serial(data.serial)
    bounds.check_text(data.hardware_model, "the hardware model", max_length=bounds.MODEL_LENGTH)
    bounds.check_text(data.version, "the version", max_length=bounds.VERSION_LENGTH)
    if data.account is not None:
        bounds.check_text(data.account, "the account", max_length=bounds.ACCOUNT_LENGTH)
    if not isinstance(data.key, str) or len(data.key) > 64 or bounds.text_problem(data.key):
        raise InvalidError("the key must be 32 hex characters", "as in the factory's device list")
    try:
        params = DeviceParams.create(
            parse_key(data.key),
            data.starting_code,
            time_divider=data.time_divider,
            restricted_digits=data.restricted,
        )
    except ParameterError as error:
        raise InvalidError(str(error)) from None
    bounds.check_count(data.count, fix="a new device has 1")
    check_decode_window(data.decode_window)
    if data.test_code is not None:
        problem = bad_test_code(data.test_code, data.restricted)
        if problem is not None:
            raise InvalidError(problem, "as in the factory's device list")
    return params


def new_device_row(
    actor: Actor, keyring: Keyring, data: DeviceInput, params: DeviceParams, now: dt.datetime
) -> Device:
    """The row of a new device, its key sealed; `params` are `checked_params(data)`."""
    sealed, version = keyring.seal(data.serial, params.key)
    return Device(
        tenant_id=actor.tenant_id,
        serial=data.serial,
        starting_code=params.starting_code,
        key_sealed=sealed,
        key_version=version,
        time_divider=params.time_divider,
        restricted=params.restricted_digits,
        hardware_model=data.hardware_model,
        version=data.version,
        test_code=data.test_code,
        account=data.account,
        decode_window=data.decode_window,
        last_count_issued=data.count,
        last_count_reported=data.count,
        payg_enabled=True,
        created_at=now,
        updated_at=now,
    )


def create_device(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    data: DeviceInput,
    now: dt.datetime,
    *,
    audit_it: bool = True,
) -> Device:
    require(actor, "devices.write")
    params = checked_params(data)
    if find_device(session, actor.tenant_id, data.serial) is not None:
        raise ConflictError(
            f"device {data.serial} already exists",
            "a serial number is registered once; change the registered device instead, or choose "
            "another serial",
        )
    device = new_device_row(actor, keyring, data, params, now)
    session.add(device)
    session.flush()
    if audit_it:
        audit(session, actor, "device.create", f"device:{data.serial}", now)
    return device


def could_be_stored_serial(serial: str) -> bool:
    """False for what no stored serial looks like: the database need not be asked."""
    return len(serial) <= bounds.SERIAL_LENGTH and not bounds.text_problem(serial)


def find_device(
    session: Session, tenant_id: int, serial: str, *, lock: bool = False
) -> Device | None:
    if not could_be_stored_serial(serial):
        return None
    query = select(Device).where(Device.tenant_id == tenant_id, Device.serial == serial)
    if lock:
        # FOR UPDATE on PostgreSQL; SQLite's writing transactions hold the database lock.
        query = query.with_for_update()
    return session.scalar(query)


def get_device(session: Session, actor: Actor, serial: str, *, lock: bool = False) -> Device:
    require(actor, "read")
    device = find_device(session, actor.tenant_id, serial, lock=lock)
    if device is None:
        raise NotFoundError(
            f"no device with serial {serial!r}"[:200],
            "check the serial, or import the device list",
        )
    return device


def list_devices(
    session: Session,
    actor: Actor,
    *,
    after: str | None,
    limit: int,
    account: str | None,
    offset: int = 0,
) -> list[Device]:
    """The tenant's devices by serial: after `after` (the API's pages), or skipping `offset`
    (the console's numbered pages)."""
    require(actor, "read")
    query = select(Device).where(Device.tenant_id == actor.tenant_id)
    if after:
        bounds.check_text(after, "after", max_length=bounds.SERIAL_LENGTH)
        query = query.where(Device.serial > after)
    if account is not None:
        bounds.check_text(account, "the account", max_length=bounds.ACCOUNT_LENGTH)
        query = query.where(Device.account == account)
    return list(session.scalars(query.order_by(Device.serial).offset(offset).limit(limit)))


def search_devices(
    session: Session, actor: Actor, text: str, *, limit: int = 50, offset: int = 0
) -> list[Device]:
    """Devices whose serial or account (the customer reference) starts with `text`.

    Case does not matter; an exact serial comes first, then the others by serial.
    """
    require(actor, "read")
    text = text.strip()[:100]
    if not text:
        return []
    bounds.check_text(text, "the search", max_length=bounds.SEARCH_LENGTH)
    wanted = text.upper()
    query = (
        select(Device)
        .where(
            Device.tenant_id == actor.tenant_id,
            func.upper(Device.serial).startswith(wanted, autoescape=True)
            | func.upper(Device.account).startswith(wanted, autoescape=True),
        )
        .order_by((func.upper(Device.serial) != wanted), Device.serial)
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_devices(session: Session, tenant_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)
        )
        or 0
    )


def device_params(device: AnyDevice, keyring: Keyring) -> DeviceParams:
    key = keyring.open(device.serial, device.key_sealed, device.key_version)
    return DeviceParams(
        key=key,
        starting_code=device.starting_code,
        time_divider=device.time_divider,
        restricted_digits=device.restricted,
        windows=DecodeWindows(forward=device.decode_window),
    )


_UNSET: Any = object()


def update_device(
    session: Session,
    actor: Actor,
    serial: str,
    now: dt.datetime,
    *,
    account: str | None = _UNSET,
    hardware_model: str | None = _UNSET,
    decode_window: int | None = _UNSET,
    price_per_day: str | None = _UNSET,
    currency: str | None = _UNSET,
) -> Device:
    require(actor, "devices.write")
    device = get_device(session, actor, serial, lock=True)
    changes: dict[str, Any] = {}
    if account is not _UNSET:
        if account:
            bounds.check_text(account, "the account", max_length=bounds.ACCOUNT_LENGTH)
        changes["account"] = account or None
    if hardware_model is not _UNSET:
        if hardware_model:
            bounds.check_text(hardware_model, "the hardware model", max_length=bounds.MODEL_LENGTH)
        changes["hardware_model"] = hardware_model or ""
    if decode_window is not _UNSET:
        changes["decode_window"] = check_decode_window(decode_window)
    if price_per_day is not _UNSET or currency is not _UNSET:
        price = device.price_per_day if price_per_day is _UNSET else price_per_day
        money = device.currency if currency is _UNSET else currency
        if (price is None) != (money is None):
            raise InvalidError(
                "a device tariff needs both price_per_day and currency",
                "give both, or null for both to use the model's tariff",
            )
        if price is not None and money is not None:
            changes["price_per_day"] = str(parse_price(price))
            changes["currency"] = check_currency(money)
        else:
            changes["price_per_day"] = changes["currency"] = None
    for name, value in changes.items():
        setattr(device, name, value)
    device.updated_at = now
    audit(session, actor, "device.update", f"device:{serial}", now, **changes)
    return device


def set_model_tariff(
    session: Session, actor: Actor, hardware_model: str, price: str, currency: str, now: dt.datetime
) -> ModelTariff:
    require(actor, "tariffs.write")
    bounds.check_text(
        hardware_model, "the hardware model", min_length=1, max_length=bounds.MODEL_LENGTH
    )
    amount = parse_price(price)
    code = check_currency(currency)
    tariff = session.scalar(
        select(ModelTariff).where(
            ModelTariff.tenant_id == actor.tenant_id, ModelTariff.hardware_model == hardware_model
        )
    )
    if tariff is None:
        tariff = ModelTariff(tenant_id=actor.tenant_id, hardware_model=hardware_model)
        session.add(tariff)
    tariff.price_per_day = str(amount)
    tariff.currency = code
    tariff.updated_at = now
    session.flush()
    audit(
        session,
        actor,
        "tariff.set",
        f"model:{hardware_model}",
        now,
        price_per_day=str(amount),
        currency=code,
    )
    return tariff


def list_model_tariffs(session: Session, actor: Actor) -> list[ModelTariff]:
    require(actor, "read")
    return list(
        session.scalars(
            select(ModelTariff)
            .where(ModelTariff.tenant_id == actor.tenant_id)
            .order_by(ModelTariff.hardware_model)
        )
    )


def tariff_for(session: Session, device: AnyDevice) -> tuple[Decimal, str] | None:
    """(price per day, currency): the device's own, else its model's, else None."""
    if device.price_per_day is not None and device.currency is not None:
        return Decimal(device.price_per_day), device.currency
    tariff = session.scalar(
        select(ModelTariff).where(
            ModelTariff.tenant_id == device.tenant_id,
            ModelTariff.hardware_model == device.hardware_model,
        )
    )
    if tariff is None:
        return None
    return Decimal(tariff.price_per_day), tariff.currency


# OWASP "CSV Injection": a spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value: str) -> bool:
    return value.startswith(FORMULA_STARTS)


def spreadsheet_safe(value: str) -> str:
    """The cell as a spreadsheet shows text: a formula-like value gets a leading apostrophe."""
    return "'" + value if looks_like_formula(value) else value


def from_spreadsheet_safe(value: str) -> str:
    """What spreadsheet_safe() was given, so that an exported list imports as it was."""
    return value[1:] if value.startswith("'") and looks_like_formula(value[1:]) else value


def export_keys_csv(session: Session, actor: Actor, keyring: Keyring, now: dt.datetime) -> str:
    """Every device of the tenant as the standard device list, keys included (audited)."""
    require(actor, "devices.export_keys")
    devices = list(
        session.scalars(
            select(Device).where(Device.tenant_id == actor.tenant_id).order_by(Device.serial)
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for device in devices:
        key = keyring.open(device.serial, device.key_sealed, device.key_version)
        writer.writerow(
            [
                device.serial,
                f"{device.starting_code:09d}",
                key.hex(),
                device.last_count_issued,
                device.time_divider,
                int(device.restricted),
                spreadsheet_safe(device.hardware_model),
                spreadsheet_safe(device.version),
                device.test_code or "",
            ]
        )
    audit(session, actor, "device.export_keys", None, now, devices=len(devices))
    return out.getvalue()


def device_view(device: AnyDevice, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the API shows of a device: never its key."""
    view: dict[str, Any] = {
        "serial": device.serial,
        "starting_code": device.starting_code,
        "time_divider": device.time_divider,
        "restricted_digits": device.restricted,
        "hardware_model": device.hardware_model,
        "version": device.version,
        "test_code": device.test_code,
        "account": device.account,
        "decode_window": device.decode_window,
        "last_count_issued": device.last_count_issued,
        "last_count_reported": device.last_count_reported,
        "count_reported_at": iso(device.count_reported_at),
        "unentered_counts": max(0, device.last_count_issued - device.last_count_reported),
        "payg_enabled": device.payg_enabled,
        "active_until": iso(device.active_until),
        "furthest_until": iso(device.furthest_until),
        "tariff": (
            {"price_per_day": device.price_per_day, "currency": device.currency}
            if device.price_per_day is not None
            else None
        ),
        "created_at": iso(device.created_at),
        "updated_at": iso(device.updated_at),
    }
    if now is not None:
        view["active"] = not device.payg_enabled or (
            device.active_until is not None and device.active_until > now
        )
    return view
