"""Token books: made and closed by staff, fetched and synced by their agent."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response

from paygkit.server.api.params import BeforeId, IdPath, Limit
from paygkit.server.api.schemas import BookClose, BookCreate, BookSync
from paygkit.server.api.transactions import reading, writing
from paygkit.server.context import server_context
from paygkit.server.services import books
from paygkit.server.services.common import parse_time

router = APIRouter(tags=["books"])


@router.post("/books", status_code=201)
def create_book(request: Request, body: BookCreate) -> dict[str, Any]:
    """Reserve the next `steps` counts of each device for an agent (admin, operator).

    Online issuing for those devices is refused until the book is closed or expires.
    """
    data = books.BookInput(
        agent_key_id=body.agent_key_id,
        serials=body.serials,
        steps=body.steps,
        menu=body.menu,
        value_cap_days=body.value_cap_days,
        expires_at=parse_time(body.expires_at, "expires_at"),
        name=body.name,
    )
    with writing(request) as (session, actor, now):
        book = books.create_book(session, actor, data, now)
        return books.book_view(session, book, now, detail=True)


@router.get("/books")
def list_books(
    request: Request,
    status: Literal["open", "expired", "closed"] | None = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Books, newest first; an agent sees their own only."""
    with reading(request) as (session, actor, now):
        found = books.list_books(
            session, actor, now, status=status, before_id=before_id, limit=limit
        )
        return {
            "books": [books.book_view(session, b, now) for b in found],
            "next_before_id": found[-1].id if len(found) == limit else None,
        }


@router.post("/books/expire")
def expire_books(request: Request) -> dict[str, Any]:
    """Close every book past its expiry (admin, operator); their counts stay used."""
    with writing(request) as (session, actor, now):
        return {"expired": books.expire_books(session, actor, now)}


@router.get("/books/{book_id}")
def get_book(request: Request, book_id: IdPath) -> dict[str, Any]:
    """A book, its devices' steps and its hand-outs (never its tokens' other values)."""
    with reading(request) as (session, actor, now):
        return books.get_book(session, actor, book_id, now)


@router.get("/books/{book_id}/tokens")
def fetch_book(request: Request, response: Response, book_id: IdPath) -> dict[str, Any]:
    """The agent's copy: serials, counts, one token per menu value; no key. Audited."""
    # The phone keeps the tokens only under its PIN: no cache may keep them in clear.
    response.headers["Cache-Control"] = "no-store"
    with writing(request) as (session, actor, now):
        return books.fetch_book(session, actor, server_context(request).keyring, book_id, now)


@router.post("/books/{book_id}/sync")
def sync_book(request: Request, book_id: IdPath, body: BookSync) -> dict[str, Any]:
    """Record hand-outs; each `id` once, so a retry, a partial upload or a second phone
    sending the same hand-out records nothing new."""
    items = [books.handout_from_wire(h.model_dump()) for h in body.handouts]
    with writing(request) as (session, actor, now):
        return books.sync_book(session, actor, server_context(request).keyring, book_id, items, now)


@router.post("/books/{book_id}/close")
def close_book(request: Request, book_id: IdPath, body: BookClose) -> dict[str, Any]:
    """End a book (admin, operator); steps possibly handed out need a decision. Audited."""
    with writing(request) as (session, actor, now):
        return books.close_book(session, actor, book_id, body.decision, body.reason, now)
