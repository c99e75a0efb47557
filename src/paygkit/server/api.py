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
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from paygkit import __version__
from paygkit.server import guard
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
from paygkit.server.services import bounds as b
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
from paygkit.server.services.keys import verify_keyring
from paygkit.server.webhooks import Dispatcher

log = logging.getLogger("paygkit.server")
Clock = Callable[[], dt.datetime]


@dataclass
class ServerContext:
    db: Database
    keyring: Keyring
    clock: Clock


Limit = Annotated[int, Query(ge=1, le=1000)]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=b.IDEMPOTENCY_KEY_LENGTH)
]
# Path and query parameters, bounded like the fields they name.
SerialPath = Annotated[str, Path(min_length=1, max_length=b.SERIAL_LENGTH), AfterValidator(b.clean)]
ModelPath = Annotated[str, Path(min_length=1, max_length=b.MODEL_LENGTH), AfterValidator(b.clean)]
IdPath = Annotated[int, Path(ge=1, le=b.MAX_ID)]
BeforeId = Annotated[int | None, Query(ge=1, le=b.MAX_ID)]
AfterId = Annotated[int | None, Query(ge=0, le=b.MAX_ID - 1)]
SerialQuery = Annotated[
    str | None, Query(max_length=b.SERIAL_LENGTH), AfterValidator(b.clean_optional)
]
AccountQuery = Annotated[
    str | None, Query(max_length=b.ACCOUNT_LENGTH), AfterValidator(b.clean_optional)
]
SearchQuery = Annotated[
    str | None, Query(max_length=b.SEARCH_LENGTH), AfterValidator(b.clean_optional)
]


# --- request bodies --------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Every field's bounds come from `services.bounds` (its column, its range).
class DeviceCreate(_Body):
    serial: b.SerialText
    key: b.HexKeyText = Field(description="32 hex characters; stored encrypted, never shown again")
    # The token parameters are checked by the token layer, with its own messages.
    starting_code: int | None = Field(None, description="derived from the key when absent")
    count: b.Count = 1
    time_divider: int = 1
    restricted_digits: bool = False
    hardware_model: b.ModelText = ""
    version: b.VersionText = ""
    test_code: b.TestCodeText | None = None
    account: b.AccountText | None = None
    decode_window: int = Field(64, ge=1, le=10_000)


class DeviceUpdate(_Body):
    account: b.AccountText | None = None
    hardware_model: b.ModelText | None = None
    decode_window: int | None = Field(None, ge=1, le=10_000)
    price_per_day: b.Money | None = None
    currency: b.ShortText | None = None


class TokenCreate(_Body):
    type: tokens.IssueKind = Field(
        description="add_days, set_days, active_until, disable_payg or counter_sync"
    )
    days: b.Days | None = Field(None, description="add_days / set_days")
    until: b.TimeText | None = Field(
        None, description="active_until: ISO date (end of day) or time"
    )
    reset: bool = Field(
        False, description="counter_sync only: the reset token (count 0), technicians only"
    )
    lock: bool = Field(
        False,
        description="set_days with days 0 only: Set Time 0, which locks the device at once "
        "(admin or technician, audited as token.lock); without it a request that would lock "
        "the device, or give it no time, is refused",
    )
    on_window: tokens.WindowPolicy = Field(
        tokens.WindowPolicy.WARN,
        description="beyond the device's decode window: warn (default) or refuse",
    )


class CountCreate(_Body):
    count: b.Count
    source: counts.CountSource = counts.CountSource.OTHER
    read_at: b.TimeText | None = None
    note: b.NoteText | None = None
    server_behind: bool = Field(
        False,
        description="confirm a count above the last one issued: this server was restored "
        "from a backup and the device really is ahead (technician or admin, audited)",
    )


class CountWithdraw(_Body):
    reason: b.NoteText = Field(description="why the report is withdrawn (audited)")


