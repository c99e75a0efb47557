"""Token books: tokens made ahead of time for one agent, handed out offline, synced later.

A book reserves, for each of its devices, the next `steps` Add Time counts
(first_count, first_count + 2, ...).  At each count the agent holds one token
per value of the book's menu and hands out one of them, in order; the others
at that count can never be entered once it is (the device uses a count once).
docs/agents.md tells the distributor how it works; the rules, in one place:

- Reserving: the device's last count issued moves to the book's last count at
  once, so no path ever makes a token at a reserved count again, and while the
  book is open every issuing path refuses the device (services/reservations.py).
- Bounds: `steps` is at most half the unordered window (every step of a book
  works in any order of entry), the last count stays inside the device's decode
  window from its last reported count, and the book's value (devices x steps x
  the largest menu value, in days) is at most the cap the admin sets.
- Syncing: each hand-out is recorded once per client-side id (a retry, a partial
  upload or a second phone replays it); the first hand-out at a count is the
  device's token there (a token record and an applied payment), a later one at
  the same count is kept with its money as an orphan payment for a person.
- Closing: once the agent fetched the book, steps not synced may be in a
  customer's hands: closing then needs a decision (void or handed_out), audited.
  Counts are never given back after a fetch (printing the book for an agent without
  a phone is one); a book never fetched gives them back.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring
from paygkit.server.models import (
    ApiKey,
    Book,
    BookDevice,
    BookHandout,
    Device,
    IssuedToken,
    Payment,
    Role,
    Tenant,
    TokenRecord,
)
from paygkit.server.services import bounds, reservations
from paygkit.server.services.common import (
    Actor,
    ConflictError,
    InvalidError,
    NotFoundError,
    audit,
    iso,
    parse_time,
    require,
)
from paygkit.server.services.devices import (
    check_currency,
    device_params,
    find_device,
    parse_money,
    tariff_for,
)
from paygkit.server.services.payments import BOOK_PROVIDER
from paygkit.server.services.tokens import _apply_to_state
from paygkit.server.services.webhooks import WebhookTarget, enqueue_event, enqueue_token
from paygkit.token import (
    MAX_ACTIVATION_UNITS,
    DecodeWindows,
    GeneratedToken,
    TokenRequest,
    TokenType,
    days_to_units,
    generate,
    generate_batch,
    group_digits,
    next_count,
)

UNORDERED_WINDOW = DecodeWindows().unordered
# Every step of a book lies within the unordered window of its last step, so the
# customer may enter a device's book tokens in any order and each still works.
MAX_STEPS = UNORDERED_WINDOW // 2
MAX_MENU_VALUES = 6
MAX_BOOK_DEVICES = 500
MAX_BOOK_DAYS = 92
# Per request: the request body is small JSON (guard.DEFAULT_BODY_LIMIT); the app
# uploads more in several syncs, which are idempotent.
MAX_SYNC_HANDOUTS = 100
BOOK_NAME_LENGTH = bounds.column_length(Book.name)
CLIENT_ID_LENGTH = bounds.column_length(BookHandout.client_id)
REFERENCE_LENGTH = bounds.column_length(BookHandout.reference)
# A phone's clock a little ahead of the server's is not worth a flag.
CLOCK_SLACK = dt.timedelta(minutes=5)


class CloseDecision(enum.StrEnum):
    # The steps not synced were not handed out: their money is not expected.
    VOID = "void"
    # They may have been handed out: the book still takes their sync after closing.
    HANDED_OUT = "handed_out"


class HandoutStatus(enum.StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class BookInput:
    agent_key_id: int
    serials: Sequence[str]
    steps: int
    menu: Sequence[Decimal]
    value_cap_days: Decimal
    expires_at: dt.datetime
    name: str = ""


@dataclass(frozen=True, slots=True)
class HandoutInput:
    """One step handed out, as the agent's phone recorded it."""

    client_id: str
    serial: str
    count: int
    days: Decimal
    amount: Decimal
    currency: str
    handed_out_at: dt.datetime
    reference: str | None = None


def handout_from_wire(fields: Mapping[str, Any]) -> HandoutInput:
    """A hand-out in the form the API's sync takes (`id`, `serial`, `count`, `days`,
    `amount`, `currency`, `handed_out_at`, `reference`), from the API's body or from a file
    for `paygkit server book sync`.  Raises KeyError, TypeError or ValueError when a field
    is missing or of another kind; check_handout checks the values."""
    reference = fields.get("reference")
    return HandoutInput(
        client_id=str(fields["id"]),
        serial=str(fields["serial"]),
        count=int(fields["count"]),
        days=Decimal(str(fields["days"])),
        amount=Decimal(str(fields["amount"])),
        currency=str(fields["currency"]),
        handed_out_at=parse_time(str(fields["handed_out_at"]), "handed_out_at"),
        reference=None if reference is None else str(reference),
    )


def days_text(days: Decimal) -> str:
    """One text per amount of days ("7", "0.5"): the menu's and the hand-outs' form."""
    return format(days.normalize(), "f")


def _menu(book: Book) -> list[str]:
    menu = json.loads(book.menu)
    assert isinstance(menu, list)
    return [str(v) for v in menu]


