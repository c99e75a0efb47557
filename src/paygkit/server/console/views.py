"""Rendering: the templates, the headers every page carries, redirects and the shared pages."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from paygkit import __version__
from paygkit.server.console.errors import page_status, page_title
from paygkit.server.console.formatting import TYPE_NAMES, plain, token_groups, when
from paygkit.server.console.transactions import current_session
from paygkit.server.services.common import PERMISSIONS, ServiceError
from paygkit.server.services.sessions import SignedIn

PREFIX = "/console"
SIGNIN_COOKIE = "paygkit_console_signin"
HERE = Path(__file__).resolve().parent

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


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["groups"] = token_groups
    env.filters["plain"] = plain
    env.filters["type_name"] = lambda t: TYPE_NAMES.get(t, t)
    env.globals.update(prefix=PREFIX, version=__version__)
    return env


def render(
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

    page = (
        _templates()
        .get_template(template)
        .render(
            request=request,
            signed=signed,
            me=signed.actor if signed is not None else None,
            csrf=signed.csrf_token if signed is not None else "",
            can=can,
            path=request.url.path,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def error_page(request: Request, error: ServiceError) -> HTMLResponse:
    return render(
        request,
        "error.html",
        signed=current_session(request),
        status=page_status(error),
        error=error,
        title=page_title(error),
    )


def safe_next(value: str | None) -> str:
    """Only a console page of this server as the place to go after sign-in."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and "\\" not in value
        and urlsplit(value).netloc == ""
    ):
        return value
    return PREFIX + "/"


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _is_loopback(request: Request) -> bool:
    host = (request.url.hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def sign_in_page(
    request: Request,
    *,
    status: int = 200,
    error: ServiceError | None = None,
    notice: str | None = None,
    next_url: str = PREFIX + "/",
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "sign_in.html",
        signed=None,
        status=status,
        error=error,
        notice=notice,
        next_url=safe_next(next_url),
        signin_token=token,
        insecure=not is_https(request) and not _is_loopback(request),
        title="Sign in",
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response
