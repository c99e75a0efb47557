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
# PostgreSQL: as many as the clients a process is expected to serve at once.
DB_THREADS = 32
# SQLite writes one transaction at a time, so one thread takes the token and
# payment transactions in their order of arrival.  With 32, the 16 threads waiting
# for the write lock took it in no order: the unlucky waited longest, and p99 at
# 16 clients was 60-65 ms instead of 34-37 (bench_server), for the same throughput.
# Either way a writer waits for the database's lock on a thread, never on the
# event loop.
SQLITE_DB_THREADS = 1


@dataclass
class ServerContext:
    db: Database
    keyring: Keyring
    clock: Clock
    # The API keys read valid in the last second, shared by the guard and the handlers.
    keys: KeyCache = field(default_factory=KeyCache)
    # The threads the token issue path's transactions run on (`api.transactions.run_db`).
    db_threads: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        threads = SQLITE_DB_THREADS if self.db.is_sqlite else DB_THREADS
        self.db_threads = ThreadPoolExecutor(threads, thread_name_prefix="paygkit-db")


def server_context(request: Request) -> ServerContext:
    context = request.app.state.paygkit
    assert isinstance(context, ServerContext)
    return context


__all__ = ["Clock", "ServerContext", "server_context"]