def step_counts(link: BookDevice) -> range:
    return range(link.first_count, link.last_count + 1, 2)


def effective_status(book: Book, now: dt.datetime) -> str:
    if book.status == "open" and book.expires_at <= now:
        return "expired"
    return book.status


def is_dead(count: int, device: Device) -> bool:
    """A token at `count` can no longer be entered: the device's reported count is more
    than the unordered window above it (paygkit.token.decode)."""
    return count <= device.last_count_reported - UNORDERED_WINDOW


# -- creating ---------------------------------------------------------------------------


def _check_input(data: BookInput, now: dt.datetime) -> tuple[str, list[Decimal]]:
    name = bounds.check_text(data.name.strip(), "the book's name", max_length=BOOK_NAME_LENGTH)
    if not 1 <= data.steps <= MAX_STEPS:
        raise InvalidError(
            f"steps must be 1 to {MAX_STEPS}, got {data.steps}",
            f"a device's book tokens must all lie within the {UNORDERED_WINDOW} counts a "
            "device takes in any order; make another book once this one is synced",
        )
    if not 1 <= len(data.menu) <= MAX_MENU_VALUES:
        raise InvalidError(
            f"the menu must have 1 to {MAX_MENU_VALUES} values, got {len(data.menu)}",
            "e.g. 1, 3, 7 and 30 days",
        )
    menu = []
    for value in data.menu:
        bounds.check_money(value, "a menu value")
        if value <= 0 or value > bounds.MAX_DAYS:
            raise InvalidError(f"a menu value must be above 0 and at most {bounds.MAX_DAYS} days")
        menu.append(Decimal(days_text(value)))
    if len(set(menu)) != len(menu):
        raise InvalidError("the menu lists a value twice", "give each number of days once")
    bounds.check_money(data.value_cap_days, "the value cap")
    if data.value_cap_days <= 0:
        raise InvalidError("the value cap must be above 0 days")
    bounds.check_time(data.expires_at, "expires_at")
    if data.expires_at <= now or data.expires_at > now + dt.timedelta(days=MAX_BOOK_DAYS):
        raise InvalidError(
            f"a book expires after now and within {MAX_BOOK_DAYS} days",
            "e.g. the end of the agent's round",
        )
    if not 1 <= len(data.serials) <= MAX_BOOK_DEVICES:
        raise InvalidError(f"a book holds 1 to {MAX_BOOK_DEVICES} devices, got {len(data.serials)}")
    for serial in data.serials:
        bounds.check_text(serial, "a serial", min_length=1, max_length=bounds.SERIAL_LENGTH)
    if len(set(data.serials)) != len(data.serials):
        raise InvalidError("a serial is listed twice", "list each device once")
    return name, sorted(menu)


def _agent_key(session: Session, actor: Actor, key_id: int) -> ApiKey:
    bounds.check_id(key_id, "the agent's key id")
    key = session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == actor.tenant_id)
    )
    if key is None or key.role != Role.AGENT.value:
        raise NotFoundError(
            f"no agent key with id {key_id}",
            "create one with 'paygkit server api-key create --role agent'",
        )
    if key.revoked_at is not None:
        raise ConflictError(f"the agent key {key_id} is revoked", "give the agent a new key")
    return key


