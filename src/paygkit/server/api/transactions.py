"""One transaction per request, as the API key the request presents."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

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


async def run_db(request: Request, work: Callable[[], Response]) -> Response:
    """Database work in a thread, never on the event loop: a writer waiting for
    SQLite's lock must not stall /health and every other request of the process.

    On the server's own threads through asyncio's executor, not anyio's thread
    pool (`run_in_threadpool`): the token issue path spent a third of its time
    in anyio's hand-over to and from the thread.
    """
    threads = server_context(request).db_threads
    return await asyncio.get_running_loop().run_in_executor(threads, work)