class PaymentCreate(_Body):
    provider: b.ProviderText
    transaction_id: b.TransactionText
    amount: b.Money
    currency: b.ShortText
    paid_at: b.TimeText | None = Field(None, description="ISO time of the payment; default: now")
    account: b.AccountText | None = None
    serial: b.SerialText | None = None


class PaymentApply(_Body):
    serial: b.SerialText


class TariffSet(_Body):
    price_per_day: b.Money
    currency: b.ShortText


class WebhookSet(_Body):
    url: b.UrlText
    secret: b.SecretText | None = Field(None, description="HMAC secret; generated when absent")


class ApiKeyCreate(_Body):
    role: b.ShortText
    name: b.KeyNameText


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
    # Refuse to start with a keyring that is not this database's (services/keys.py).
    verify_keyring(database, ring, clock())
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
    # Failed keys and sign-ins per client address (per process; see guard.Throttle).
    app.state.paygkit_throttle = guard.Throttle()
    _install_error_handlers(app)
    _routes(app, context)
    # The web console (server-rendered pages under /console/); imported here, as it
    # imports this module's ServerContext for its types.
    from paygkit.server.console import install_console

    install_console(app, context)
    # Outermost: limits, throttling and authentication before any body is read.
    app.add_middleware(
        guard.RequestGuard, db=database, throttle=app.state.paygkit_throttle, clock=clock
    )
    guard.install_access_log_redaction()
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
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        if isinstance(error, UnauthorizedError) and _presented_key_quietly(request):
            request.app.state.paygkit_throttle.failed(guard.client_address(request.scope))
        # A key pasted into a path or a field is echoed by messages such as "no device
        # with serial ...": hidden, like everywhere else.
        return JSONResponse(guard.redact_json(error.to_json()), status_code=error.status)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, error: DataError) -> JSONResponse:
        # Every field is bounded before it reaches the database (services.bounds); this
        # is the net under that, and is logged as the bug it is.
        log.error("a value reached the database unchecked: %s", type(error.orig).__name__)
        return _error(
            422,
            "invalid",
            "a value is out of range or too long for the server to store; nothing was changed",
            "see the OpenAPI document at /docs for each field's bounds",
        )

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
        return _error(error.status_code, "http_error", guard.redact(str(error.detail)), fix)

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
        # 503, not 500: the operator can fix it (restart, restore a key version).
        return _error(503, "master_key_unavailable", error.public_message, error.fix)


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