def create_book(session: Session, actor: Actor, data: BookInput, now: dt.datetime) -> Book:
    """Reserve the devices' next counts for the agent; every check before any change."""
    require(actor, "books.manage")
    name, menu = _check_input(data, now)
    agent = _agent_key(session, actor, data.agent_key_id)
    value = len(data.serials) * data.steps * max(menu)
    if value > data.value_cap_days:
        raise InvalidError(
            f"this book is worth up to {days_text(value)} days ({len(data.serials)} device(s) "
            f"x {data.steps} step(s) x {days_text(max(menu))} days), above its cap of "
            f"{days_text(data.value_cap_days)} days",
            "fewer devices or steps, a smaller largest value, or a higher cap",
            {"value_days": days_text(value), "value_cap_days": days_text(data.value_cap_days)},
        )
    # Locked in one order (by serial), so two books made at once cannot deadlock.
    found = [(s, find_device(session, actor.tenant_id, s, lock=True)) for s in sorted(data.serials)]
    missing = [s for s, d in found if d is None]
    if missing:
        raise NotFoundError(
            f"no device with serial {', '.join(missing[:10])}"[:300],
            "check the serials, or import the device list",
            {"missing": missing[:100]},
        )
    devices = [d for _, d in found if d is not None]
    problems: list[dict[str, Any]] = []
    unit_problems: list[str] = []
    plans: list[tuple[Device, int, int]] = []
    for device in devices:
        for days in menu:
            units = days_to_units(days, device.time_divider)
            if not 1 <= units <= MAX_ACTIVATION_UNITS:
                unit_problems.append(
                    f"{days_text(days)} days are {units} units on {device.serial} "
                    f"({device.time_divider} a day)"
                )
        first = next_count(device.last_count_issued, TokenType.ADD_TIME)
        last = first + 2 * (data.steps - 1)
        held = reservations.holder(session, device, now)
        if held is not None:
            problems.append(
                {
                    "serial": device.serial,
                    "problem": f"in book {held.book_id} of agent {held.agent} until "
                    f"{iso(held.expires_at)}",
                }
            )
        elif last - device.last_count_reported > device.decode_window:
            problems.append(
                {
                    "serial": device.serial,
                    "problem": f"its last reported count is {device.last_count_reported} and "
                    f"the book would reach count {last}, beyond its decode window of "
                    f"{device.decode_window}: report the device's count first, or use fewer "
                    "steps",
                }
            )
        else:
            bounds.check_count(last, "the book's last count")
            plans.append((device, first, last))
    if unit_problems:
        raise InvalidError(
            "a menu value is not 1 to "
            f"{MAX_ACTIVATION_UNITS} time units on every device: " + "; ".join(unit_problems[:5]),
            "choose values every device of the book can take in one token",
        )
    if problems:
        raise ConflictError(
            f"{len(problems)} device(s) cannot go on this book: "
            + "; ".join(f"{p['serial']}: {p['problem']}" for p in problems[:5]),
            "leave them out, or settle what holds them first",
            {"problems": problems[:100]},
        )
    book = Book(
        tenant_id=actor.tenant_id,
        agent_key_id=agent.id,
        name=name,
        menu=json.dumps([days_text(v) for v in menu]),
        steps=data.steps,
        value_cap_days=days_text(data.value_cap_days),
        value_days=days_text(value),
        status="open",
        created_by=actor.label,
        created_at=now,
        expires_at=data.expires_at,
    )
    session.add(book)
    session.flush()
    for device, first, last in plans:
        session.add(
            BookDevice(
                book_id=book.id,
                device_id=device.id,
                count_before=device.last_count_issued,
                first_count=first,
                last_count=last,
            )
        )
        # Reserved now: a count report up to `last` is a genuine device's, and nothing
        # will make a token at these counts again.
        device.last_count_issued = last
        device.book_id = book.id
        device.updated_at = now
    session.flush()
    details = {
        "agent_key_id": agent.id,
        "agent": agent.name,
        "devices": len(plans),
        "steps": data.steps,
        "menu": [days_text(v) for v in menu],
        "value_days": book.value_days,
        "value_cap_days": book.value_cap_days,
        "expires_at": iso(book.expires_at),
    }
    audit(session, actor, "book.create", f"book:{book.id}", now, **details)
    enqueue_event(
        session,
        actor.tenant_id,
        "book.created",
        {"book_id": book.id, "serials": [d.serial for d, _, _ in plans], **details},
        now,
    )
    return book


# -- reading ----------------------------------------------------------------------------


def _book_for(session: Session, actor: Actor, book_id: int, *, lock: bool = False) -> Book:
    """The book, if the actor may see it: an agent sees their own books only."""
    require(actor, "books.read")
    bounds.check_id(book_id, "the book id")
    query = select(Book).where(Book.id == book_id, Book.tenant_id == actor.tenant_id)
    if lock:
        query = query.with_for_update()
    book = session.scalar(query)
    if book is None or (actor.role is Role.AGENT and book.agent_key_id != actor.api_key_id):
        # Another agent's book is not said to exist.
        raise NotFoundError(f"no token book with id {book_id}", "see the list of books")
    return book


def _links(session: Session, book: Book, *, lock: bool = False) -> list[tuple[BookDevice, Device]]:
    """The book's devices by serial; with `lock`, their rows locked (read afresh) in that
    order, after the book's: the one lock order of syncing and closing."""
    query = (
        select(BookDevice, Device)
        .join(Device, Device.id == BookDevice.device_id)
        .where(BookDevice.book_id == book.id)
        .order_by(Device.serial)
    )
    if lock:
        query = query.with_for_update(of=Device).execution_options(populate_existing=True)
    return [(row[0], row[1]) for row in session.execute(query)]


def _handouts(session: Session, book: Book) -> list[BookHandout]:
    return list(
        session.scalars(
            select(BookHandout).where(BookHandout.book_id == book.id).order_by(BookHandout.id)
        )
    )


def handout_view(handout: BookHandout, serial: str) -> dict[str, Any]:
    return {
        "id": handout.client_id,
        "serial": serial,
        "count": handout.count,
        "days": handout.days,
        "units": handout.units,
        "token": group_digits(handout.token),
        "amount": handout.amount,
        "currency": handout.currency,
        "reference": handout.reference,
        "handed_out_at": iso(handout.handed_out_at),
        "status": handout.status,
        "flags": json.loads(handout.flags),
        "note": handout.note,
        "token_id": handout.token_id,
        "payment_id": handout.payment_id,
        "synced_by": handout.synced_by,
        "synced_at": iso(handout.synced_at),
    }


def _recorded_at(handouts: Sequence[BookHandout]) -> dict[tuple[int, int], BookHandout]:
    return {(h.device_id, h.count): h for h in handouts if h.status == HandoutStatus.RECORDED.value}


def _possibly_handed_out(
    book: Book, links: Sequence[tuple[BookDevice, Device]], handouts: Sequence[BookHandout]
) -> list[dict[str, Any]]:
    """Steps the agent may have handed out without syncing them: none before a fetch."""
    if book.fetched_at is None:
        return []
    recorded = _recorded_at(handouts)
    found = []
    for link, device in links:
        counts = [c for c in step_counts(link) if (device.id, c) not in recorded]
        if counts:
            found.append({"serial": device.serial, "counts": counts})
    return found


