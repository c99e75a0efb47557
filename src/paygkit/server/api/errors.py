"""Every refusal of the API as JSON, and the one table of HTTP statuses for service errors.

The services raise a kind of error (its class) and say what is wrong and how
to fix it; which status and code each kind gets on the wire is decided here.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from paygkit.server import guard
from paygkit.server.api.transactions import presented_key
from paygkit.server.crypto import MasterKeyError
from paygkit.server.services.common import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
    answer_for_kind,
)

log = logging.getLogger("paygkit.server")

# Status and code of each kind; a kind not listed answers as its nearest listed base.
SERVICE_ERROR_ANSWERS: dict[type[ServiceError], tuple[int, str]] = {
    ServiceError: (400, "bad_request"),
    InvalidError: (422, "invalid"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    ForbiddenError: (403, "forbidden"),
    UnauthorizedError: (401, "unauthorized"),
}


def service_error_answer(error: ServiceError) -> tuple[int, str]:
    """The HTTP status and error code of a service error."""
    return answer_for_kind(SERVICE_ERROR_ANSWERS, error)


def error_body(
    code: str,
    message: str,
    fix: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fix:
        body["fix"] = fix
    if details:
        body["details"] = details
    return {"error": body}


def error_response(
    status: int, code: str, message: str, fix: str | None = None, **details: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, fix, details), status_code=status)


def _presented_key_quietly(request: Request) -> str | None:
    try:
        return presented_key(request)
    except UnauthorizedError:
        return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        if isinstance(error, UnauthorizedError) and _presented_key_quietly(request):
            request.app.state.paygkit_throttle.failed(guard.client_address(request.scope))
        status, code = service_error_answer(error)
        body = error_body(code, error.message, error.fix, error.details)
        # A key pasted into a path or a field is echoed by messages such as "no device
        # with serial ...": hidden, like everywhere else.
        return JSONResponse(guard.redact_json(body), status_code=status)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, error: DataError) -> JSONResponse:
        # Every field is bounded before it reaches the database (services.bounds); this
        # is the net under that, and is logged as the bug it is.
        log.error("a value reached the database unchecked: %s", type(error.orig).__name__)
        return error_response(
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
        return error_response(
            422,
            "invalid",
            f"the request is not valid: {message}",
            "see the OpenAPI document at /docs for the expected fields",
            fields=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        fix = "see /docs for the endpoints" if error.status_code in (404, 405) else None
        return error_response(error.status_code, "http_error", guard.redact(str(error.detail)), fix)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, _error_: IntegrityError) -> JSONResponse:
        return error_response(
            409,
            "conflict",
            "a concurrent request changed the same data first; nothing was changed",
            "retry the request (with the same Idempotency-Key, if any)",
        )

    @app.exception_handler(OperationalError)
    async def database_busy(_request: Request, error: OperationalError) -> JSONResponse:
        log.error("database error: %s", type(error.orig).__name__)
        return error_response(
            503, "database_unavailable", "the database is busy or unreachable", "retry"
        )

    @app.exception_handler(MasterKeyError)
    async def master_key_error(_request: Request, error: MasterKeyError) -> JSONResponse:
        log.error("master key problem: %s", error)
        # 503, not 500: the operator can fix it (restart, restore a key version).
        return error_response(503, "master_key_unavailable", error.public_message, error.fix)
