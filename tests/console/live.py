"""Debian's headless Chromium for the browser tests and scripts/console_screenshots.py,
and a token server in a thread for the screenshots.

Chromium is the system's (/usr/bin/chromium, or PAYGKIT_CHROMIUM), never one
downloaded by `playwright install`, started with a fresh profile.

`live_server` runs uvicorn in a thread of the calling process, on a socket
bound to an ephemeral port before it starts, with a fresh SQLite database and
the clock it is given (the screenshots show fixed dates).  The browser tests
use a real server process instead (`paygkit.server.processes`).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from paygkit.server.app import create_app
from paygkit.server.context import Clock
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.services.common import utc_now

CHROMIUM = os.environ.get("PAYGKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class LiveServer:
    url: str
    db: Database
    keyring: Keyring


@contextmanager
def live_server(directory: Path, clock: Clock = utc_now) -> Iterator[LiveServer]:
    """The token server (API and console) serving a fresh database in `directory`."""
    db = Database(f"sqlite:///{directory / 'paygkit.db'}")
    db.migrate()
    keyring = Keyring.generate()
    app = create_app(db=db, keyring=keyring, clock=clock, migrate=False, webhook_worker=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", db, keyring)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        db.dispose()


def chromium_problem() -> str | None:
    """Why the browser cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def require_chromium() -> None:
    """Skip the calling test when the browser cannot run here, or fail it under
    PAYGKIT_REQUIRE_BROWSER=1 (as make test sets it)."""
    import pytest

    problem = chromium_problem()
    if problem is None:
        return
    if os.environ.get("PAYGKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"PAYGKIT_REQUIRE_BROWSER=1 but the browser tests cannot run: {problem}")
    pytest.skip(f"{problem} (set PAYGKIT_REQUIRE_BROWSER=1 to fail)")


@contextmanager
def chromium(**context_options: Any) -> Iterator[Any]:
    """A Playwright browser context of the system's headless Chromium, with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="paygkit-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            **context_options,
        )
        try:
            yield context
        finally:
            context.close()