def book_view(
    session: Session, book: Book, now: dt.datetime, *, detail: bool = False
) -> dict[str, Any]:
    agent = session.get_one(ApiKey, book.agent_key_id)
    links = _links(session, book)
    handouts = _handouts(session, book)
    statuses = [h.status for h in handouts]
    view: dict[str, Any] = {
        "id": book.id,
        "name": book.name,
        "agent": {"key_id": agent.id, "name": agent.name},
        "status": effective_status(book, now),
        "menu": _menu(book),
        "steps": book.steps,
        "value_days": book.value_days,
        "value_cap_days": book.value_cap_days,
        "devices": len(links),
        "created_by": book.created_by,
        "created_at": iso(book.created_at),
        "expires_at": iso(book.expires_at),
        "fetched_at": iso(book.fetched_at),
        "closed_at": iso(book.closed_at),
        "closed_by": book.closed_by,
        "close_decision": book.close_decision,
        "close_reason": book.close_reason,
        "handouts": {s.value: statuses.count(s.value) for s in HandoutStatus},
        "flagged": sum(1 for h in handouts if json.loads(h.flags)),
    }
    if not detail:
        return view
    serials = {device.id: device.serial for _, device in links}
    recorded = _recorded_at(handouts)
    view["device_steps"] = [
        {
            "serial": device.serial,
            "account": device.account,
            "count_before": link.count_before,
            "last_count_reported": device.last_count_reported,
            "steps": [
                {
                    "step": number,
                    "count": count,
                    "handed_out": (device.id, count) in recorded,
                    "days": recorded[(device.id, count)].days
                    if (device.id, count) in recorded
                    else None,
                    "dead": is_dead(count, device),
                }
                for number, count in enumerate(step_counts(link), 1)
            ],
        }
        for link, device in links
    ]
    view["handout_list"] = [handout_view(h, serials[h.device_id]) for h in handouts]
    view["possibly_handed_out"] = (
        _possibly_handed_out(book, links, handouts) if book.status == "open" else []
    )
    return view


def list_books(
    session: Session,
    actor: Actor,
    now: dt.datetime,
    *,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Book]:
    """The tenant's books, newest first; an agent's own books only."""
    require(actor, "books.read")
    query = select(Book).where(Book.tenant_id == actor.tenant_id)
    if actor.role is Role.AGENT:
        query = query.where(Book.agent_key_id == actor.api_key_id)
    if status == "open":
        query = query.where(Book.status == "open", Book.expires_at > now)
    elif status == "expired":
        query = query.where(
            or_(Book.status == "expired", (Book.status == "open") & (Book.expires_at <= now))
        )
    elif status == "closed":
        query = query.where(Book.status == "closed")
    elif status is not None:
        raise InvalidError(f"unknown book status {status!r}"[:100], "use open, expired or closed")
    if before_id is not None:
        query = query.where(Book.id < bounds.check_id(before_id, "before_id"))
    return list(session.scalars(query.order_by(Book.id.desc()).limit(limit)))


def get_book(session: Session, actor: Actor, book_id: int, now: dt.datetime) -> dict[str, Any]:
    return book_view(session, _book_for(session, actor, book_id), now, detail=True)


# -- the agent's copy -------------------------------------------------------------------


def fetch_book(
    session: Session, actor: Actor, keyring: Keyring, book_id: int, now: dt.datetime
) -> dict[str, Any]:
    """What the agent's phone keeps: serials, counts and token digits per value.

    Never a key, a starting code or anything of the master key: the tokens are made
    here.  A step handed out keeps only its own token (to show the customer again);
    a dead step keeps none.  Audited at every fetch.
    """
    require(actor, "books.fetch")
    return _hand_over(session, actor, keyring, book_id, now, "book.fetch")


def print_book(
    session: Session, actor: Actor, keyring: Keyring, book_id: int, now: dt.datetime
) -> dict[str, Any]:
    """The book's tokens for a paper book, printed by staff for an agent without a phone.

    The same tokens as the agent's fetch.  Printing is a fetch: the tokens leave the
    server, so the book is marked fetched (its counts are never given back, closing
    it asks for a decision) and the print is audited (`book.print`).
    """
    require(actor, "books.manage")
    return _hand_over(session, actor, keyring, book_id, now, "book.print")


def _hand_over(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    book_id: int,
    now: dt.datetime,
    action: str,
) -> dict[str, Any]:
    """The book's tokens as they leave the server (a fetch or a print): the book is marked
    fetched, which its close rule depends on, and the hand-over is audited as `action`."""
    book = _book_for(session, actor, book_id, lock=True)
    copy = _tokens_out(session, keyring, book, now)
    first = _mark_fetched(book, now)
    copy["book"]["fetched_at"] = iso(book.fetched_at)
    audit(session, actor, action, f"book:{book.id}", now, first=first)
    return copy


def _mark_fetched(book: Book, now: dt.datetime) -> bool:
    """Remember the first time the book's tokens left the server; True if it is now."""
    if book.fetched_at is not None:
        return False
    book.fetched_at = now
    return True


