"""The console's pages: routes, sessions, CSRF and rendering.

Security, in short:

- Sign-in posts an API key (never in a URL); the server answers with a session
  cookie `paygkit_console` (HttpOnly, SameSite=Strict, Path=/console, and
  Secure when the request came over https, also through a proxy that sets
  X-Forwarded-Proto for uvicorn).  Over plain http the cookie cannot be Secure:
  that is fine on 127.0.0.1, and the sign-in page warns on any other address.
- Every form carries the session's CSRF token, checked on every POST; the
  sign-in form carries a double-submit token (cookie and field).  POSTs whose
  Origin (or Sec-Fetch-Site) says another site sent them are refused.
- Pages are sent with `Cache-Control: no-store`, a Content-Security-Policy that
  allows this server's own CSS and JS only, and may not be framed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import uuid
import zlib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, FastAPI, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from paygkit import __version__
from paygkit.server import guard
from paygkit.server.crypto import MasterKeyError
from paygkit.server.models import Device, Role
from paygkit.server.services import (
    access,
    audit,
    bounds,
    counts,
    devices,
    idempotency,
    importer,
    payments,
    sessions,
    tokens,
)
from paygkit.server.services.common import (
    PERMISSIONS,
    ConflictError,
    InvalidError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
    parse_time,
    require,
)
from paygkit.server.services.sessions import SignedIn

if TYPE_CHECKING:
    from paygkit.server.api import ServerContext

PREFIX = "/console"
COOKIE = guard.CONSOLE_COOKIE  # checked by the guard before a form is read
SIGNIN_COOKIE = "paygkit_console_signin"
HERE = Path(__file__).resolve().parent
# A device list uploaded through the console (bigger ones: the CLI or the API).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# The dry run's sealed copy of the file is valid this long for the confirmation.
IMPORT_CONFIRM_TTL = dt.timedelta(hours=1)
HISTORY_PAGE = 50
AUDIT_PAGE = 50
DEVICE_PAGE = 50

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

TOKEN_FORMS = {
    tokens.IssueKind.ADD_DAYS: "Add days",
    tokens.IssueKind.SET_DAYS: "Set days",
    tokens.IssueKind.ACTIVE_UNTIL: "Active until",
    tokens.IssueKind.DISABLE_PAYG: "Disable PAYG",
    tokens.IssueKind.COUNTER_SYNC: "Counter sync",
}
TYPE_NAMES = {
    "add_time": "Add time",
    "set_time": "Set time",
    "disable_payg": "Disable PAYG",
    "counter_sync": "Counter sync",
}
COUNT_SOURCES = {
    "display": "read on the device's display",
    "uart": "read over the device's serial port",
    "support_call": "given by the customer on a call",
    "other": "other",
}


class CsrfError(ServiceError):
    status = 403
    code = "csrf"


class ServerFaultError(ServiceError):
    status = 500
    code = "server"


# Form fields: every one a string, checked by the page (clear messages, never echoed keys).
Csrf = Annotated[str, Form()]
Text = Annotated[str, Form()]
# Ids in paths and queries: PostgreSQL's INTEGER (bounds.MAX_ID).
RowIdPath = Annotated[int, PathParam(ge=1, le=bounds.MAX_ID)]
BeforeId = Annotated[int | None, Query(ge=1, le=bounds.MAX_ID)]
PageNumber = Annotated[int, Query(ge=1, le=bounds.MAX_ID // DEVICE_PAGE)]


def _csrf_refused() -> CsrfError:
    return CsrfError(
        "this form has expired or did not come from this console; nothing was changed",
        "go back, reload the page and send the form again",
    )


# --- formatting ------------------------------------------------------------------------


# The services word their warnings and refusals for API callers (endpoints, JSON fields);
# on a console page they name the form or the person to turn to instead.  The API's
# messages and error codes stay as they are.
_PLAIN_WORDING = [
    (
        re.compile(r"\s*\(POST /devices/[^)/]+/counts\)"),
        ' (with the form "Report the device\'s count" on the device page)',
    ),
    (re.compile(r"\s*\(POST /devices/import\)"), " (on the Import page)"),
    (
        re.compile(r"issue a counter_sync token"),
        "issue a Counter Sync token (a technician's form on the device page)",
    ),
    (
        re.compile(r'send it again with "server_behind": true'),
        'tick "The server is behind" and send it again',
    ),
    (
        re.compile(r"(\d+) counts left in its decode window of (\d+)"),
        r"only \1 more counts before the device refuses tokens (it takes tokens at most \2"
        " counts past the last count it showed)",
    ),
    (re.compile(r"is not an ISO 8601 date or time"), "is not a date written YYYY-MM-DD"),
]


def plain(text: object) -> str:
    """A service's message in the words of the console's users (see _PLAIN_WORDING)."""
    words = str(text)
    for pattern, replacement in _PLAIN_WORDING:
        words = pattern.sub(replacement, words)
    return words


def _as_time(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def when(value: str | dt.datetime | None) -> str:
    """`2030-01-08 12:00 UTC` (seconds shown only when not zero)."""
    moment = _as_time(value)
    if moment is None:
        return "-"
    shape = "%Y-%m-%d %H:%M UTC" if moment.second == 0 else "%Y-%m-%d %H:%M:%S UTC"
    return moment.strftime(shape)


def span(delta: dt.timedelta) -> str:
    """A duration in words: `12 days 4 h`, `3 h 20 min`, `45 min`."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min"


