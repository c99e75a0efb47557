"""The console's form fields, and the checks that turn them into service requests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import Form, Query
from fastapi import Path as PathParam

from paygkit.server.console.formatting import when
from paygkit.server.services import bounds, tokens
from paygkit.server.services.common import InvalidError, parse_time

DEVICE_PAGE = 50

# Form fields: every one a string, checked by the page (clear messages, never echoed keys).
Csrf = Annotated[str, Form()]
Text = Annotated[str, Form()]
# Ids in paths and queries: PostgreSQL's INTEGER (bounds.MAX_ID).
RowIdPath = Annotated[int, PathParam(ge=1, le=bounds.MAX_ID)]
BeforeId = Annotated[int | None, Query(ge=1, le=bounds.MAX_ID)]
PageNumber = Annotated[int, Query(ge=1, le=bounds.MAX_ID // DEVICE_PAGE)]


def ticked(value: str) -> bool:
    """Whether a checkbox was ticked (browsers send "on"; scripts may send 1 or true)."""
    return value in ("1", "on", "true")


def _iso_shaped(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def form_time(text: str, what: str) -> dt.datetime:
    """A date (the end of that day) or a time typed in a form, in the services' bounds.

    The fields ask for YYYY-MM-DD, so a refusal says so in those words.
    """
    try:
        return parse_time(text, what)
    except InvalidError as error:
        if _iso_shaped(text):
            raise
        raise InvalidError(
            f"{what} {text[:40]!r} is not a date written YYYY-MM-DD", error.fix
        ) from None


def day_start(text: str, what: str) -> dt.datetime:
    """The start of a day (a date alone), or the time given."""
    moment = form_time(text, what)
    return moment - dt.timedelta(days=1) if len(text.strip()) == 10 else moment


def spec_from_form(
    kind: str, days: str, until: str, reset: str, lock: str = ""
) -> tuple[tokens.IssueSpec, dict[str, str]]:
    """The token request of a device page form, checked; and its fields for the next step."""
    try:
        issue_kind = tokens.IssueKind(kind)
    except ValueError:
        raise InvalidError(
            "choose what to issue: add days, set days, active until, disable PAYG or counter sync"
        ) from None
    fields = {"type": issue_kind.value}
    amount: Decimal | None = None
    moment: dt.datetime | None = None
    if issue_kind in (tokens.IssueKind.ADD_DAYS, tokens.IssueKind.SET_DAYS):
        text = days.strip().replace(",", ".")
        if not text:
            raise InvalidError("enter the number of days", "e.g. 7, or 1.5 for a day and a half")
        try:
            if len(text) > 40:
                raise InvalidOperation
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidError(
                f"the number of days must be a number, not {days.strip()[:20]!r}",
                "e.g. 7, or 1.5 for a day and a half",
            ) from None
        if not amount.is_finite() or amount < 0 or amount > 100_000:
            raise InvalidError(
                "the number of days must be between 0 and 100000", "e.g. 7, or 30 for a month"
            )
        fields["days"] = text
    elif issue_kind is tokens.IssueKind.ACTIVE_UNTIL:
        if not until.strip():
            raise InvalidError("choose the date the device stays active until", "e.g. 2030-01-31")
        moment = form_time(until, "the date")
        fields["until"] = until.strip()
    do_reset = issue_kind is tokens.IssueKind.COUNTER_SYNC and ticked(reset)
    if do_reset:
        fields["reset"] = "1"
    do_lock = ticked(lock)
    if do_lock:
        fields["lock"] = "1"
    spec = tokens.IssueSpec(
        kind=issue_kind, days=amount, until=moment, reset=do_reset, lock=do_lock
    )
    spec.check()
    return spec, fields


def describe_spec(spec: tokens.IssueSpec, fields: dict[str, str]) -> str:
    """What the confirmation page says the token will do."""
    match spec.kind:
        case tokens.IssueKind.ADD_DAYS:
            return f"Add {fields['days']} day(s) to the device's time"
        case tokens.IssueKind.SET_DAYS if spec.lock:
            return "Lock the device now (Set Time 0): it stops until it gets new time"
        case tokens.IssueKind.SET_DAYS:
            return f"Set the device's time to {fields['days']} day(s) from now"
        case tokens.IssueKind.ACTIVE_UNTIL:
            return f"Keep the device active until {when(spec.until)}"
        case tokens.IssueKind.DISABLE_PAYG:
            return "Disable PAYG: the device stays unlocked for good"
        case _:
            if spec.reset:
                return "The reset token (Counter Sync at count 0): for a technician at the device"
            return "Counter sync: bring the device's count in line with the server"
