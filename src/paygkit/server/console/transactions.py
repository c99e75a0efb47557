"""One transaction per page, as the API key of the signed-in session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from sqlalchemy.orm import Session

from paygkit.server import guard
from paygkit.server.console.errors import csrf_refused
from paygkit.server.context import server_context
from paygkit.server.services import sessions
from paygkit.server.services.common import ServiceError
from paygkit.server.services.sessions import SignedIn

COOKIE = guard.CONSOLE_COOKIE  # checked by the guard before a form is read


@contextmanager
def reading(request: Request) -> Iterator[tuple[Session, SignedIn, dt.datetime]]:
    """A read-only transaction as the signed-in key (UnauthorizedError when not)."""
    context = server_context(request)
    now = context.clock()
    with context.db.read() as session:
        signed = sessions.resolve_session(session, request.cookies.get(COOKIE), now)
        yield session, signed, now
    if signed.stale:
        with context.db.write() as session:
            sessions.touch_session(session, signed.session_id, now)


@contextmanager
def writing(request: Request, csrf: str | None) -> Iterator[tuple[Session, SignedIn, dt.datetime]]:
    """A writing transaction as the signed-in key, once the form's CSRF token is checked."""
    context = server_context(request)
    now = context.clock()
    with context.db.write() as session:
        signed = sessions.resolve_session(session, request.cookies.get(COOKIE), now)
        if not signed.csrf_ok(csrf):
            raise csrf_refused()
        sessions.touch_session(session, signed.session_id, now)
        yield session, signed, now


def current_session(request: Request) -> SignedIn | None:
    """The live session of the request, if any (to show the menu on an error page)."""
    context = server_context(request)
    try:
        with context.db.read() as session:
            return sessions.resolve_session(session, request.cookies.get(COOKIE), context.clock())
    except ServiceError:
        return None