def _tokens_out(session: Session, keyring: Keyring, book: Book, now: dt.datetime) -> dict[str, Any]:
    """The tokens of an open book, made afresh: the same digits every time."""
    status = effective_status(book, now)
    if status != "open":
        raise ConflictError(
            f"token book {book.id} is {status}: its tokens are no longer handed out",
            "sync what was handed out; ask for a new book",
        )
    menu = _menu(book)
    links = _links(session, book)
    recorded = _recorded_at(_handouts(session, book))
    plan: list[tuple[int, int, str, int]] = []  # (device index, count, days, units)
    requests = []
    devices_out: list[dict[str, Any]] = []
    for index, (link, device) in enumerate(links):
        params = device_params(device, keyring)
        steps: list[dict[str, Any]] = []
        for number, count in enumerate(step_counts(link), 1):
            done = recorded.get((device.id, count))
            if done is not None:
                state, values = "handed_out", [done.days]
            elif is_dead(count, device):
                state, values = "dead", []
            else:
                state, values = "open", menu
            steps.append({"step": number, "count": count, "status": state, "tokens": []})
            for days in values:
                units = days_to_units(Decimal(days), device.time_divider)
                plan.append((index, number - 1, days, units))
                requests.append(TokenRequest(device=params, count=count - 1, units=units))
        devices_out.append(
            {
                "serial": device.serial,
                "account": device.account,
                "time_divider": device.time_divider,
                "restricted_digits": device.restricted,
                "steps": steps,
            }
        )
    for (index, step, days, units), token in zip(plan, generate_batch(requests), strict=True):
        entry = devices_out[index]["steps"][step]
        assert token.count == entry["count"]
        entry["tokens"].append(
            {"days": days, "units": units, "token": token.grouped, "digits": token.digits}
        )
    agent = session.get_one(ApiKey, book.agent_key_id)
    return {
        "book": {
            "id": book.id,
            "name": book.name,
            "agent": agent.name,
            "menu": menu,
            "steps": book.steps,
            "value_days": book.value_days,
            "value_cap_days": book.value_cap_days,
            "expires_at": iso(book.expires_at),
        },
        "devices": devices_out,
    }


# -- syncing ----------------------------------------------------------------------------


def check_handout(item: HandoutInput) -> HandoutInput:
    client_id = bounds.check_text(
        item.client_id.strip(),
        "a hand-out's id",
        min_length=1,
        max_length=CLIENT_ID_LENGTH,
        fix="the phone's own id of the hand-out, e.g. a UUID",
    )
    if not client_id.isprintable():
        raise InvalidError("a hand-out's id must be printable text", "e.g. a UUID")
    bounds.check_text(item.serial, "a serial", min_length=1, max_length=bounds.SERIAL_LENGTH)
    bounds.check_count(item.count, "a hand-out's count")
    bounds.check_money(item.days, "a hand-out's days")
    if item.days <= 0 or item.days > bounds.MAX_DAYS:
        raise InvalidError("a hand-out's days must be one of the book's menu values")
    amount = parse_money(item.amount, "a hand-out's amount")
    reference = item.reference
    if reference is not None:
        reference = bounds.check_text(
            reference.strip(), "a hand-out's reference", max_length=REFERENCE_LENGTH
        )
    bounds.check_time(item.handed_out_at, "a hand-out's time")
    return HandoutInput(
        client_id=client_id,
        serial=item.serial,
        count=item.count,
        days=Decimal(days_text(item.days)),
        amount=amount,
        currency=check_currency(item.currency),
        handed_out_at=item.handed_out_at,
        reference=reference or None,
    )


def _same_handout(stored: BookHandout, item: HandoutInput, device_id: int | None) -> bool:
    return (
        stored.device_id == device_id
        and stored.count == item.count
        and Decimal(stored.days) == item.days
        and Decimal(stored.amount) == item.amount
        and stored.currency == item.currency
        and stored.reference == item.reference
    )


@dataclass
class _SyncState:
    book: Book
    menu: list[str]
    status: str
    links: dict[int, BookDevice]
    devices: dict[str, Device]
    by_client: dict[str, BookHandout]
    recorded: dict[tuple[int, int], BookHandout]
    webhook: WebhookTarget


