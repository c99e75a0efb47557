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
# PostgreSQL: a few more than the one core a process's Python code can use, so that
# one transaction's round trips to the database overlap another's work.  More threads
# only fight over the GIL: in 7 alternating pairs of bench_server runs at 16 clients
# over 2 processes, 4 threads against 32 gave 458-780 tokens/s against 413-607, p99
# 38-83 ms against 53-81 ms and 1.75-2.99 ms of CPU a token against 2.22-3.28, 4 ahead
# in five pairs of seven (and one process with 32 threads, 16 clients on it, cost
# 2.9-4.0 ms).  A request finds a free thread again within a transaction's time:
# each of them runs one transaction to its end, and one waiting for a row lock waits
# for a transaction that is running.
DB_THREADS = 4
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