def _presented_key_quietly(request: Request) -> str | None:
    try:
        return _presented_key(request)
    except UnauthorizedError:
        return None


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
        after: SerialQuery = None,
        limit: Limit = 100,
        account: AccountQuery = None,
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
        """Import the factory's device list; `dry_run=true` only reports.

        Every row is checked first: a file with any problem imports nothing.  A good
        file is written in batches of 1000 devices, each its own short transaction
        (tokens are issued meanwhile); progress is logged.  Should it stop midway,
        import the same file again: devices already imported are "unchanged".
        """
        if len(body.encode()) > importer.MAX_IMPORT_BYTES:
            raise InvalidError("the device list is over 50 MB", "split it into several files")
        with read(request) as (_session, actor, now):
            pass

        def progress(done: int, total: int) -> None:
            log.info("device import by %s: %d of %d devices written", actor.label, done, total)

        report = importer.import_batched(
            db, actor, keyring, body, now, dry_run=dry_run, progress=progress
        )
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
    def get_device(request: Request, serial: SerialPath) -> dict[str, Any]:
        with read(request) as (session, actor, now):
            return devices.device_view(devices.get_device(session, actor, serial), now)

    @app.patch("/devices/{serial}", tags=["devices"])
    def update_device(request: Request, serial: SerialPath, body: DeviceUpdate) -> dict[str, Any]:
        given = body.model_dump(exclude_unset=True)
        if "price_per_day" in given and given["price_per_day"] is not None:
            given["price_per_day"] = str(given["price_per_day"])
        with write(request) as (session, actor, now):
            device = devices.update_device(session, actor, serial, now, **given)
            return devices.device_view(device, now)

    # -- tokens ----------------------------------------------------------------------

    async def run_db(work: Callable[[], Response]) -> Response:
        """Database work in a thread, never on the event loop: a writer waiting for
        SQLite's lock must not stall /health and every other request of the process."""
        return await run_in_threadpool(work)

    @app.post("/devices/{serial}/tokens", tags=["tokens"], status_code=201)
    async def issue_token(
        request: Request,
        serial: SerialPath,
        body: TokenCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        """Issue tokens: add_days, set_days, active_until, disable_payg, counter_sync.

        More than 995 time units become several tokens, to be entered in the order given.
        `time` in the answer says what the request is worth in the device's time units
        and how it was rounded.  A request worth 0 units, or one that would lock the
        device (Set Time 0), is refused unless `lock` asks for the lock on purpose.
        """
        spec = tokens.IssueSpec(
            kind=body.type,
            days=body.days,
            until=parse_time(body.until, "until") if body.until is not None else None,
            reset=body.reset,
            lock=body.lock,
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
        request: Request, serial: SerialPath, before_id: BeforeId = None, limit: Limit = 100
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
    def report_count(request: Request, serial: SerialPath, body: CountCreate) -> dict[str, Any]:
        """Record the count read from a device (display, UART, support call).

        A count above the last count issued is impossible for a genuine device and is
        refused (409), unless `server_behind` confirms this server is the one behind
        (restored from a backup): a technician may then move it up to the decode
        window, an admin further; audited.
        """
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
                server_behind=body.server_behind,
            )

    @app.post("/devices/{serial}/counts/{report_id}/withdraw", tags=["counts"])
    def withdraw_count(
        request: Request, serial: SerialPath, report_id: IdPath, body: CountWithdraw
    ) -> dict[str, Any]:
        """Admin: take back a mistaken count report (audited with what it said)."""
        with write(request) as (session, actor, now):
            return counts.withdraw_report(session, actor, serial, report_id, body.reason, now)

    @app.get("/devices/{serial}/counts", tags=["counts"])
    def count_history(request: Request, serial: SerialPath, limit: Limit = 100) -> dict[str, Any]:
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
        before_id: BeforeId = None,
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
    def get_payment(request: Request, payment_id: IdPath) -> dict[str, Any]:
        with read(request) as (session, actor, _now):
            payment = payments.get_payment(session, actor, payment_id)
            return payments.payment_body(session, payment, replayed=False)

    @app.post("/payments/{payment_id}/apply", tags=["payments"])
    def apply_payment(request: Request, payment_id: IdPath, body: PaymentApply) -> dict[str, Any]:
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
    def set_tariff(request: Request, hardware_model: ModelPath, body: TariffSet) -> dict[str, Any]:
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
            keys = access.list_api_keys(session, actor)
            return {"api_keys": [access.api_key_view(k) for k in keys]}

    @app.post("/api-keys", tags=["access"], status_code=201)
    def create_api_key(request: Request, body: ApiKeyCreate) -> dict[str, Any]:
        """A new key; the key itself is in this answer only (the server keeps its hash)."""
        role = access.parse_role(body.role)
        with write(request) as (session, actor, now):
            new = access.create_api_key(session, actor, role, body.name, now)
            return {**access.api_key_view(new.record), "key": new.key}

    @app.delete("/api-keys/{key_id}", tags=["access"])
    def revoke_api_key(request: Request, key_id: IdPath) -> dict[str, Any]:
        with write(request) as (session, actor, now):
            return access.api_key_view(access.revoke_api_key(session, actor, key_id, now))

    @app.get("/audit", tags=["access"])
    def audit_log(
        request: Request,
        after_id: AfterId = None,
        limit: Limit = 100,
        action: SearchQuery = None,
        target: SearchQuery = None,
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


__all__ = ["NotFoundError", "ServerContext", "create_app", "create_app_from_env", "parse_time"]