def groups(digits: str) -> list[str]:
    """A token's digits in groups of three, as read out over the phone."""
    plain = "".join(ch for ch in digits if ch.isdigit())
    return [plain[i : i + 3] for i in range(0, len(plain), 3)]


def device_status(device: Device, now: dt.datetime) -> dict[str, Any]:
    """What the device page says of the device's time."""
    if not device.payg_enabled:
        return {"state": "unlocked", "label": "PAYG disabled: unlocked for good", "left": None}
    until = device.active_until
    if until is None:
        return {"state": "locked", "label": "No time issued yet", "left": None}
    if until > now:
        return {"state": "active", "label": "Active", "left": f"{span(until - now)} left"}
    return {"state": "locked", "label": "Locked", "left": f"expired {span(now - until)} ago"}


def _safe_next(value: str | None) -> str:
    """Only a console page of this server as the place to go after sign-in."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and "\\" not in value
        and urlsplit(value).netloc == ""
    ):
        return value
    return PREFIX + "/"


def _same_origin(request: Request) -> bool:
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _loopback(request: Request) -> bool:
    host = (request.url.hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


# --- the console -----------------------------------------------------------------------


class Console:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = when
        self.env.filters["groups"] = groups
        self.env.filters["plain"] = plain
        self.env.filters["type_name"] = lambda t: TYPE_NAMES.get(t, t)
        self.env.globals.update(prefix=PREFIX, version=__version__)

    # -- rendering -------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        *,
        signed: SignedIn | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        role = signed.actor.role if signed is not None else None

        def can(permission: str) -> bool:
            return role is not None and role in PERMISSIONS[permission]

        page = self.env.get_template(template).render(
            request=request,
            signed=signed,
            me=signed.actor if signed is not None else None,
            csrf=signed.csrf_token if signed is not None else "",
            can=can,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)

    def current(self, request: Request) -> SignedIn | None:
        """The live session of the request, if any (to show the menu on an error page)."""
        try:
            with self.ctx.db.read() as session:
                return sessions.resolve_session(
                    session, request.cookies.get(COOKIE), self.ctx.clock()
                )
        except ServiceError:
            return None

    def error_page(self, request: Request, error: ServiceError) -> HTMLResponse:
        return self.render(
            request,
            "error.html",
            signed=self.current(request),
            status=error.status,
            error=error,
            title={401: "Please sign in", 403: "Not allowed", 404: "Not found"}.get(
                error.status, "Cannot do that"
            ),
        )

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    def sign_in_page(
        self,
        request: Request,
        *,
        status: int = 200,
        error: ServiceError | None = None,
        notice: str | None = None,
        next_url: str = PREFIX + "/",
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "sign_in.html",
            signed=None,
            status=status,
            error=error,
            notice=notice,
            next_url=_safe_next(next_url),
            signin_token=token,
            insecure=not _https(request) and not _loopback(request),
            title="Sign in",
        )
        response.set_cookie(
            SIGNIN_COOKIE,
            token,
            max_age=3600,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=_https(request),
        )
        return response

    # -- sessions --------------------------------------------------------------------

    @contextmanager
    def reading(self, request: Request) -> Iterator[tuple[Session, SignedIn, dt.datetime]]:
        """A read-only transaction as the signed-in key (UnauthorizedError when not)."""
        now = self.ctx.clock()
        with self.ctx.db.read() as session:
            signed = sessions.resolve_session(session, request.cookies.get(COOKIE), now)
            yield session, signed, now
        if signed.stale:
            with self.ctx.db.write() as session:
                sessions.touch_session(session, signed.session_id, now)

    @contextmanager
    def writing(
        self, request: Request, csrf: str | None
    ) -> Iterator[tuple[Session, SignedIn, dt.datetime]]:
        """A writing transaction as the signed-in key, once the form's CSRF token is checked."""
        now = self.ctx.clock()
        with self.ctx.db.write() as session:
            signed = sessions.resolve_session(session, request.cookies.get(COOKIE), now)
            if not signed.csrf_ok(csrf):
                raise _csrf_refused()
            sessions.touch_session(session, signed.session_id, now)
            yield session, signed, now

    def route_class(self) -> type[APIRoute]:
        console = self

        class ConsoleRoute(APIRoute):
            """Every refusal as a page: sign-in when needed, else the error and its fix."""

            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handler = super().get_route_handler()

                async def guarded(request: Request) -> Response:
                    if request.method == "POST" and not _same_origin(request):
                        return console.error_page(request, _csrf_refused())
                    try:
                        return await handler(request)
                    except UnauthorizedError as error:
                        if request.method == "GET":
                            target = request.url.path
                            if request.url.query:
                                target += "?" + request.url.query
                            return console.redirect(
                                f"{PREFIX}/sign-in?next={quote(target, safe='/')}"
                            )
                        return console.sign_in_page(request, status=401, error=error)
                    except ServiceError as error:
                        return console.error_page(request, error)
                    except RequestValidationError:
                        return console.error_page(
                            request,
                            InvalidError(
                                "the form is incomplete or not valid; nothing was changed",
                                "go back and fill in every field",
                            ),
                        )
                    except MasterKeyError:
                        return console.error_page(
                            request,
                            ServerFaultError(
                                "the server cannot open a stored key; nothing was changed",
                                "the operator must check the server's master key",
                            ),
                        )

                return guarded

        return ConsoleRoute

    # -- pages shared by several routes -----------------------------------------------

    def device_page(
        self,
        request: Request,
        serial: str,
        *,
        before_id: int | None = None,
        status: int = 200,
        error: ServiceError | None = None,
        notice: str | None = None,
        warnings: list[str] | None = None,
    ) -> HTMLResponse:
        with self.reading(request) as (session, signed, now):
            device, records = tokens.token_history(
                session, signed.actor, serial, before_id=before_id, limit=HISTORY_PAGE
            )
            _, reports = counts.count_history(session, signed.actor, serial, limit=5)
            return self.render(
                request,
                "device.html",
                signed=signed,
                status=status,
                title=f"Device {device.serial}",
                device=devices.device_view(device, now),
                state=device_status(device, now),
                analysis=counts.analyse(session, device),
                history=[tokens.token_view(r, device.time_divider) for r in records],
                older=records[-1].id if len(records) == HISTORY_PAGE else None,
                reports=[counts.report_view(r) for r in reports],
                token_forms=TOKEN_FORMS,
                may_lock=tokens.may_lock(signed.actor),
                unit_length=tokens.duration_text(1, device.time_divider),
                count_sources=COUNT_SOURCES,
                account_length=bounds.ACCOUNT_LENGTH,
                error=error,
                notice=notice,
                warnings=warnings or [],
                today=now.date().isoformat(),
            )