def sync_book(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    book_id: int,
    items: Sequence[HandoutInput],
    now: dt.datetime,
) -> dict[str, Any]:
    """Record the agent's hand-outs; each one once, whatever is sent again."""
    require(actor, "books.sync")
    if not 1 <= len(items) <= MAX_SYNC_HANDOUTS:
        raise InvalidError(
            f"a sync carries 1 to {MAX_SYNC_HANDOUTS} hand-outs, got {len(items)}",
            "send the rest in further syncs: each hand-out is recorded once",
        )
    checked = [check_handout(item) for item in items]
    # The book's row is the lock every sync of the book takes first: two phones syncing
    # at once go one after the other, and the second finds the first's hand-outs.
    book = _book_for(session, actor, book_id, lock=True)
    links = _links(session, book, lock=True)
    handouts = _handouts(session, book)
    tenant = session.get_one(Tenant, book.tenant_id)
    state = _SyncState(
        book=book,
        menu=_menu(book),
        status=effective_status(book, now),
        links={link.device_id: link for link, _ in links},
        devices={device.serial: device for _, device in links},
        by_client={h.client_id: h for h in handouts},
        recorded=_recorded_at(handouts),
        webhook=WebhookTarget(tenant.name, tenant.webhook_url),
    )
    results = [_sync_one(session, actor, keyring, state, item, now) for item in checked]
    new = [r for r in results if r["result"] in {s.value for s in HandoutStatus}]
    refused = [r for r in results if r["result"] == "refused"]
    session.flush()
    if new or refused:
        summary = {
            "recorded": sum(1 for r in new if r["result"] == HandoutStatus.RECORDED.value),
            "duplicate": sum(1 for r in new if r["result"] == HandoutStatus.DUPLICATE.value),
            "conflict": sum(1 for r in new if r["result"] == HandoutStatus.CONFLICT.value),
            "refused": len(refused),
            "replayed": len(results) - len(new) - len(refused),
            "flagged": [r["id"] for r in new if r["flags"]][:100],
        }
        audit(session, actor, "book.sync", f"book:{book.id}", now, **summary)
        if new:
            enqueue_event(
                session, book.tenant_id, "book.synced", {"book_id": book.id, **summary}, now
            )
    dead = [
        {"serial": device.serial, "counts": counts}
        for link, device in links
        if (
            counts := [
                c
                for c in step_counts(link)
                if (device.id, c) not in state.recorded and is_dead(c, device)
            ]
        )
    ]
    return {
        "book": book_view(session, book, now),
        "results": results,
        # Steps the device can no longer take (its count moved past them): never hand them out.
        "dead_steps": dead,
    }


def _refused(item: HandoutInput, reason: str) -> dict[str, Any]:
    return {"id": item.client_id, "result": "refused", "reason": reason, "flags": []}


def _sync_one(
    session: Session,
    actor: Actor,
    keyring: Keyring,
    state: _SyncState,
    item: HandoutInput,
    now: dt.datetime,
) -> dict[str, Any]:
    book = state.book
    device = state.devices.get(item.serial)
    stored = state.by_client.get(item.client_id)
    if stored is not None:
        if not _same_handout(stored, item, device.id if device is not None else None):
            return _refused(
                item,
                f"hand-out {item.client_id} was synced before with other content; the first "
                "one stands",
            )
        return {
            "id": item.client_id,
            "result": "replayed",
            "status": stored.status,
            "flags": json.loads(stored.flags),
            "token_id": stored.token_id,
            "payment_id": stored.payment_id,
        }
    if book.fetched_at is None:
        # Its counts may have been given back (close_book): a hand-out cannot be true.
        return _refused(
            item, f"token book {book.id} was never fetched: none of its tokens left the server"
        )
    if device is None:
        return _refused(item, f"device {item.serial} is not on token book {book.id}")
    link = state.links[device.id]
    if item.count not in step_counts(link):
        return _refused(
            item,
            f"count {item.count} is not a step of book {book.id} for {device.serial} "
            f"(its steps are counts {link.first_count} to {link.last_count}, every other one)",
        )
    days = days_text(item.days)
    if days not in state.menu:
        return _refused(item, f"{days} days is not on the book's menu ({', '.join(state.menu)})")

    transaction_id = f"{book.id}/{item.client_id}"
    if session.scalar(
        select(Payment.id).where(
            Payment.tenant_id == book.tenant_id,
            Payment.provider == BOOK_PROVIDER,
            Payment.transaction_id == transaction_id,
        )
    ):
        # Only a payment recorded before the provider name was kept for books can be here.
        return _refused(
            item,
            f"a payment {BOOK_PROVIDER} {transaction_id} exists already; give the hand-out "
            "another id",
        )
    units = days_to_units(item.days, device.time_divider)
    params = device_params(device, keyring)
    token = generate(params, count=item.count - 1, token_type=TokenType.ADD_TIME, units=units)
    assert token.count == item.count
    at = min(item.handed_out_at, now)
    flags, notes = _flags(session, state, device, link, item, now)
    first = state.recorded.get((device.id, item.count))
    taken = first is None and session.scalar(
        select(TokenRecord.id).where(
            TokenRecord.device_id == device.id, TokenRecord.count == item.count
        )
    )
    if taken:
        # Not reachable through books' own rules; kept so a count is never recorded twice.
        status = HandoutStatus.CONFLICT
        notes.append(f"count {item.count} of {device.serial} already has a token record")
    elif first is None:
        status = HandoutStatus.RECORDED
    elif first.units == units:
        status = HandoutStatus.DUPLICATE
        notes.append(
            f"the token of count {item.count} ({days} days) was handed out before (hand-out "
            f"{first.client_id}): it works once; refund the customer or give the time "
            "another way"
        )
    else:
        status = HandoutStatus.CONFLICT
        notes.append(
            f"a second token at count {item.count} ({days} days; {first.days} days were "
            f"handed out there before, hand-out {first.client_id}): only the first entered "
            "works; replace the other once the book is closed"
        )
    dead = "dead" in flags
    orphan_reason = None
    if status is not HandoutStatus.RECORDED:
        orphan_reason = f"token book {book.id}: " + notes[-1]
    elif dead:
        orphan_reason = (
            f"token book {book.id}: the token of count {item.count} handed out to "
            f"{device.serial} cannot work (the device was at count "
            f"{device.last_count_reported} already); replace it once the book is closed"
        )
    payment = Payment(
        tenant_id=book.tenant_id,
        provider=BOOK_PROVIDER,
        transaction_id=transaction_id,
        account=device.account,
        serial=device.serial,
        amount=str(item.amount),
        currency=item.currency,
        paid_at=at,
        status="orphan" if orphan_reason else "applied",
        orphan_reason=orphan_reason,
        device_id=device.id,
        units=units,
        created_at=now,
        applied_at=None if orphan_reason else now,
    )
    session.add(payment)
    session.flush()
    record = None
    if status is HandoutStatus.RECORDED:
        record = _record_token(session, actor, state, device, link, token, payment, dead, now)
        payment.request_id = record.request_id
        if not dead:
            _apply_to_state(device, token, at)
            device.updated_at = now
    handout = BookHandout(
        book_id=book.id,
        client_id=item.client_id,
        device_id=device.id,
        count=item.count,
        days=days,
        units=units,
        token=token.digits,
        amount=str(item.amount),
        currency=item.currency,
        reference=item.reference,
        handed_out_at=item.handed_out_at,
        status=status.value,
        flags=json.dumps(flags),
        note="; ".join(notes) or None,
        token_id=None if record is None else record.id,
        payment_id=payment.id,
        synced_by=actor.label,
        synced_at=now,
    )
    session.add(handout)
    session.flush()
    state.by_client[item.client_id] = handout
    if status is HandoutStatus.RECORDED:
        state.recorded[(device.id, item.count)] = handout
    return {
        "id": item.client_id,
        "result": status.value,
        "flags": flags,
        "note": handout.note,
        "token": group_digits(token.digits),
        "token_id": handout.token_id,
        "payment_id": payment.id,
    }


