"""Sign-in and sign-out, and the console's front door."""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import Response

from paygkit.server import guard
from paygkit.server.console.errors import CsrfError
from paygkit.server.console.forms import Csrf, Text
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import COOKIE, reading, writing
from paygkit.server.console.views import (
    PREFIX,
    SIGNIN_COOKIE,
    is_https,
    redirect,
    safe_next,
    sign_in_page,
)
from paygkit.server.context import server_context
from paygkit.server.services import sessions
from paygkit.server.services.common import UnauthorizedError

router = page_router()


@router.get("/")
def home(request: Request) -> Response:
    with reading(request):
        pass
    return redirect(PREFIX + "/devices")


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = PREFIX + "/") -> Response:
    try:
        with reading(request):
            return redirect(safe_next(next))
    except UnauthorizedError:
        pass
    signed_out = request.query_params.get("signed_out") == "1"
    return sign_in_page(
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
        return sign_in_page(
            request,
            status=403,
            error=CsrfError(
                "the sign-in form had expired; nothing was sent",
                "enter your API key again",
            ),
            next_url=next_url,
        )
    context = server_context(request)
    now = context.clock()
    try:
        with context.db.write() as session:
            _signed, token = sessions.start_session(session, api_key.strip() or None, now)
    except UnauthorizedError as error:
        if api_key.strip():
            # Counted per address (guard.Throttle answers 429 past the limit) and audited.
            address = guard.client_address(request.scope)
            request.app.state.paygkit_throttle.failed(address)
            with context.db.write() as session:
                sessions.record_failed_sign_in(
                    session, api_key.strip(), address, error.message, now
                )
        return sign_in_page(request, status=401, error=error, next_url=next_url)
    response = redirect(safe_next(next_url))
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    response.delete_cookie(
        SIGNIN_COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=is_https(request)
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request, csrf: Csrf = "") -> Response:
    with writing(request, csrf) as (session, _signed, now):
        sessions.end_session(session, request.cookies.get(COOKIE), now)
    response = redirect(PREFIX + "/sign-in?signed_out=1")
    response.delete_cookie(
        COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=is_https(request)
    )
    return response
