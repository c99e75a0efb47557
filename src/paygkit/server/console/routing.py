"""The console's routes: every refusal answered as a page, never as the API's JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from paygkit.server.console.errors import ServerFaultError, csrf_refused
from paygkit.server.console.views import PREFIX, error_page, redirect, sign_in_page
from paygkit.server.crypto import MasterKeyError
from paygkit.server.services.common import InvalidError, ServiceError, UnauthorizedError


def _same_origin(request: Request) -> bool:
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc


class ConsoleRoute(APIRoute):
    """Every refusal as a page: sign-in when needed, else the error and its fix."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if request.method == "POST" and not _same_origin(request):
                return error_page(request, csrf_refused())
            try:
                return await handler(request)
            except UnauthorizedError as error:
                if request.method == "GET":
                    target = request.url.path
                    if request.url.query:
                        target += "?" + request.url.query
                    return redirect(f"{PREFIX}/sign-in?next={quote(target, safe='/')}")
                return sign_in_page(request, status=401, error=error)
            except ServiceError as error:
                return error_page(request, error)
            except RequestValidationError:
                return error_page(
                    request,
                    InvalidError(
                        "the form is incomplete or not valid; nothing was changed",
                        "go back and fill in every field",
                    ),
                )
            except MasterKeyError:
                return error_page(
                    request,
                    ServerFaultError(
                        "the server cannot open a stored key; nothing was changed",
                        "the operator must check the server's master key",
                    ),
                )

        return guarded


def page_router() -> APIRouter:
    """A router for a group of console pages, under /console/, kept out of the API's document."""
    return APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
