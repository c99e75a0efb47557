"""One transaction per request, as the API key the request presents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from paygkit.server.context import server_context
from paygkit.server.services.common import Actor, UnauthorizedError


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise UnauthorizedError(
            "the Authorization header must be 'Bearer <API key>'", "or send X-API-Key: <key>"
        )
    return request.headers.get("x-api-key")


@contextmanager
def writing(request: Request) -> Iterator[tuple[Session, Actor, dt.datetime]]:
    context = server_context(request)
    with context.db.write() as session:
        actor = context.keys.authenticate(session, presented_key(request))
        yield session, actor, context.clock()


@contextmanager
def reading(request: Request) -> Iterator[tuple[Session, Actor, dt.datetime]]:
    context = server_context(request)
    with context.db.read() as session:
        actor = context.keys.authenticate(session, presented_key(request))
        yield session, actor, context.clock()


async def run_db(work: Callable[[], Response]) -> Response:
    """Database work in a thread, never on the event loop: a writer waiting for
    SQLite's lock must not stall /health and every other request of the process."""
    return await run_in_threadpool(work)
