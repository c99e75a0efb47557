"""The HTTP API (FastAPI): thin handlers over `paygkit.server.services`.

Authentication: `Authorization: Bearer <API key>` (or `X-API-Key: <key>`).
Every refusal is a JSON body `{"error": {"code", "message", "fix"?, "details"?}}`
with a 4xx status, and nothing is changed.  The OpenAPI document is at
`/openapi.json`, the interactive one at `/docs`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from paygkit import __version__
from paygkit.server.config import Settings
from paygkit.server.crypto import Keyring, MasterKeyError, load_keyring
from paygkit.server.db import Database
from paygkit.server.models import Tenant
from paygkit.server.services import (
    access,
    audit,
    counts,
    devices,
    idempotency,
    importer,
    payments,
    tokens,
    webhooks,
)
from paygkit.server.services.common import (
    Actor,
    InvalidError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
    iso,
    parse_time,
    utc_now,
)
from paygkit.server.webhooks import Dispatcher

log = logging.getLogger("paygkit.server")
Clock = Callable[[], dt.datetime]


@dataclass
class ServerContext:
    db: Database
    keyring: Keyring
    clock: Clock


Limit = Annotated[int, Query(ge=1, le=1000)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


# --- request bodies --------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceCreate(_Body):
    serial: str = Field(max_length=64)
    key: str = Field(description="32 hex characters; stored encrypted, never shown again")
    starting_code: int | None = Field(None, description="derived from the key when absent")
    count: int = 1
    time_divider: int = 1
    restricted_digits: bool = False
    hardware_model: str = Field("", max_length=100)
    version: str = Field("", max_length=100)
    test_code: str | None = None
    account: str | None = Field(None, max_length=100)
    decode_window: int = 64


class DeviceUpdate(_Body):
    account: str | None = Field(None, max_length=100)
    hardware_model: str | None = Field(None, max_length=100)
    decode_window: int | None = None
    price_per_day: Decimal | None = None
    currency: str | None = None


class TokenCreate(_Body):
    type: tokens.IssueKind = Field(
        description="add_days, set_days, active_until, disable_payg or counter_sync"
    )
    days: Decimal | None = Field(None, description="add_days / set_days")
    until: str | None = Field(None, description="active_until: ISO date (end of day) or time")
    reset: bool = Field(
        False, description="counter_sync only: the reset token (count 0), technicians only"
    )
    on_window: tokens.WindowPolicy = Field(
        tokens.WindowPolicy.WARN,
        description="beyond the device's decode window: warn (default) or refuse",
    )


class CountCreate(_Body):
    count: int
    source: counts.CountSource = counts.CountSource.OTHER
    read_at: str | None = None
    note: str | None = None


class PaymentCreate(_Body):
    provider: str
    transaction_id: str
    amount: Decimal
    currency: str
    paid_at: str | None = Field(None, description="ISO time of the payment; default: now")
    account: str | None = None
    serial: str | None = None


class PaymentApply(_Body):
    serial: str


class TariffSet(_Body):
    price_per_day: Decimal
    currency: str


class WebhookSet(_Body):
    url: str
    secret: str | None = Field(None, description="HMAC secret; generated when absent")


class ApiKeyCreate(_Body):
    role: str
    name: str


# --- the application -------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    keyring: Keyring | None = None,
    clock: Clock = utc_now,
    migrate: bool = True,
    webhook_worker: bool | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    database = db or Database(settings.database_url)
    ring = keyring or load_keyring(settings.master_key_file, settings.master_key_hex)
    context = ServerContext(database, ring, clock)
    run_worker = settings.webhook_worker if webhook_worker is None else webhook_worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dispatcher = None
        if run_worker:
            dispatcher = Dispatcher(database, ring, clock=clock)
            dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                dispatcher.stop()

    if migrate:
        database.migrate()
    app = FastAPI(
        title="paygkit token server",
        version=__version__,
        description=(
            "Devices, OpenPAYGO tokens, payments, count reports, webhooks, API keys and "
            "an audit log. Authenticate with 'Authorization: Bearer <API key>'."
        ),
        lifespan=lifespan,
    )
    app.state.paygkit = context
    _install_error_handlers(app)
    _routes(app, context)
    # The web console (server-rendered pages under /console/); imported here, as it
    # imports this module's ServerContext for its types.
    from paygkit.server.console import install_console

    install_console(app, context)
    return app


def create_app_from_env() -> FastAPI:
    """The app for `uvicorn --factory` (settings from PAYGKIT_* environment variables)."""
    return create_app(Settings.from_env())


def _error(
    status: int, code: str, message: str, fix: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fix:
        body["fix"] = fix
    if extra:
        body["details"] = extra
    return JSONResponse({"error": body}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, error: ServiceError) -> JSONResponse:
        return JSONResponse(error.to_json(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        # The refused input itself is not repeated: it may be a key.
        fields = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            fields.append({"field": where or "body", "problem": str(item.get("msg", ""))})
        message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:10])
        return _error(
            422,
            "invalid",
            f"the request is not valid: {message}",
            "see the OpenAPI document at /docs for the expected fields",
            fields=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        fix = "see /docs for the endpoints" if error.status_code in (404, 405) else None
        return _error(error.status_code, "http_error", str(error.detail), fix)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, _error_: IntegrityError) -> JSONResponse:
        return _error(
            409,
            "conflict",
            "a concurrent request changed the same data first; nothing was changed",
            "retry the request (with the same Idempotency-Key, if any)",
        )

    @app.exception_handler(OperationalError)
    async def database_busy(_request: Request, error: OperationalError) -> JSONResponse:
        log.error("database error: %s", type(error.orig).__name__)
        return _error(503, "database_unavailable", "the database is busy or unreachable", "retry")

    @app.exception_handler(MasterKeyError)
    async def master_key_error(_request: Request, error: MasterKeyError) -> JSONResponse:
        log.error("master key problem: %s", error)
        return _error(
            500,
            "master_key",
            "the server cannot open a stored device key; nothing was changed",
            "the operator must check the server's master key",
        )


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise UnauthorizedError(
            "the Authorization header must be 'Bearer <API key>'", "or send X-API-Key: <key>"
        )
    return request.headers.get("x-api-key")


def _routes(app: FastAPI, ctx: ServerContext) -> None:
    db = ctx.db
    keyring = ctx.keyring

    @contextmanager
    def write(request: Request) -> Iterator[tuple[Session, Actor, dt.datetime]]:
        with db.write() as session:
            actor = access.authenticate(session, _presented_key(request))
            yield session, actor, ctx.clock()

    @contextmanager
    def read(request: Request) -> Iterator[tuple[Session, Actor, dt.datetime]]:
        with db.read() as session:
            actor = access.authenticate(session, _presented_key(request))
            yield session, actor, ctx.clock()

    @app.get("/health", tags=["server"])
    def health() -> dict[str, Any]:
        """No key needed: is the server up, and on which database."""
        return {"status": "ok", "version": __version__, "database": db.engine.dialect.name}

    @app.get("/me", tags=["server"])
    def me(request: Request) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            tenant = session.get_one(Tenant, actor.tenant_id)
            return {"name": actor.name, "role": actor.role.value, "tenant": tenant.name}

    # -- devices ---------------------------------------------------------------------

    @app.get("/devices", tags=["devices"])
    def list_devices(
        request: Request,
        after: str | None = None,
        limit: Limit = 100,
        account: str | None = None,
    ) -> dict[str, Any]:
        with read(request) as (session, actor, now):
            found = devices.list_devices(session, actor, after=after, limit=limit, account=account)
            return {
                "devices": [devices.device_view(d, now) for d in found],
                "next_after": found[-1].serial if len(found) == limit else None,
            }

    @app.post("/devices", tags=["devices"], status_code=201)
    def create_device(request: Request, body: DeviceCreate) -> dict[str, Any]:
        with write(request) as (session, actor, now):
            device = devices.create_device(
                session,
                actor,
                keyring,
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

    @app.post("/devices/import", tags=["devices"])
    def import_devices(
        request: Request,
        body: Annotated[
            str, Body(media_type="text/csv", description="the standard device list CSV")
        ] = "",
        dry_run: bool = False,
    ) -> Response:
        """Import the factory's device list; `dry_run=true` only reports. All or nothing."""
        if len(body.encode()) > importer.MAX_IMPORT_BYTES:
            raise InvalidError("the device list is over 50 MB", "split it into several files")
        with write(request) as (session, actor, now):
            report = importer.import_devices(session, actor, keyring, body, now, dry_run=dry_run)
        if report["ok"] or dry_run:
            return JSONResponse(report, status_code=200)
        return JSONResponse(
            {
                "error": {
                    "code": "import_refused",
                    "message": f"nothing was imported: {len(report['problems'])} problem(s) "
                    f"and {report['refused']} refused device(s)",
                    "fix": "correct the rows named in the report and import the file again",
                },
                "report": report,
            },
            status_code=422,
        )

    @app.post("/devices/export-keys", tags=["devices"], response_class=PlainTextResponse)
    def export_keys(request: Request) -> PlainTextResponse:
        """Admin only, audited: every device with its key, as the standard CSV (for migrations)."""
        with write(request) as (session, actor, now):
            text = devices.export_keys_csv(session, actor, keyring, now)
        return PlainTextResponse(text, media_type="text/csv", headers={"Cache-Control": "no-store"})

    @app.get("/devices/{serial}", tags=["devices"])
    def get_device(request: Request, serial: str) -> dict[str, Any]:
        with read(request) as (session, actor, now):
            return devices.device_view(devices.get_device(session, actor, serial), now)

    @app.patch("/devices/{serial}", tags=["devices"])
    def update_device(request: Request, serial: str, body: DeviceUpdate) -> dict[str, Any]:
        given = body.model_dump(exclude_unset=True)
        if "price_per_day" in given and given["price_per_day"] is not None:
            given["price_per_day"] = str(given["price_per_day"])
        with write(request) as (session, actor, now):
            device = devices.update_device(session, actor, serial, now, **given)
            return devices.device_view(device, now)

    # -- tokens ----------------------------------------------------------------------

    async def run_db(work: Callable[[], Response]) -> Response:
        """SQLite serialises writers anyway: run inline, saving the thread hop; else a thread."""
        if db.is_sqlite:
            return work()
        return await run_in_threadpool(work)

    @app.post("/devices/{serial}/tokens", tags=["tokens"], status_code=201)
    async def issue_token(
        request: Request,
        serial: str,
        body: TokenCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Issue tokens: add_days, set_days, active_until, disable_payg, counter_sync.

        More than 995 time units become several tokens, to be entered in the order given.
        """
        spec = tokens.IssueSpec(
            kind=body.type,
            days=body.days,
            until=parse_time(body.until, "until") if body.until is not None else None,
            reset=body.reset,
            on_window=body.on_window,
        )
        key = _idempotency(idempotency_key)

        def work() -> Response:
            with write(request) as (session, actor, now):
                outcome = tokens.issue_tokens(
                    session, actor, keyring, serial, spec, now, idempotency_key=key
                )
            return JSONResponse(outcome.body, status_code=outcome.status)

        return await run_db(work)

    @app.get("/devices/{serial}/tokens", tags=["tokens"])
    def token_history(
        request: Request, serial: str, before_id: int | None = None, limit: Limit = 100
    ) -> dict[str, Any]:
        """The device's tokens, newest first."""
        with read(request) as (session, actor, _now):
            device, records = tokens.token_history(
                session, actor, serial, before_id=before_id, limit=limit
            )
            return {
                "serial": device.serial,
                "tokens": [tokens.token_view(r, device.time_divider) for r in records],
                "next_before_id": records[-1].id if len(records) == limit else None,
            }

    # -- count reports ---------------------------------------------------------------

    @app.post("/devices/{serial}/counts", tags=["counts"], status_code=201)
    def report_count(request: Request, serial: str, body: CountCreate) -> dict[str, Any]:
        """Record the count read from a device (display, UART, support call)."""
        read_at = parse_time(body.read_at, "read_at") if body.read_at else None
        with write(request) as (session, actor, now):
            return counts.report_count(
                session,
                actor,
                serial,
                body.count,
                body.source,
                now,
                read_at=read_at,
                note=body.note,
            )

    @app.get("/devices/{serial}/counts", tags=["counts"])
    def count_history(request: Request, serial: str, limit: Limit = 100) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            device, reports = counts.count_history(session, actor, serial, limit=limit)
            return {
                "serial": device.serial,
                "analysis": counts.analyse(session, device),
                "reports": [counts.report_view(r) for r in reports],
            }

    # -- payments --------------------------------------------------------------------

    @app.post("/payments", tags=["payments"], status_code=201)
    async def record_payment(request: Request, body: PaymentCreate) -> Response:
        """Turn a payment into time: 201 applied, 202 orphan (waits), 200 a replay."""
        data = payments.PaymentInput(
            provider=body.provider,
            transaction_id=body.transaction_id,
            amount=str(body.amount),
            currency=body.currency,
            paid_at=parse_time(body.paid_at, "paid_at") if body.paid_at else ctx.clock(),
            account=body.account,
            serial=body.serial,
        )

        def work() -> Response:
            for attempt in range(3):
                try:
                    with write(request) as (session, actor, now):
                        status, answer = payments.record_payment(session, actor, keyring, data, now)
                    return JSONResponse(answer, status_code=status)
                except IntegrityError:
                    # The same payment arrived concurrently: the retry finds and replays it.
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        return await run_db(work)

    @app.get("/payments", tags=["payments"])
    def list_payments(
        request: Request,
        status: Literal["applied", "orphan"] | None = None,
        before_id: int | None = None,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            found = payments.list_payments(
                session, actor, status=status, before_id=before_id, limit=limit
            )
            return {
                "payments": [payments.payment_body(session, p, replayed=False) for p in found],
                "next_before_id": found[-1].id if len(found) == limit else None,
            }

    @app.get("/payments/{payment_id}", tags=["payments"])
    def get_payment(request: Request, payment_id: int) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            payment = payments.get_payment(session, actor, payment_id)
            return payments.payment_body(session, payment, replayed=False)

    @app.post("/payments/{payment_id}/apply", tags=["payments"])
    def apply_payment(request: Request, payment_id: int, body: PaymentApply) -> dict[str, Any]:
        """Apply an orphan payment to a device by hand."""
        with write(request) as (session, actor, now):
            return payments.apply_orphan(session, actor, keyring, payment_id, body.serial, now)

    # -- tariffs ---------------------------------------------------------------------

    @app.get("/tariffs", tags=["payments"])
    def list_tariffs(request: Request) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            return {
                "models": [
                    {
                        "hardware_model": t.hardware_model,
                        "price_per_day": t.price_per_day,
                        "currency": t.currency,
                        "updated_at": iso(t.updated_at),
                    }
                    for t in devices.list_model_tariffs(session, actor)
                ]
            }

    @app.put("/tariffs/{hardware_model}", tags=["payments"])
    def set_tariff(request: Request, hardware_model: str, body: TariffSet) -> dict[str, Any]:
        """The price of one day on every device of a model (a device's own tariff wins)."""
        with write(request) as (session, actor, now):
            tariff = devices.set_model_tariff(
                session, actor, hardware_model, str(body.price_per_day), body.currency, now
            )
            return {
                "hardware_model": tariff.hardware_model,
                "price_per_day": tariff.price_per_day,
                "currency": tariff.currency,
                "updated_at": iso(tariff.updated_at),
            }

    # -- webhook ---------------------------------------------------------------------

    @app.get("/webhook", tags=["webhook"])
    def get_webhook(request: Request) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            return webhooks.webhook_view(session.get_one(Tenant, actor.tenant_id))

    @app.put("/webhook", tags=["webhook"])
    def set_webhook(request: Request, body: WebhookSet) -> dict[str, Any]:
        """Each new token is POSTed there, signed (see X-Paygkit-Signature); secret shown once."""
        with write(request) as (session, actor, now):
            tenant, secret = webhooks.set_webhook(
                session, actor, keyring, body.url, body.secret, now
            )
            return {**webhooks.webhook_view(tenant), "secret": secret}

    @app.delete("/webhook", tags=["webhook"])
    def delete_webhook(request: Request) -> dict[str, Any]:
        with write(request) as (session, actor, now):
            webhooks.delete_webhook(session, actor, now)
            return {"url": None, "configured": False}

    @app.get("/webhook/deliveries", tags=["webhook"])
    def list_deliveries(
        request: Request,
        status: Literal["pending", "delivered", "failed"] | None = None,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            found = webhooks.list_deliveries(session, actor, status=status, limit=limit)
            return {"deliveries": [webhooks.delivery_view(d) for d in found]}

    # -- API keys and audit ----------------------------------------------------------

    @app.get("/api-keys", tags=["access"])
    def list_api_keys(request: Request) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            return {"api_keys": [_key_view(k) for k in access.list_api_keys(session, actor)]}

    @app.post("/api-keys", tags=["access"], status_code=201)
    def create_api_key(request: Request, body: ApiKeyCreate) -> dict[str, Any]:
        """A new key; the key itself is in this answer only (the server keeps its hash)."""
        role = access.parse_role(body.role)
        with write(request) as (session, actor, now):
            new = access.create_api_key(session, actor, role, body.name, now)
            return {**_key_view(new.record), "key": new.key}

    @app.delete("/api-keys/{key_id}", tags=["access"])
    def revoke_api_key(request: Request, key_id: int) -> dict[str, Any]:
        with write(request) as (session, actor, now):
            return _key_view(access.revoke_api_key(session, actor, key_id, now))

    @app.get("/audit", tags=["access"])
    def audit_log(
        request: Request,
        after_id: int | None = None,
        limit: Limit = 100,
        action: str | None = None,
        target: str | None = None,
    ) -> dict[str, Any]:
        """The audit log, oldest first (page with after_id).

        `action`: exact, or a prefix ending in "." (token.); `target`: text found in the target.
        """
        with read(request) as (session, actor, _now):
            entries = audit.list_audit(
                session, actor, after_id=after_id, limit=limit, action=action, target=target
            )
            return {
                "entries": [audit.entry_view(e) for e in entries],
                "next_after_id": entries[-1].id if len(entries) == limit else None,
            }


def _idempotency(key: str | None) -> str | None:
    return idempotency.check_key(key)


def _key_view(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "prefix": record.prefix,
        "created_at": iso(record.created_at),
        "revoked_at": iso(record.revoked_at),
    }


__all__ = ["NotFoundError", "ServerContext", "create_app", "create_app_from_env", "parse_time"]