def _spec_from_form(
    kind: str, days: str, until: str, reset: str, lock: str = ""
) -> tuple[tokens.IssueSpec, dict[str, str]]:
    """The token request of a device page form, checked; and its fields for the next step."""
    try:
        issue_kind = tokens.IssueKind(kind)
    except ValueError:
        raise InvalidError(
            "choose what to issue: add days, set days, active until, disable PAYG or counter sync"
        ) from None
    fields = {"type": issue_kind.value}
    amount: Decimal | None = None
    moment: dt.datetime | None = None
    if issue_kind in (tokens.IssueKind.ADD_DAYS, tokens.IssueKind.SET_DAYS):
        text = days.strip().replace(",", ".")
        if not text:
            raise InvalidError("enter the number of days", "e.g. 7, or 1.5 for a day and a half")
        try:
            if len(text) > 40:
                raise InvalidOperation
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidError(
                f"the number of days must be a number, not {days.strip()[:20]!r}",
                "e.g. 7, or 1.5 for a day and a half",
            ) from None
        if not amount.is_finite() or amount < 0 or amount > 100_000:
            raise InvalidError(
                "the number of days must be between 0 and 100000", "e.g. 7, or 30 for a month"
            )
        fields["days"] = text
    elif issue_kind is tokens.IssueKind.ACTIVE_UNTIL:
        if not until.strip():
            raise InvalidError("choose the date the device stays active until", "e.g. 2030-01-31")
        moment = parse_time(until, "the date")
        fields["until"] = until.strip()
    do_reset = issue_kind is tokens.IssueKind.COUNTER_SYNC and reset in ("1", "on", "true")
    if do_reset:
        fields["reset"] = "1"
    do_lock = lock in ("1", "on", "true")
    if do_lock:
        fields["lock"] = "1"
    spec = tokens.IssueSpec(
        kind=issue_kind, days=amount, until=moment, reset=do_reset, lock=do_lock
    )
    spec.check()
    return spec, fields


