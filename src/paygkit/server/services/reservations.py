"""The one rule every issuing path asks: is the device's next count reserved by a token book?

A book (services/books.py) reserves a device's next counts for an agent who
hands them out offline.  While it is open no other path may make a token for
the device, or a count would be handed out twice.  The book is found through
`devices.book_id`, read with the device row the issue path locks anyway, so a
device in no book costs nothing more.  A book past its expiry no longer holds
its devices: the first path to meet such a device lets it go (the book's
counts stay used: online issuing continues after them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from paygkit.server.models import AnyDevice, ApiKey, Book, Device
from paygkit.server.services.common import ConflictError, iso


@dataclass(frozen=True, slots=True)
class Holder:
    """The open book holding a device, as the refusal names it."""

    book_id: int
    book_name: str
    agent: str
    expires_at: dt.datetime


def book_is_open(status: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
    return status == "open" and expires_at > now


def holder(session: Session, device: AnyDevice, now: dt.datetime) -> Holder | None:
    """The open book holding `device` (its row locked by the caller), or None.

    A book that holds it no more (closed, or expired by time) is let go here.
    """
    if device.book_id is None:
        return None
    row = session.execute(
        select(Book.id, Book.name, Book.status, Book.expires_at, ApiKey.name)
        .join(ApiKey, ApiKey.id == Book.agent_key_id)
        .where(Book.id == device.book_id)
    ).first()
    if row is not None and book_is_open(row[2], row[3], now):
        return Holder(row[0], row[1], row[4], row[3])
    release(session, device)
    return None


def release(session: Session, device: AnyDevice) -> None:
    """The device leaves its book: online issuing continues after the book's counts."""
    book_id = device.book_id
    session.execute(
        update(Device)
        .where(Device.id == device.id, Device.book_id == book_id)
        .values(book_id=None)
        .execution_options(synchronize_session=False)
    )
    device.book_id = None


def refusal(device: AnyDevice, held: Holder) -> ConflictError:
    return ConflictError(
        f"device {device.serial} is in token book {held.book_id} ({held.book_name}) of agent "
        f"{held.agent}, open until {iso(held.expires_at)}: its next counts are the agent's, "
        "so no token is issued online for it while the book is open; nothing was issued",
        f"ask the agent to sync the book, then close it (POST /books/{held.book_id}/close or "
        f"'paygkit server book close {held.book_id}'); or wait until it expires",
        {"book_id": held.book_id, "agent": held.agent, "expires_at": iso(held.expires_at)},
    )


def refuse_if_reserved(session: Session, device: AnyDevice, now: dt.datetime) -> None:
    """ConflictError when an open book holds the device (its row locked by the caller)."""
    held = holder(session, device, now)
    if held is not None:
        raise refusal(device, held)