def _flags(
    session: Session,
    state: _SyncState,
    device: Device,
    link: BookDevice,
    item: HandoutInput,
    now: dt.datetime,
) -> tuple[list[str], list[str]]:
    """What a person should look at in a hand-out, each with its reason."""
    book = state.book
    flags: list[str] = []
    notes: list[str] = []
    if book.status == "closed":
        flags.append("after_close")
        notes.append(
            f"synced after the book was closed ({iso(book.closed_at)}, decision "
            f"{book.close_decision or 'none needed'})"
        )
        if book.close_decision == CloseDecision.VOID.value:
            flags.append("voided")
            notes.append("the book was closed as if this step had not been handed out")
    if state.status == "expired" or item.handed_out_at >= book.expires_at:
        flags.append("after_expiry")
        notes.append(f"the book expired at {iso(book.expires_at)}")
    if item.handed_out_at > now + CLOCK_SLACK:
        flags.append("clock_ahead")
        notes.append(f"the phone said {iso(item.handed_out_at)}, after the server's time")
    skipped = [
        c for c in step_counts(link) if c < item.count and (device.id, c) not in state.recorded
    ]
    if skipped:
        flags.append("skipped")
        notes.append(
            f"earlier steps not synced yet (counts {', '.join(map(str, skipped))}): a later "
            "sync may bring them"
        )
    reported_at = device.count_reported_at
    if (
        is_dead(item.count, device)
        and reported_at is not None
        and reported_at <= item.handed_out_at
    ):
        flags.append("dead")
        notes.append(
            f"the device showed count {device.last_count_reported} at {iso(reported_at)}, "
            f"before the hand-out: a token at count {item.count} can no longer be entered"
        )
    if item.amount == 0:
        flags.append("unpaid")
        notes.append("no money was recorded for this token")
    else:
        tariff = tariff_for(session, device)
        if tariff is not None:
            price, currency = tariff
            if currency != item.currency:
                flags.append("currency_differs")
                notes.append(f"the device's tariff is in {currency}, not {item.currency}")
            elif Fraction(item.amount) < Fraction(price) * Fraction(item.days):
                flags.append("underpaid")
                notes.append(
                    f"{item.amount} {currency} for {days_text(item.days)} days at {price} "
                    f"{currency} a day"
                )
    return flags, notes


