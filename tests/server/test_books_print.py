"""Token books on paper and on the agent's phone: the printable book and the app's files.

Printing a book is a fetch by staff: its tokens leave the server, so the book
is marked fetched (a never-fetched book gives its counts back when closed, a
printed one must not) and the print is audited.  The agent app (/agent/) is
plain files served with their types and the console's strict CSP.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from paygkit.device.firmware import OutcomeKind
from paygkit.server.models import Role
from paygkit.server.services import access, books
from paygkit.server.services.common import ForbiddenError
from tests.console.conftest import ConsoleClient, hidden_fields, text_of
from tests.server.conftest import KEY, Server, simulated_device, snapshot
from tests.server.test_books import OTHER, SERIAL, created_book, fetch, handout, sync

_TOKEN = re.compile(r'<span class="token book-token">(.*?)</span></li>', re.S)


def console(server: Server, role: str) -> ConsoleClient:
    client = ConsoleClient(server, TestClient(server.client.app, follow_redirects=False))
    client.sign_in(role)
    return client


def printed(client: ConsoleClient, book_id: int) -> Any:
    page = client.get("/console/books")
    assert page.status_code == 200, text_of(page.text)
    fields = hidden_fields(page.text, f"/console/books/{book_id}/print")
    return client.post(f"/console/books/{book_id}/print", fields, csrf=False)


def tokens_on(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>|\s", "", t) for t in _TOKEN.findall(page)]


def test_staff_print_a_book_one_device_a_page_and_it_counts_as_fetched(server: Server) -> None:
    server.add_device()
    server.add_device(OTHER)
    book = created_book(server, serials=[SERIAL, OTHER])
    assert book["fetched_at"] is None
    staff = console(server, "operator")
    listing = text_of(staff.get("/console/books").text)
    assert f"#{book['id']} round 1" in listing
    assert "never" in listing

    page = printed(staff, book["id"])
    assert page.status_code == 200, text_of(page.text)
    assert page.headers["cache-control"] == "no-store"
    assert page.text.count('class="book-device"') == 2
    assert page.text.count('class="tick-box"') == 8  # a box per step, 4 steps x 2 devices
    shown = tokens_on(page.text)
    assert len(shown) == 2 * 4 * 4  # devices x steps x menu values
    assert KEY not in page.text
    text = text_of(page.text)
    # The steps in order: step 1 (count 2) comes first, with its 1, 3, 7 and 30 days.
    assert text.index("1 count 2") < text.index("2 count 4") < text.index("4 count 8")
    # The first page's first step, 7 days, works on the device.
    outcome = simulated_device().enter_token(shown[2])
    assert outcome.kind is OutcomeKind.APPLIED
    assert outcome.units == 7

    after = server.get(f"/books/{book['id']}").json()  # type: ignore[attr-defined]
    assert after["fetched_at"] is not None
    entries = server.get("/audit", params={"action": "book.print"}).json()["entries"]  # type: ignore[attr-defined]
    assert [(e["target"], e["details"]["first"]) for e in entries] == [(f"book:{book['id']}", True)]
    # A printed book's steps may be in customers' hands: closing asks for a decision.
    refused = server.post(f"/books/{book['id']}/close", json={})
    assert refused.status_code == 409  # type: ignore[attr-defined]
    # A second print is audited too, and still shows the same tokens.
    again = printed(staff, book["id"])
    assert tokens_on(again.text) == shown
    entries = server.get("/audit", params={"action": "book.print"}).json()["entries"]  # type: ignore[attr-defined]
    assert [e["details"]["first"] for e in entries] == [True, False]


def test_a_printed_book_shows_synced_and_dead_steps_for_what_they_are(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    fetch(server, book["id"])
    assert sync(server, book["id"], handout(1, 2, days=3)).status_code == 200  # type: ignore[attr-defined]
    page = printed(console(server, "admin"), book["id"])
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Already handed out and synced" in text
    # Step 1 keeps only its token; steps 2 to 4 all their values.
    assert len(tokens_on(page.text)) == 1 + 3 * 4
    assert page.text.count('class="tick-box"') == 3


@pytest.mark.parametrize("role", ["viewer", "technician"])
def test_only_staff_who_make_books_may_print_them(server: Server, role: str) -> None:
    server.add_device()
    book = created_book(server)
    reader = console(server, role)
    listing = reader.get("/console/books")
    assert listing.status_code == 200
    assert f"/console/books/{book['id']}/print" not in listing.text
    before = snapshot(server.db)
    answer = reader.post(f"/console/books/{book['id']}/print")
    assert answer.status_code == 403
    assert "may not create, close or expire token books" in text_of(answer.text)
    assert snapshot(server.db) == before


def test_printing_is_refused_cleanly(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    staff = console(server, "operator")
    staff.get("/console/books")
    before = snapshot(server.db)
    # No CSRF token: refused, nothing marked.
    assert staff.post(f"/console/books/{book['id']}/print", csrf=False).status_code == 403
    assert staff.post("/console/books/999/print").status_code == 404
    assert staff.post("/console/books/0/print").status_code == 422
    assert snapshot(server.db) == before
    assert server.post(f"/books/{book['id']}/close", json={}).status_code == 200  # type: ignore[attr-defined]
    closed = staff.post(f"/console/books/{book['id']}/print")
    assert closed.status_code == 409
    assert "no longer handed out" in text_of(closed.text)
    # The agent's own key may fetch, not print.
    with server.db.write() as session:
        agent = access.local_actor(session, access.DEFAULT_TENANT, server.clock(), Role.AGENT)
        with pytest.raises(ForbiddenError):
            books.print_book(session, agent, server.keyring, book["id"], server.clock())


def test_the_agent_app_is_plain_files_with_their_types_and_a_strict_csp(server: Server) -> None:
    client = server.client
    expected = {
        "/agent/": "text/html",
        "/agent/app.js": "text/javascript",
        "/agent/app.css": "text/css",
        "/agent/sw.js": "text/javascript",
        "/agent/manifest.webmanifest": "application/manifest+json",
        "/agent/icon.svg": "image/svg+xml",
    }
    for path, media in expected.items():
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith(media), path
        assert answer.headers["x-content-type-options"] == "nosniff"
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "'unsafe-inline'" not in csp
    worker = client.get("/agent/sw.js").text
    assert "__SHELL_VERSION__" not in worker
    assert re.search(r'"paygkit-agent-[0-9a-f]{16}"', worker)
    # Only the app's files: no CDN, no other path.
    page = client.get("/agent/").text
    assert "http" not in re.sub(r"<!doctype html>", "", page, flags=re.I).split("<body>")[0]
    assert client.get("/agent/nothing.js").status_code == 404
    assert client.get("/agent/../console/").status_code in (404, 200)
    moved = client.get("/agent", follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == "/agent/"


def test_the_agents_copy_is_never_cached(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    answer = fetch(server, book["id"])
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