def _describe(spec: tokens.IssueSpec, fields: dict[str, str]) -> str:
    match spec.kind:
        case tokens.IssueKind.ADD_DAYS:
            return f"Add {fields['days']} day(s) to the device's time"
        case tokens.IssueKind.SET_DAYS if spec.lock:
            return "Lock the device now (Set Time 0): it stops until it gets new time"
        case tokens.IssueKind.SET_DAYS:
            return f"Set the device's time to {fields['days']} day(s) from now"
        case tokens.IssueKind.ACTIVE_UNTIL:
            return f"Keep the device active until {when(spec.until)}"
        case tokens.IssueKind.DISABLE_PAYG:
            return "Disable PAYG: the device stays unlocked for good"
        case _:
            if spec.reset:
                return "The reset token (Counter Sync at count 0): for a technician at the device"
            return "Counter sync: bring the device's count in line with the server"


def install_console(app: FastAPI, ctx: ServerContext) -> None:
    """Add the console's pages under /console/ (and its CSS and JS under /console/static/)."""
    console = Console(ctx)
    router = APIRouter(prefix=PREFIX, route_class=console.route_class(), include_in_schema=False)
    render = console.render

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return console.redirect(PREFIX + "/")

    @app.get(PREFIX, include_in_schema=False)
    def bare() -> RedirectResponse:
        return console.redirect(PREFIX + "/")

    @router.get("/")
    def home(request: Request) -> Response:
        with console.reading(request):
            pass
        return console.redirect(PREFIX + "/devices")

    # -- sign-in and sign-out --------------------------------------------------------

    @router.get("/sign-in")
    def sign_in_form(request: Request, next: str = PREFIX + "/") -> Response:
        try:
            with console.reading(request):
                return console.redirect(_safe_next(next))
        except UnauthorizedError:
            pass
        signed_out = request.query_params.get("signed_out") == "1"
        return console.sign_in_page(
            request, notice="You are signed out." if signed_out else None, next_url=next
        )

    @router.post("/sign-in")
    def sign_in(
        request: Request,
        api_key: Text = "",
        signin_token: Text = "",
        next_url: Text = PREFIX + "/",
    ) -> Response:
        expected = request.cookies.get(SIGNIN_COOKIE, "")
        if not expected or not secrets.compare_digest(expected, signin_token):
            return console.sign_in_page(
                request,
                status=403,
                error=CsrfError(
                    "the sign-in form had expired; nothing was sent",
                    "enter your API key again",
                ),
                next_url=next_url,
            )
        now = ctx.clock()
        try:
            with ctx.db.write() as session:
                _signed, token = sessions.start_session(session, api_key.strip() or None, now)
        except UnauthorizedError as error:
            if api_key.strip():
                # Counted per address (guard.Throttle answers 429 past the limit) and audited.
                address = guard.client_address(request.scope)
                request.app.state.paygkit_throttle.failed(address)
                with ctx.db.write() as session:
                    sessions.record_failed_sign_in(
                        session, api_key.strip(), address, error.message, now
                    )
            return console.sign_in_page(request, status=401, error=error, next_url=next_url)
        response = console.redirect(_safe_next(next_url))
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(sessions.LIFETIME.total_seconds()),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=_https(request),
        )
        response.delete_cookie(
            SIGNIN_COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=_https(request)
        )
        return response

    @router.post("/sign-out")
    def sign_out(request: Request, csrf: Csrf = "") -> Response:
        with console.writing(request, csrf) as (session, _signed, now):
            sessions.end_session(session, request.cookies.get(COOKIE), now)
        response = console.redirect(PREFIX + "/sign-in?signed_out=1")
        response.delete_cookie(
            COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=_https(request)
        )
        return response

    # -- devices ---------------------------------------------------------------------

    @router.get("/devices")
    def device_search(request: Request, q: str = "", page: PageNumber = 1) -> Response:
        with console.reading(request) as (session, signed, now):
            query = q.strip()
            skip = (page - 1) * DEVICE_PAGE
            # One more than a page: whether there is a next page, without counting them all.
            if query:
                found = devices.search_devices(
                    session, signed.actor, query, limit=DEVICE_PAGE + 1, offset=skip
                )
                if (
                    page == 1
                    and found
                    and (len(found) == 1 or found[0].serial.upper() == query.upper())
                ):
                    return console.redirect(f"{PREFIX}/devices/{quote(found[0].serial)}")
            else:
                found = devices.list_devices(
                    session,
                    signed.actor,
                    after=None,
                    limit=DEVICE_PAGE + 1,
                    account=None,
                    offset=skip,
                )
            shown = found[:DEVICE_PAGE]

            def page_link(number: int) -> str:
                wanted = {"q": query} if query else {}
                if number > 1:
                    wanted["page"] = str(number)
                return f"{PREFIX}/devices" + (f"?{urlencode(wanted)}" if wanted else "")

            return render(
                request,
                "devices.html",
                signed=signed,
                title="Devices" if page == 1 else f"Devices, page {page}",
                q=query,
                results=[
                    {**devices.device_view(d, now), "state": device_status(d, now)} for d in shown
                ],
                total=devices.count_devices(session, signed.actor.tenant_id),
                page=page,
                first=skip + 1,
                last=skip + len(shown),
                previous_page=page_link(page - 1) if page > 1 else None,
                next_page=page_link(page + 1) if len(found) > DEVICE_PAGE else None,
                first_page=page_link(1),
                page_size=DEVICE_PAGE,
            )

    @router.get("/devices/{serial}")
    def device_page(request: Request, serial: str, before_id: BeforeId = None) -> Response:
        return console.device_page(request, serial, before_id=before_id)

    @router.post("/devices/{serial}/account")
    def set_account(request: Request, serial: str, csrf: Csrf = "", account: Text = "") -> Response:
        wanted = account.strip()
        try:
            with console.writing(request, csrf) as (session, signed, now):
                # The checks and audit entry (device.update) of PATCH /devices/{serial}.
                devices.update_device(session, signed.actor, serial, now, account=wanted or None)
        except InvalidError as error:
            return console.device_page(request, serial, status=error.status, error=error)
        return console.device_page(
            request,
            serial,
            notice=(
                f"Customer reference set to {wanted}."
                if wanted
                else "Customer reference removed: the device belongs to no customer."
            ),
        )

    @router.post("/devices/{serial}/confirm")
    def confirm_token(
        request: Request,
        serial: str,
        csrf: Csrf = "",
        type: Text = "",
        days: Text = "",
        until: Text = "",
        reset: Text = "",
        lock: Text = "",
    ) -> Response:
        try:
            with console.writing(request, csrf) as (session, signed, now):
                spec, fields = _spec_from_form(type, days, until, reset, lock)
                tokens.authorize(signed.actor, spec)
                device = devices.get_device(session, signed.actor, serial)
                # Refused here, before the confirmation: a token worth nothing, a lock
                # nobody asked for.
                tokens.plan_tokens(device, spec, now)
                return render(
                    request,
                    "confirm_token.html",
                    signed=signed,
                    title="Confirm the token",
                    device=devices.device_view(device),
                    summary=_describe(spec, fields),
                    time=tokens.explain(device, spec, now),
                    fields=fields,
                    reset=spec.reset,
                    lock=spec.lock,
                    idempotency_key=f"console-{uuid.uuid4()}",
                )
        except InvalidError as error:
            return console.device_page(request, serial, status=error.status, error=error)

    @router.post("/devices/{serial}/tokens")
    def issue_token(
        request: Request,
        serial: str,
        csrf: Csrf = "",
        type: Text = "",
        days: Text = "",
        until: Text = "",
        reset: Text = "",
        lock: Text = "",
        idempotency_key: Text = "",
    ) -> Response:
        try:
            with console.writing(request, csrf) as (session, signed, now):
                spec, _fields = _spec_from_form(type, days, until, reset, lock)
                outcome = tokens.issue_tokens(
                    session,
                    signed.actor,
                    ctx.keyring,
                    serial,
                    spec,
                    now,
                    source="console",
                    idempotency_key=idempotency.check_key(idempotency_key.strip() or None),
                )
                return render(
                    request,
                    "issued.html",
                    signed=signed,
                    title=f"Token for {serial}",
                    serial=outcome.body["serial"],
                    made=outcome.body["tokens"],
                    warnings=outcome.body["warnings"],
                    replayed=outcome.replayed,
                    device=outcome.body["device"],
                    time=outcome.body.get("time"),
                )
        except InvalidError as error:
            return console.device_page(request, serial, status=error.status, error=error)

    @router.post("/devices/{serial}/counts")
    def report_count(
        request: Request,
        serial: str,
        csrf: Csrf = "",
        count: Text = "",
        source: Text = "display",
        note: Text = "",
        server_behind: Text = "",
    ) -> Response:
        try:
            with console.writing(request, csrf) as (session, signed, now):
                try:
                    if len(count.strip()) > 12:
                        raise ValueError
                    value = int(count.strip())
                except ValueError:
                    raise InvalidError(
                        "the count must be a whole number", "the count the device shows, e.g. 17"
                    ) from None
                try:
                    where = counts.CountSource(source)
                except ValueError:
                    raise InvalidError("choose where the count was read") from None
                answer = counts.report_count(
                    session,
                    signed.actor,
                    serial,
                    value,
                    where,
                    now,
                    note=note.strip() or None,
                    server_behind=server_behind in ("1", "on", "true"),
                )
        except (InvalidError, ConflictError) as error:
            return console.device_page(request, serial, status=error.status, error=error)
        return console.device_page(
            request,
            serial,
            notice=f"Count {value} recorded.",
            warnings=answer["warnings"] + answer["analysis"]["advice"],
        )

    # -- device import ---------------------------------------------------------------

    def _import_purpose(signed: SignedIn) -> str:
        return f"console-import:{signed.session_id}"

    @router.get("/import")
    def import_form(request: Request) -> Response:
        with console.reading(request) as (_session, signed, _now):
            require(signed.actor, "devices.import")
            return render(
                request, "import.html", signed=signed, title="Import devices", report=None
            )

    @router.post("/import")
    def import_dry_run(request: Request, file: UploadFile, csrf: Csrf = "") -> Response:
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        with console.writing(request, csrf) as (session, signed, now):
            require(signed.actor, "devices.import")
            error: ServiceError | None = None
            if not data:
                error = InvalidError("the file is empty", "choose the factory's device list (CSV)")
            elif len(data) > MAX_UPLOAD_BYTES:
                error = InvalidError(
                    f"the file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
                    "import big lists with 'paygkit server import' or POST /devices/import",
                )
            else:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    error = InvalidError(
                        "the file is not UTF-8 text", "save the list as 'CSV UTF-8' and try again"
                    )
            if error is not None:
                return render(
                    request,
                    "import.html",
                    signed=signed,
                    status=error.status,
                    title="Import devices",
                    report=None,
                    error=error,
                )
            report = importer.import_devices(
                session, signed.actor, ctx.keyring, text, now, dry_run=True
            )
            sealed = ""
            if report["ok"] and report["new"]:
                stamp = int(now.timestamp()).to_bytes(8, "big")
                blob = ctx.keyring.seal_data(
                    _import_purpose(signed), stamp + zlib.compress(data, 6)
                )
                sealed = base64.urlsafe_b64encode(blob).decode()
            return render(
                request,
                "import.html",
                signed=signed,
                title="Import devices: dry run",
                report=report,
                filename=(file.filename or "devices.csv")[:200],
                sealed=sealed,
            )

    @router.post("/import/confirm")
    async def import_confirm(request: Request) -> Response:
        form = await request.form(max_part_size=2 * MAX_UPLOAD_BYTES, max_files=0)
        csrf = str(form.get("csrf", ""))
        sealed = str(form.get("sealed", ""))
        filename = str(form.get("filename", ""))[:200]

        def work() -> Response:
            with console.writing(request, csrf) as (_session, signed, now):
                require(signed.actor, "devices.import")
                try:
                    opened = ctx.keyring.open_data(
                        _import_purpose(signed), base64.urlsafe_b64decode(sealed.encode())
                    )
                    made = dt.datetime.fromtimestamp(int.from_bytes(opened[:8], "big"), dt.UTC)
                    text = zlib.decompress(opened[8:]).decode("utf-8")
                except (MasterKeyError, binascii.Error, ValueError, zlib.error):
                    raise InvalidError(
                        "this confirmation does not belong to your session or was altered; "
                        "nothing was imported",
                        "upload the file again",
                    ) from None
                if now - made > IMPORT_CONFIRM_TTL:
                    raise InvalidError(
                        "the dry run is over an hour old; nothing was imported",
                        "upload the file again to see an up-to-date report",
                    )
            # Written in short batches, each its own transaction (see importer.import_batched).
            report = importer.import_batched(
                ctx.db, signed.actor, ctx.keyring, text, now, dry_run=False
            )
            return render(
                request,
                "import.html",
                signed=signed,
                status=200 if report["ok"] else 422,
                title="Import devices: done" if report["ok"] else "Import devices: refused",
                report=report,
                filename=filename,
                sealed="",
            )

        return await run_in_threadpool(work)

    # -- payments --------------------------------------------------------------------

    @router.get("/payments")
    def payment_queue(request: Request) -> Response:
        with console.reading(request) as (session, signed, _now):
            orphans = payments.list_payments(
                session, signed.actor, status="orphan", before_id=None, limit=200
            )
            applied = payments.list_payments(
                session, signed.actor, status="applied", before_id=None, limit=20
            )
            return render(
                request,
                "payments.html",
                signed=signed,
                title="Payments",
                orphans=[payments.payment_body(session, p, replayed=False) for p in orphans],
                applied=[payments.payment_body(session, p, replayed=False) for p in applied],
            )

    @router.post("/payments/{payment_id}/confirm")
    def confirm_apply(
        request: Request, payment_id: RowIdPath, csrf: Csrf = "", serial: Text = ""
    ) -> Response:
        with console.writing(request, csrf) as (session, signed, _now):
            require(signed.actor, "payments.write")
            payment = payments.get_payment(session, signed.actor, payment_id)
            body = payments.payment_body(session, payment, replayed=False)
            if not serial.strip():
                raise InvalidError("enter the serial of the device to apply the payment to")
            device = devices.get_device(session, signed.actor, serial.strip())
            tariff = devices.tariff_for(session, device)
            worth = None
            if tariff is not None and tariff[1] == payment.currency:
                worth = payments.payment_worth(
                    Decimal(payment.amount), tariff[0], payment.currency, device.time_divider
                )
            return render(
                request,
                "confirm_apply.html",
                signed=signed,
                title="Confirm the payment",
                payment=body["payment"],
                device=devices.device_view(device),
                tariff=tariff,
                worth=worth,
            )

    @router.post("/payments/{payment_id}/apply")
    def apply_payment(
        request: Request, payment_id: RowIdPath, csrf: Csrf = "", serial: Text = ""
    ) -> Response:
        with console.writing(request, csrf) as (session, signed, now):
            body = payments.apply_orphan(
                session, signed.actor, ctx.keyring, payment_id, serial.strip(), now
            )
            return render(
                request,
                "issued.html",
                signed=signed,
                title=f"Token for {body['device']['serial']}",
                serial=body["device"]["serial"],
                made=body["tokens"],
                warnings=body["warnings"],
                replayed=False,
                device=body["device"],
                payment=body["payment"],
                time=body.get("time"),
            )

    # -- audit log -------------------------------------------------------------------

    @router.get("/audit")
    def audit_page(
        request: Request,
        action: str = "",
        target: str = "",
        who: str = "",
        since: str = "",
        until: str = "",
        before_id: BeforeId = None,
    ) -> Response:
        with console.reading(request) as (session, signed, _now):
            require(signed.actor, "audit.read")
            error = None
            start = end = None
            try:
                start = _day_start(since, "'from'") if since.strip() else None
                end = parse_time(until, "'to'") if until.strip() else None
            except InvalidError as problem:
                error = problem
            entries = (
                audit.list_audit(
                    session,
                    signed.actor,
                    before_id=before_id,
                    limit=AUDIT_PAGE,
                    newest_first=True,
                    action=action.strip() or None,
                    target=target.strip() or None,
                    who=who.strip() or None,
                    since=start,
                    until=end,
                )
                if error is None
                else []
            )
            filters = {"action": action, "target": target, "who": who, "since": since}
            filters["until"] = until
            more = None
            if len(entries) == AUDIT_PAGE:
                more = {**{k: v for k, v in filters.items() if v}, "before_id": entries[-1].id}
            return render(
                request,
                "audit.html",
                signed=signed,
                status=error.status if error else 200,
                title="Audit log",
                error=error,
                entries=[
                    {**audit.entry_view(e), "detail_lines": _detail_lines(e.details)}
                    for e in entries
                ],
                actions=audit.audit_actions(session, signed.actor),
                filters=filters,
                more=more,
            )

    # -- API keys --------------------------------------------------------------------

    def keys_page(
        request: Request,
        session: Session,
        signed: SignedIn,
        *,
        status: int = 200,
        error: ServiceError | None = None,
        created: Any = None,
        notice: str | None = None,
    ) -> HTMLResponse:
        return render(
            request,
            "api_keys.html",
            signed=signed,
            status=status,
            title="API keys",
            keys=access.list_api_keys(session, signed.actor),
            roles=[r.value for r in Role],
            error=error,
            created=created,
            notice=notice,
        )

    @router.get("/api-keys")
    def api_keys(request: Request) -> Response:
        with console.reading(request) as (session, signed, _now):
            return keys_page(request, session, signed)

    @router.post("/api-keys")
    def create_key(request: Request, csrf: Csrf = "", role: Text = "", name: Text = "") -> Response:
        try:
            with console.writing(request, csrf) as (session, signed, now):
                new = access.create_api_key(
                    session, signed.actor, access.parse_role(role), name, now
                )
                return keys_page(request, session, signed, created=new)
        except InvalidError as error:
            with console.reading(request) as (session, signed, _now):
                return keys_page(request, session, signed, status=error.status, error=error)

    @router.post("/api-keys/{key_id}/confirm")
    def confirm_revoke(request: Request, key_id: RowIdPath, csrf: Csrf = "") -> Response:
        with console.writing(request, csrf) as (session, signed, _now):
            found = [k for k in access.list_api_keys(session, signed.actor) if k.id == key_id]
            if not found:
                raise NotFoundError(f"no API key with id {key_id}")
            return render(
                request,
                "confirm_revoke.html",
                signed=signed,
                title="Revoke an API key",
                key=found[0],
                own=found[0].id == signed.actor.api_key_id,
            )

    @router.post("/api-keys/{key_id}/revoke")
    def revoke_key(request: Request, key_id: RowIdPath, csrf: Csrf = "") -> Response:
        with console.writing(request, csrf) as (session, signed, now):
            record = access.revoke_api_key(session, signed.actor, key_id, now)
            return keys_page(
                request,
                session,
                signed,
                notice=f"Key {record.id} ({record.name}) is revoked; its sessions have ended.",
            )

    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="console-static")


