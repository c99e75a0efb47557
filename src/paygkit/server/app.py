"""The token server's application: the API's routers, the console, the guard, one context.

The app composes; the routers never import it.  They find the database, keyring
and clock on `app.state` (`paygkit.server.context`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from paygkit import __version__
from paygkit.server import agent, api, console, guard
from paygkit.server.config import Settings
from paygkit.server.context import Clock, ServerContext
from paygkit.server.crypto import Keyring, load_keyring
from paygkit.server.db import Database
from paygkit.server.services.common import utc_now
from paygkit.server.services.keys import verify_keyring
from paygkit.server.webhook_delivery import Dispatcher


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    keyring: Keyring | None = None,
    clock: Clock = utc_now,
    migrate: bool = True,
    webhook_worker: bool | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    database = db or Database(settings.database_url)
    ring = keyring or load_keyring(settings.master_key_file, settings.master_key_hex)
    context = ServerContext(database, ring, clock)
    run_worker = settings.webhook_worker if webhook_worker is None else webhook_worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dispatcher = None
        if run_worker:
            dispatcher = Dispatcher(database, ring, clock=clock)
            dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                dispatcher.stop()
            context.db_threads.shutdown(wait=True)

    if migrate:
        database.migrate()
    # Refuse to start with a keyring that is not this database's (services/keys.py).
    verify_keyring(database, ring, clock())
    app = FastAPI(
        title="paygkit token server",
        version=__version__,
        description=(
            "Devices, OpenPAYGO tokens, payments, count reports, webhooks, API keys and "
            "an audit log. Authenticate with 'Authorization: Bearer <API key>'."
        ),
        lifespan=lifespan,
    )
    app.state.paygkit = context
    # Failed keys and sign-ins per client address (per process; see guard.Throttle).
    app.state.paygkit_throttle = guard.Throttle()
    api.install_error_handlers(app)
    for router in api.ROUTERS:
        app.include_router(router)
    app.include_router(console.router)
    app.include_router(agent.router)
    app.mount(console.STATIC_PATH, console.static_files(), name=console.STATIC_NAME)
    # Outermost: limits, throttling and authentication before any body is read.
    app.add_middleware(
        guard.RequestGuard,
        db=database,
        throttle=app.state.paygkit_throttle,
        keys=context.keys,
        clock=clock,
    )
    guard.install_access_log_redaction()
    return app


def create_app_from_env() -> FastAPI:
    """The app for `uvicorn --factory` (settings from PAYGKIT_* environment variables)."""
    return create_app(Settings.from_env())


__all__ = ["create_app", "create_app_from_env"]
