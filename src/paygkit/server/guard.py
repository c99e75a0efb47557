"""What stands before the handlers: body limits, authentication first, throttling, redaction.

`RequestGuard` (pure ASGI middleware) answers, before any handler runs and
before a byte of the body is read:

- 429 with Retry-After to a client address that sent too many wrong API keys
  or console sign-ins lately (`Throttle`, a moving window per address);
- 413 when the declared body is over the route's limit (the device import's
  is the largest), and again when a body without a declared length grows
  past it while being read;
- 401 to a write on the API (POST, PUT, PATCH, DELETE) whose API key is
  missing or wrong: an unauthenticated body is never read.  The handler still
  checks the key again inside its own transaction (a key revoked meanwhile).

`redact` hides keys pasted where they do not belong (a key in a URL path is
echoed by a 404 and the access log); `AccessLogRedactor` applies it to
uvicorn's access log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser

from paygkit.server.db import Database
from paygkit.server.services import access, sessions
from paygkit.server.services.common import ServiceError
from paygkit.token import hide_keys as _redact_hex

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The API's own keys (pgk_ and 43 base64url characters); hex keys are the device
# protocol's pattern, shared through its `redact`.
_API_KEY = re.compile(r"pgk_[A-Za-z0-9_\-]{8,}")

# Bodies: the device list may be large; a console upload is capped by its page; the
# import confirmation carries the sealed, compressed file; anything else is small JSON.
DEFAULT_BODY_LIMIT = 64 * 1024
# The largest device list the console's import page takes (bigger ones: the CLI or the API).
CONSOLE_UPLOAD_BYTES = 5 * 1024 * 1024
# The file and the rest of its form; the confirmation's sealed copy may be twice the file
# (base64 of a compressed file that did not shrink).
CONSOLE_UPLOAD_LIMIT = CONSOLE_UPLOAD_BYTES + DEFAULT_BODY_LIMIT
CONSOLE_CONFIRM_LIMIT = 2 * CONSOLE_UPLOAD_BYTES + DEFAULT_BODY_LIMIT
# Failed API keys and console sign-ins per client address.
FAILED_AUTH_LIMIT = "20/5 minutes"

# The console's session cookie: the console's sign-in page sets it, the guard checks
# it before a console form's body is read.
CONSOLE_COOKIE = "paygkit_console"
# Reachable without an API key (everything under /console has its own sessions).
_PUBLIC = ("/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = logging.getLogger("paygkit.server")


def redact(text: str) -> str:
    """`text` with anything shaped like a key (hex, or pgk_...) blanked out."""
    return _API_KEY.sub("<hidden>", _redact_hex(text))


def redact_json(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    return value


class AccessLogRedactor(logging.Filter):
    """Redact the request line of uvicorn's access log (its args: client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_access_log_redaction() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
        logger.addFilter(AccessLogRedactor())


class Throttle:
    """Failed authentications per client address, in a moving window (in memory, per process).

    Once an address is over the limit, every request of it that carries a key
    (or a sign-in) is answered 429 until the oldest failure leaves the window:
    guessing keys costs a wait, a right key from there waits too.
    """

    def __init__(self, limit: str = FAILED_AUTH_LIMIT) -> None:
        item: RateLimitItem = parse(limit)
        self.item = item
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, address: str) -> int | None:
        """Seconds to wait when `address` is blocked, else None."""
        if self.limiter.test(self.item, address):
            return None
        stats = self.limiter.get_window_stats(self.item, address)
        return max(1, int(stats.reset_time - time.time()) + 1)

    def failed(self, address: str) -> None:
        self.limiter.hit(self.item, address)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def body_limit(method: str, path: str) -> int:
    if path == "/devices/import":
        from paygkit.server.services.importer import MAX_IMPORT_BYTES

        return MAX_IMPORT_BYTES
    if path == "/console/import":
        return CONSOLE_UPLOAD_LIMIT
    if path == "/console/import/confirm":
        return CONSOLE_CONFIRM_LIMIT
    return DEFAULT_BODY_LIMIT


def _presented(headers: dict[str, str]) -> str | None:
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    return headers.get("x-api-key")


async def _send_json(send: Send, status: int, body: dict[str, Any], **headers: str) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def _error(code: str, message: str, fix: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "fix": fix}
    if details:
        body["details"] = details
    return {"error": body}


class _TooLargeError(Exception):
    pass


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        db: Database,
        throttle: Throttle,
        keys: access.KeyCache,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.app = app
        self.db = db
        self.throttle = throttle
        # Shared with the handlers: a key read valid here is not read again there.
        self.keys = keys
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        address = client_address(scope)
        console = path == "/console" or path.startswith("/console/")
        presented = _presented(headers)
        signing_in = console and method == "POST" and path == "/console/sign-in"
        if presented is not None or signing_in:
            wait = self.throttle.retry_after(address)
            if wait is not None:
                await _send_json(
                    send,
                    429,
                    _error(
                        "too_many_failures",
                        "too many wrong API keys or sign-ins from this address; nothing was read",
                        f"check the key, and try again in {wait} s",
                        retry_after=wait,
                    ),
                    retry_after=str(wait),
                )
                return
        if method not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = body_limit(method, path)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = limit + 1
            if size > limit:
                await _send_json(send, 413, _too_large(limit))
                return
        uploading = console and limit > DEFAULT_BODY_LIMIT
        if uploading and not await self._signed_in(headers):
            # A device list uploaded by someone not signed in: to the sign-in page,
            # unread.  (Small console forms are read and answered by their page,
            # which explains the refusal.)
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", b"/console/sign-in"),
                        (b"cache-control", b"no-store"),
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        refusal = None if console or path in _PUBLIC else await self._refusal(presented)
        if refusal is not None:
            if presented:
                self.throttle.failed(address)
            await _send_json(
                send,
                401,
                _error(
                    "unauthorized",
                    refusal.message,
                    f"{refusal.fix or 'check the key'}; nothing was read or changed",
                ),
            )
            return
        try:
            body = await _read_body(receive, limit)
        except _TooLargeError:
            await _send_json(send, 413, _too_large(limit))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _signed_in(self, headers: dict[str, str]) -> bool:
        token = cookie_parser(headers.get("cookie", "")).get(CONSOLE_COOKIE)
        if not token:
            return False

        def check() -> bool:
            try:
                with self.db.read() as session:
                    sessions.resolve_session(session, token, self.clock())
            except ServiceError:
                return False
            return True

        return await run_in_threadpool(check)

    async def _refusal(self, presented: str | None) -> ServiceError | None:
        """Why the presented key may not act (unknown, revoked, none), or None."""
        if presented and self.keys.cached(presented) is not None:
            return None

        def check() -> ServiceError | None:
            try:
                with self.db.read() as session:
                    self.keys.authenticate(session, presented)
            except ServiceError as refused:
                return refused
            return None

        return await run_in_threadpool(check)


def _too_large(limit: int) -> dict[str, Any]:
    shown = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return _error(
        "too_large",
        f"the request body is over {shown}, this endpoint's limit; nothing was read or changed",
        "send less: split a device list into several files",
        limit_bytes=limit,
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
