"""Fixtures of the console tests: the token server's test fixtures, and a signed-in browser.

`ConsoleClient` is a TestClient with its own cookie jar, signed in as one role;
it finds the CSRF token in the pages it gets, as a browser sends it back.
The browser tests (test_browser.py) have their own fixtures there.
"""

from __future__ import annotations

import html
import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from paygkit.server.pgtemp import TemporaryPostgres

# The server tests' fixtures: SQLite and the self-started PostgreSQL.
from tests.server.conftest import (  # noqa: F401
    Server,
    database,
    keyring,
    postgres,
    server,
    sqlite_template,
)

_counter = itertools.count()
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def hidden_fields(page: str, after: str | None = None) -> dict[str, str]:
    """The hidden fields of a page (of the first form whose action contains `after`)."""
    if after is not None:
        start = page.index(f'action="{after}')
        page = page[start : page.index("</form>", start)]
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def text_of(page: str) -> str:
    """The page's text without tags, whitespace collapsed (for `in` checks)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@dataclass
class ConsoleClient:
    """One browser: a cookie jar and the CSRF token of the last page seen."""

    server: Server
    client: TestClient
    role: str | None = None
    csrf: str = ""
    pages: list[httpx.Response] = field(default_factory=list)

    def _remember(self, response: httpx.Response) -> httpx.Response:
        if response.headers.get("content-type", "").startswith("text/html"):
            found = re.search(r'name="csrf" value="([^"]+)"', response.text)
            if found:
                self.csrf = found.group(1)
        self.pages.append(response)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._remember(self.client.get(path, **kwargs))

    def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        return self._remember(self.client.post(path, data=form, **kwargs))

    def sign_in(self, role: str, next_url: str = "/console/") -> httpx.Response:
        page = self.get("/console/sign-in")
        token = hidden_fields(page.text)["signin_token"]
        response = self.post(
            "/console/sign-in",
            {"api_key": self.server.keys[role], "signin_token": token, "next_url": next_url},
            csrf=False,
        )
        assert response.status_code == 303, response.text
        self.role = role
        self.get("/console/devices")  # a page with the session's CSRF token
        return response

    def issue(self, serial: str, **form: str) -> httpx.Response:
        """Fill a device page form, confirm, and return the answer to the confirmation."""
        self.get(f"/console/devices/{serial}")
        confirm = self.post(f"/console/devices/{serial}/confirm", form)
        assert confirm.status_code == 200, text_of(confirm.text)
        fields = hidden_fields(confirm.text, f"/console/devices/{serial}/tokens")
        return self.post(f"/console/devices/{serial}/tokens", fields, csrf=False)


@pytest.fixture
def browser(server: Server) -> Callable[..., ConsoleClient]:  # noqa: F811
    """browser(role) -> a ConsoleClient signed in as that role (browser() -> signed out)."""
    made: list[TestClient] = []

    def open_browser(role: str | None = None, *, https: bool = False) -> ConsoleClient:
        client = TestClient(
            server.client.app,
            base_url="https://testserver" if https else "http://testserver",
            follow_redirects=False,
        )
        made.append(client)
        console = ConsoleClient(server, client)
        if role is not None:
            console.sign_in(role)
        return console

    return open_browser


@pytest.fixture(params=["sqlite"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,  # noqa: F811
) -> Iterator[str]:
    """SQLite unless a test asks for both, with BOTH_DATABASES (the pages are the same on both;
    the server tests cover the databases)."""
    if request.param == "sqlite":
        path = tmp_path / "paygkit.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    pg: TemporaryPostgres | None = request.getfixturevalue("postgres")
    if pg is None:
        pytest.skip("PostgreSQL binaries not found (set PAYGKIT_REQUIRE_POSTGRES=1 to fail)")
    name = f"c{os.getpid()}_{next(_counter)}"
    yield pg.create_database(name, template="paygkit_template")
    pg.drop_database(name)


# @BOTH_DATABASES on a test runs it on SQLite and on PostgreSQL.
BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