def _record_token(
    session: Session,
    actor: Actor,
    state: _SyncState,
    device: Device,
    link: BookDevice,
    token: GeneratedToken,
    payment: Payment,
    dead: bool,
    now: dt.datetime,
) -> TokenRecord:
    before = link.count_before if token.count == link.first_count else token.count - 2
    record = TokenRecord(
        device_id=device.id,
        count=token.count,
        token_count=token.count,
        count_before=before,
        count_after=token.count,
        token_type=token.token_type.value,
        units=token.units,
        token=token.digits,
        request_id=str(uuid.uuid4()),
        source="book",
        actor=actor.label,
        api_key_id=actor.api_key_id,
        # A dead token bought nothing: its money waits (orphan) for the replacement.
        payment_id=None if dead else payment.id,
        created_at=now,
    )
    session.add(record)
    session.flush()  # UNIQUE(device_id, count): a count is recorded once, whatever happened
    issued = IssuedToken(
        id=record.id,
        device_id=record.device_id,
        count=record.count,
        token_count=record.token_count,
        count_before=record.count_before,
        count_after=record.count_after,
        token_type=record.token_type,
        units=record.units,
        token=record.token,
        request_id=record.request_id,
        source=record.source,
        actor=record.actor,
        api_key_id=record.api_key_id,
        payment_id=record.payment_id,
        created_at=record.created_at,
    )
    enqueue_token(session, state.webhook, device, issued, now)
    audit(
        session,
        actor,
        "token.issue",
        f"device:{device.serial}",
        now,
        source="book",
        book_id=state.book.id,
        counts=[token.count],
        types=[token.token_type.value],
        units=[token.units],
        payment_id=payment.id,
    )
    return record


# -- closing ----------------------------------------------------------------------------


def _let_go(session: Session, book: Book, links: Sequence[tuple[BookDevice, Device]]) -> None:
    for _, device in links:
        if device.book_id == book.id:
            reservations.release(session, device)


def close_book(
    session: Session,
    actor: Actor,
    book_id: int,
    decision: CloseDecision | None,
    reason: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """End the book: online issuing for its devices resumes after its counts.

    Steps possibly handed out (the book was fetched, the step not synced) need a
    decision; the counts of a fetched book stay used whatever it is.
    """
    require(actor, "books.manage")
    if reason is not None:
        reason = bounds.check_text(reason.strip(), "the reason", max_length=bounds.MAX_NOTE)
    book = _book_for(session, actor, book_id, lock=True)
    if book.status != "open":
        raise ConflictError(
            f"token book {book.id} is already {book.status} ({iso(book.closed_at)})",
            "its late hand-outs can still be synced",
        )
    links = _links(session, book, lock=True)
    handouts = _handouts(session, book)
    possibly = _possibly_handed_out(book, links, handouts)
    if possibly and decision is None:
        steps = sum(len(p["counts"]) for p in possibly)
        raise ConflictError(
            f"token book {book.id} was fetched by its agent at {iso(book.fetched_at)} and "
            f"{steps} step(s) of {len(possibly)} device(s) are not synced: they may be in "
            "customers' hands; nothing was changed",
            "sync the agent's phone first; else close with decision 'void' (they were not "
            "handed out: no money is expected for them) or 'handed_out' (they may have been: "
            "their sync is still taken), and a reason; either is audited",
            {"possibly_handed_out": possibly[:100]},
        )
    if decision is not None and not reason:
        raise InvalidError("a decision needs a reason", "say why, e.g. 'phone lost on 3 May'")
    warnings: list[str] = []
    released = book.fetched_at is None
    if released:
        # No token of the book ever left the server: its counts are given back.
        for link, device in links:
            if device.last_count_issued == link.last_count:
                recorded = session.scalar(
                    select(TokenRecord.token_count)
                    .where(TokenRecord.device_id == device.id)
                    .order_by(TokenRecord.token_count.desc())
                    .limit(1)
                )
                device.last_count_issued = max(
                    link.count_before, device.last_count_reported, recorded or 0
                )
                device.updated_at = now
    elif possibly:
        warnings.append(
            "the steps not synced still work on their devices until a later count is entered: "
            "to end them at once, make each device's next online token a Set Time "
            "(set_days or active_until), which closes every older count"
        )
    _let_go(session, book, links)
    book.status = "closed"
    book.closed_at = now
    book.closed_by = actor.label
    book.close_decision = decision.value if possibly and decision is not None else None
    book.close_reason = reason or None
    session.flush()
    details = {
        "decision": book.close_decision,
        "reason": book.close_reason,
        "possibly_handed_out": possibly[:100],
        "counts_given_back": released,
    }
    audit(session, actor, "book.close", f"book:{book.id}", now, **details)
    enqueue_event(session, book.tenant_id, "book.closed", {"book_id": book.id, **details}, now)
    return {"book": book_view(session, book, now), "warnings": warnings}


def expire_books(session: Session, actor: Actor, now: dt.datetime) -> list[int]:
    """Close every book past its expiry (their counts stay used); the ids expired."""
    require(actor, "books.manage")
    due = list(
        session.scalars(
            select(Book)
            .where(
                Book.tenant_id == actor.tenant_id,
                Book.status == "open",
                Book.expires_at <= now,
            )
            .order_by(Book.id)
            .with_for_update()
        )
    )
    for book in due:
        links = _links(session, book)
        possibly = _possibly_handed_out(book, links, _handouts(session, book))
        _let_go(session, book, links)
        book.status = "expired"
        book.closed_at = now
        book.closed_by = actor.label
        # Nobody decided: whatever the agent handed out may still be synced.
        book.close_decision = CloseDecision.HANDED_OUT.value if possibly else None
        session.flush()
        details = {"expires_at": iso(book.expires_at), "possibly_handed_out": possibly[:100]}
        audit(session, actor, "book.expire", f"book:{book.id}", now, **details)
        enqueue_event(session, book.tenant_id, "book.expired", {"book_id": book.id, **details}, now)
    return [book.id for book in due]
