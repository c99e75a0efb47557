"""Errors, the acting API key, permissions and the audit log."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.orm import Session

from paygkit.server.models import AuditEntry, Role
from paygkit.server.plain import PlainStatement

T = TypeVar("T")


@dataclass
class ServiceError(Exception):
    """A refused request: what is wrong and how to fix it.

    The class is the kind of refusal; how a caller answers each kind (an HTTP
    status, a page, an exit code) is the caller's business, not the services'.
    """

    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message if self.fix is None else f"{self.message} ({self.fix})"


class InvalidError(ServiceError):
    """The input is not valid (a field, a value out of range)."""


class NotFoundError(ServiceError):
    """What the request names does not exist for this tenant."""


class ConflictError(ServiceError):
    """The request contradicts the stored state (a replay of another request, a count)."""


class ForbiddenError(ServiceError):
    """The role of the acting key may not do this."""


class UnauthorizedError(ServiceError):
    """No acting key, or one that is unknown, revoked or expired."""


def answer_for_kind(answers: Mapping[type[ServiceError], T], error: ServiceError) -> T:
    """What an edge (the API, the console) answers to `error`: the entry of its
    kind, or of its nearest listed base kind; `answers` must list ServiceError."""
    for kind in type(error).__mro__:
        if kind in answers:
            return answers[kind]
    raise AssertionError("ServiceError is missing from the table of answers")


# The column of the actor's label (audit_log.actor, tokens.actor, count_reports.actor).
LABEL_LENGTH = 120
# The times the server takes: a day added to 9999-12-31 overflows Python's datetime.
MIN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_TIME = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a request: an API key (or the local CLI) acting for one tenant."""

    tenant_id: int
    name: str
    role: Role
    api_key_id: int | None = None

    @property
    def label(self) -> str:
        """Who, as the audit log and token records say it: fits their 120-character column."""
        if self.api_key_id is None:
            return self.name[:LABEL_LENGTH]
        suffix = f" (key {self.api_key_id}, {self.role.value})"
        name = self.name
        # A key's name may be as long as its own column (100): shorten it, never the key id.
        if len(name) + len(suffix) > LABEL_LENGTH:
            name = name[: LABEL_LENGTH - len(suffix) - 3] + "..."
        return name + suffix


# What each role may do.  Counter Sync tokens, and above all the reset token
# (Counter Sync at count 0), are for technicians only, whatever else a role
# may do: they move a device's count, which support staff should not need.
# An agent reads nothing of the fleet (devices, tokens, payments): a lost phone
# must expose no more than the agent's own books (services/books.py).
_STAFF = frozenset(Role) - {Role.AGENT}
_WRITERS = frozenset({Role.ADMIN, Role.OPERATOR})
PERMISSIONS: dict[str, frozenset[Role]] = {
    "read": _STAFF,
    "devices.write": frozenset({Role.ADMIN}),
    "devices.import": frozenset({Role.ADMIN}),
    "devices.export_keys": frozenset({Role.ADMIN}),
    "tokens.issue": _WRITERS,
    "tokens.counter_sync": frozenset({Role.TECHNICIAN}),
    "tokens.reset": frozenset({Role.TECHNICIAN}),
    # Set Time 0 on purpose takes a customer's time away at once.
    "tokens.lock": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "payments.write": _WRITERS,
    "counts.report": frozenset({Role.ADMIN, Role.OPERATOR, Role.TECHNICIAN}),
    # A count above the last one issued moves the server's count up, for good: only
    # the people who check a device (or restore a server) may say the server is behind.
    "counts.server_behind": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "counts.withdraw": frozenset({Role.ADMIN}),
    "tariffs.write": frozenset({Role.ADMIN}),
    "webhook.write": frozenset({Role.ADMIN}),
    "api_keys.manage": frozenset({Role.ADMIN}),
    "audit.read": frozenset({Role.ADMIN}),
    # Token books: staff who answer for payments make and close them; an agent fetches
    # and syncs their own, and staff may sync on an agent's behalf (a paper book).
    "books.manage": _WRITERS,
    "books.fetch": frozenset({Role.AGENT}),
    "books.sync": _WRITERS | {Role.AGENT},
    "books.read": frozenset(Role),
}

_WHAT = {
    "devices.write": "create or change devices",
    "devices.import": "import device lists",
    "devices.export_keys": "export device keys",
    "tokens.issue": "issue time tokens",
    "tokens.counter_sync": "issue counter sync tokens",
    "tokens.reset": "issue the reset token (Counter Sync at count 0)",
    "tokens.lock": "lock a device (Set Time 0)",
    "payments.write": "record or apply payments",
    "counts.report": "report device counts",
    "counts.server_behind": "report a count above the last one issued (server_behind)",
    "counts.withdraw": "withdraw a count report",
    "tariffs.write": "set tariffs",
    "webhook.write": "configure the webhook",
    "api_keys.manage": "manage API keys",
    "audit.read": "read the audit log",
    "read": "read the fleet's devices, tokens or payments",
    "books.manage": "create, close or expire token books",
    "books.fetch": "fetch a token book's tokens (the book's agent only)",
    "books.sync": "sync a token book's hand-outs",
}


def allowed(actor: Actor, permission: str) -> bool:
    return actor.role in PERMISSIONS[permission]


def require(actor: Actor, permission: str) -> None:
    roles = PERMISSIONS[permission]
    if actor.role in roles:
        return
    allowed = ", ".join(sorted(r.value for r in roles))
    raise ForbiddenError(
        f"the {actor.role.value} role may not {_WHAT.get(permission, permission)}",
        f"use an API key with the role {allowed}",
        {"role": actor.role.value, "allowed_roles": sorted(r.value for r in roles)},
    )


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(value: str, what: str) -> dt.datetime:
    """An ISO 8601 time (UTC when no zone is given); a date alone means the end of that day."""
    text = value.strip()
    example = "e.g. 2030-01-31 (the end of that day, UTC) or 2030-01-31T18:00:00Z"
    try:
        if len(text) > 40:
            raise ValueError("too long")
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            moment = moment.astimezone(dt.UTC)
    except OverflowError:
        moment = MAX_TIME  # refused below: past the end of the calendar
    except (ValueError, UnicodeEncodeError):
        raise InvalidError(
            f"{what} {value[:40]!r} is not an ISO 8601 date or time", example
        ) from None
    if not MIN_TIME <= moment < MAX_TIME:
        raise InvalidError(
            f"{what} must be between {MIN_TIME.date()} and {MAX_TIME.date()}", example
        )
    return moment


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def audit(
    session: Session,
    actor: Actor,
    action: str,
    target: str | None,
    now: dt.datetime,
    **details: Any,
) -> None:
    """Append one entry to the audit log (never a key in `details`).

    Written at once, in the caller's transaction, by a plain statement
    (`paygkit.server.plain`): every token issued writes one.
    """
    _AUDIT_INSERT.run(
        session.connection(),
        {
            "tenant_id": actor.tenant_id,
            "at": now,
            "actor": actor.label,
            "api_key_id": actor.api_key_id,
            "action": action,
            "target": target,
            "details": json.dumps(details, sort_keys=True, default=str),
        },
    )


_AUDIT_TABLE = cast(Table, AuditEntry.__table__)
_AUDIT_INSERT = PlainStatement(
    insert(_AUDIT_TABLE).values(
        {c.key: bindparam(c.key) for c in _AUDIT_TABLE.columns if c.key != "id"}
    )
)
