"""What the HTTP layers share: the database, the keyring and the clock of one server.

The app (`paygkit.server.app`) makes one `ServerContext` and keeps it on
`app.state`; the API's routers and the console's pages find it there through
`server_context(request)`, so neither imports the app nor the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from starlette.requests import Request

from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.services.access import KeyCache

Clock = Callable[[], dt.datetime]
# As many as the clients a process is expected to serve at once; a SQLite writer waits
# for the database's lock on one of them, never on the event loop.
DB_THREADS = 32


@dataclass
class ServerContext:
    db: Database
    keyring: Keyring
    clock: Clock
    # The API keys read valid in the last second, shared by the guard and the handlers.
    keys: KeyCache = field(default_factory=KeyCache)
    # The threads the token issue path's transactions run on (`api.transactions.run_db`).
    db_threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(DB_THREADS, thread_name_prefix="paygkit-db")
    )


def server_context(request: Request) -> ServerContext:
    context = request.app.state.paygkit
    assert isinstance(context, ServerContext)
    return context


__all__ = ["Clock", "ServerContext", "server_context"]