def _day_start(text: str, what: str) -> dt.datetime:
    """The start of a day (a date alone), or the time given."""
    moment = parse_time(text, what)
    return moment - dt.timedelta(days=1) if len(text.strip()) == 10 else moment


# Details stored as [before, after] (count.withdraw).
_BEFORE_AFTER = frozenset({"count_issued", "count_reported"})
# An import names up to 1000 serials: the page shows the first ones.
_LIST_SHOWN = 20


def _detail_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if name in _BEFORE_AFTER and len(value) == 2:
            return f"{value[0]} → {value[1]}"
        shown = ", ".join(_detail_value("", v) for v in value[:_LIST_SHOWN])
        extra = len(value) - _LIST_SHOWN
        return shown + (f" … and {extra} more" if extra > 0 else "")
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_detail_value(k, v)}" for k, v in value.items())
    return str(value)


def _detail_lines(text: str) -> list[tuple[str, str]]:
    """An audit entry's details as (name, value) lines for a definition list."""
    try:
        data = json.loads(text)
    except ValueError:
        return [("details", text)] if text else []
    if not isinstance(data, dict):
        return [("details", _detail_value("", data))]
    return [
        (name.replace("_", " "), _detail_value(name, value))
        for name, value in data.items()
        if value is not None and value != [] and value != {}
    ]


__all__ = ["COOKIE", "PREFIX", "Console", "install_console"]
