"""Token books: the list, and the printable book for an agent without a smartphone."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from paygkit.server.console.forms import BeforeId, Csrf, RowIdPath
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import reading, writing
from paygkit.server.console.views import render
from paygkit.server.context import server_context
from paygkit.server.services import books
from paygkit.server.services.common import require

router = page_router()

BOOK_PAGE = 50


@router.get("/books")
def book_list(request: Request, before_id: BeforeId = None) -> Response:
    with reading(request) as (session, signed, now):
        # Staff only, as every console page: an agent's key reads nothing here.
        require(signed.actor, "read")
        found = books.list_books(session, signed.actor, now, before_id=before_id, limit=BOOK_PAGE)
        return render(
            request,
            "books.html",
            signed=signed,
            title="Token books",
            books=[books.book_view(session, b, now) for b in found],
            older=found[-1].id if len(found) == BOOK_PAGE else None,
        )


@router.post("/books/{book_id}/print")
def print_book(request: Request, book_id: RowIdPath, csrf: Csrf = "") -> Response:
    """The book's tokens, one device per page; made by a POST because it marks the book
    fetched (its counts then stay used, its closing asks for a decision) and is audited."""
    keyring = server_context(request).keyring
    with writing(request, csrf) as (session, signed, now):
        copy = books.print_book(session, signed.actor, keyring, book_id, now)
        return render(
            request,
            "book_print.html",
            signed=signed,
            title=f"Token book {copy['book']['id']}",
            book=copy["book"],
            devices=copy["devices"],
        )
