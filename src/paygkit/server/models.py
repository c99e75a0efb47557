"""The tables of the token server (SQLAlchemy 2).

Every time is stored in UTC.  A device key is never stored in clear: see
`paygkit.server.crypto`.  The schema itself is created by the Alembic
migrations in `paygkit/server/migrations`, never by `create_all`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from paygkit.token import DecodeWindows

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    TECHNICIAN = "technician"
    VIEWER = "viewer"
    # A field agent: fetches and syncs their own token books, nothing else.
    AGENT = "agent"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # The HMAC secret, sealed like a device key (see crypto.Keyring.seal).
    webhook_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_secret_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("tenant_id", "serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    # Wider than a serial may be now (device.serial_number: 32): devices registered under
    # the server's older rule keep serials of up to 64 characters.
    serial: Mapped[str] = mapped_column(String(64))
    starting_code: Mapped[int] = mapped_column(Integer)
    key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer, index=True)
    time_divider: Mapped[int] = mapped_column(Integer, default=1)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    hardware_model: Mapped[str] = mapped_column(String(100), default="")
    version: Mapped[str] = mapped_column(String(100), default="")
    test_code: Mapped[str | None] = mapped_column(String(40))
    account: Mapped[str | None] = mapped_column(String(100), index=True)
    decode_window: Mapped[int] = mapped_column(Integer, default=DecodeWindows().forward)
    # The count of the last token made for the device (the factory count at first).
    last_count_issued: Mapped[int] = mapped_column(Integer)
    # The last count read from the device (the factory count until a report).
    last_count_reported: Mapped[int] = mapped_column(Integer)
    count_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What the device will be once every token issued is entered.
    payg_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    active_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    furthest_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Tariff of this device (wins over the model's).
    price_per_day: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The token book whose reservation holds the device (services/books.py), read with the
    # row by the issue path at no extra cost.  No foreign key: on SQLite adding one means
    # rebuilding the table every other table refers to; books.id is the authority.
    book_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


@dataclass(slots=True)
class DeviceRow:
    """A row of `devices` as a plain value, for the token issue path (see
    `paygkit.server.plain`): the same fields as `Device`, no ORM state."""

    id: int
    tenant_id: int
    serial: str
    starting_code: int
    key_sealed: bytes
    key_version: int
    time_divider: int
    restricted: bool
    hardware_model: str
    version: str
    test_code: str | None
    account: str | None
    decode_window: int
    last_count_issued: int
    last_count_reported: int
    count_reported_at: dt.datetime | None
    payg_enabled: bool
    active_until: dt.datetime | None
    furthest_until: dt.datetime | None
    price_per_day: str | None
    currency: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    book_id: int | None


# What reads a device's fields takes either form.
AnyDevice = Device | DeviceRow


class ModelTariff(Base):
    __tablename__ = "model_tariffs"
    __table_args__ = (UniqueConstraint("tenant_id", "hardware_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    hardware_model: Mapped[str] = mapped_column(String(100))
    price_per_day: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TokenRecord(Base):
    __tablename__ = "tokens"
    # `count` is the device count the token moved the server to; NULL for a
    # reset token (Counter Sync at count 0), which does not advance it.
    __table_args__ = (
        UniqueConstraint("device_id", "count"),
        Index("ix_tokens_device_id_id", "device_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    count: Mapped[int | None] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)
    count_before: Mapped[int] = mapped_column(Integer)
    count_after: Mapped[int] = mapped_column(Integer)
    token_type: Mapped[str] = mapped_column(String(20))
    units: Mapped[int | None] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(120))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A row of `tokens` just inserted, as a plain value: the issue path makes no ORM objects
    (their instrumentation cost more than the statements)."""

    id: int
    device_id: int
    count: int | None
    token_count: int
    count_before: int
    count_after: int
    token_type: str
    units: int | None
    token: str
    request_id: str
    source: str
    actor: str
    api_key_id: int | None
    payment_id: int | None
    created_at: dt.datetime


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "transaction_id"),
        Index("ix_payments_tenant_id_status", "tenant_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    provider: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(String(128))
    account: Mapped[str | None] = mapped_column(String(100))
    serial: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))  # applied | orphan
    orphan_reason: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    units: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CountReport(Base):
    __tablename__ = "count_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    count: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    read_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count_issued: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # A mistaken reading is withdrawn, not deleted: the history keeps what was
    # read and who took it back (counts.withdraw_report).
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    withdraw_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"))
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Append-only: the application only inserts; a trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text, default="{}")


class ConsoleSession(Base):
    """A web console sign-in: the cookie holds a random token, the table its SHA-256.

    The session acts with the API key it was opened with (re-checked on every
    request, so revoking the key ends its sessions).  Rows are ended, not kept
    secret: the CSRF token is stored as is, since it grants nothing without the
    session cookie.
    """

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MasterKeyVersion(Base):
    """A master key version that sealed rows of this database, and its check value.

    The check value (see `crypto.Keyring.check_value`) lets every process tell
    at start that its keyring holds this database's keys; it opens nothing.
    `retired_at` is set when `rotate-master-key --drop-old` removed the version
    from the key file (no row was sealed with it any more).
    """

    __tablename__ = "master_key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Book(Base):
    """A token book: counts of devices reserved for one agent, handed out offline.

    `status` is open or closed (closed by a person, or expired); an open book whose
    `expires_at` has passed is expired already, whether or not anything wrote it yet.
    The book's tokens are not stored: they are made again from the device keys when
    the agent fetches the book and when a hand-out is synced.
    """

    __tablename__ = "books"
    __table_args__ = (Index("ix_books_tenant_id_status", "tenant_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    agent_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The menu: days per value, as a JSON list of decimal texts ("1", "7", "0.5").
    menu: Mapped[str] = mapped_column(Text)
    steps: Mapped[int] = mapped_column(Integer)
    # Days: the cap the admin set, and what the agent could hand out at most (<= cap).
    value_cap_days: Mapped[str] = mapped_column(String(40))
    value_days: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # open | closed | expired
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(120))
    # void | handed_out: what closing assumed of the steps possibly handed out.
    close_decision: Mapped[str | None] = mapped_column(String(20))
    close_reason: Mapped[str | None] = mapped_column(Text)


class BookDevice(Base):
    """A device on a book: its reserved counts first_count, first_count + 2, ... last_count."""

    __tablename__ = "book_devices"
    __table_args__ = (UniqueConstraint("book_id", "device_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    # The device's last count issued before the book reserved its counts.
    count_before: Mapped[int] = mapped_column(Integer)
    first_count: Mapped[int] = mapped_column(Integer)
    last_count: Mapped[int] = mapped_column(Integer)


class BookHandout(Base):
    """A step handed out by the agent, as synced: one row per client-side id, kept as sent.

    `status`: recorded (the step's token, with its token record and payment),
    duplicate (the same token handed out again), conflict (another value at a count
    already handed out).  `flags` is a JSON list (dead, skipped, after_close, ...).
    """

    __tablename__ = "book_handouts"
    __table_args__ = (
        UniqueConstraint("book_id", "client_id"),
        Index("ix_book_handouts_book_id_device_id_count", "book_id", "device_id", "count"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    count: Mapped[int] = mapped_column(Integer)
    days: Mapped[str] = mapped_column(String(40))
    units: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(20))
    amount: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str | None] = mapped_column(String(128))
    handed_out_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))
    flags: Mapped[str] = mapped_column(Text, default="[]")
    note: Mapped[str | None] = mapped_column(Text)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    synced_by: Mapped[str] = mapped_column(String(120))
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
