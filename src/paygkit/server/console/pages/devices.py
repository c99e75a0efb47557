"""Devices: find one, see its time and tokens, issue a token, report its count."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from paygkit.server.console.errors import page_status
from paygkit.server.console.formatting import device_status
from paygkit.server.console.forms import (
    DEVICE_PAGE,
    BeforeId,
    Csrf,
    PageNumber,
    Text,
    describe_spec,
    spec_from_form,
    ticked,
)
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import reading, writing
from paygkit.server.console.views import PREFIX, redirect, render
from paygkit.server.context import server_context
from paygkit.server.services import bounds, counts, devices, idempotency, tokens
from paygkit.server.services.common import ConflictError, InvalidError, ServiceError
from paygkit.token import units_duration_text

HISTORY_PAGE = 50
TOKEN_FORMS = {
    tokens.IssueKind.ADD_DAYS: "Add days",
    tokens.IssueKind.SET_DAYS: "Set days",
    tokens.IssueKind.ACTIVE_UNTIL: "Active until",
    tokens.IssueKind.DISABLE_PAYG: "Disable PAYG",
    tokens.IssueKind.COUNTER_SYNC: "Counter sync",
}
COUNT_SOURCES = {
    "display": "read on the device's display",
    "uart": "read over the device's serial port",
    "support_call": "given by the customer on a call",
    "other": "other",
}

router = page_router()


def show_device(
    request: Request,
    serial: str,
    *,
    before_id: int | None = None,
    error: ServiceError | None = None,
    notice: str | None = None,
    warnings: list[str] | None = None,
) -> HTMLResponse:
    """The device page, with the outcome of a form sent from it (an error, a notice)."""
    with reading(request) as (session, signed, now):
        device, records = tokens.token_history(
            session, signed.actor, serial, before_id=before_id, limit=HISTORY_PAGE
        )
        _, reports = counts.count_history(session, signed.actor, serial, limit=5)
        return render(
            request,
            "device.html",
            signed=signed,
            status=200 if error is None else page_status(error),
            title=f"Device {device.serial}",
            device=devices.device_view(device, now),
            state=device_status(device, now),
            analysis=counts.analyse(session, device),
            history=[tokens.token_view(r, device.time_divider) for r in records],
            older=records[-1].id if len(records) == HISTORY_PAGE else None,
            reports=[counts.report_view(r) for r in reports],
            token_forms=TOKEN_FORMS,
            may_lock=tokens.may_lock(signed.actor),
            unit_length=units_duration_text(1, device.time_divider),
            count_sources=COUNT_SOURCES,
            account_length=bounds.ACCOUNT_LENGTH,
            error=error,
            notice=notice,
            warnings=warnings or [],
            today=now.date().isoformat(),
        )


@router.get("/devices")
def device_search(request: Request, q: str = "", page: PageNumber = 1) -> Response:
    with reading(request) as (session, signed, now):
        query = q.strip()
        skip = (page - 1) * DEVICE_PAGE
        # One more than a page: whether there is a next page, without counting them all.
        if query:
            found = devices.search_devices(
                session, signed.actor, query, limit=DEVICE_PAGE + 1, offset=skip
            )
            if (
                page == 1
                and found
                and (len(found) == 1 or found[0].serial.upper() == query.upper())
            ):
                return redirect(f"{PREFIX}/devices/{quote(found[0].serial)}")
        else:
            found = devices.list_devices(
                session,
                signed.actor,
                after=None,
                limit=DEVICE_PAGE + 1,
                account=None,
                offset=skip,
            )
        shown = found[:DEVICE_PAGE]

        def page_link(number: int) -> str:
            wanted = {"q": query} if query else {}
            if number > 1:
                wanted["page"] = str(number)
            return f"{PREFIX}/devices" + (f"?{urlencode(wanted)}" if wanted else "")

        return render(
            request,
            "devices.html",
            signed=signed,
            title="Devices" if page == 1 else f"Devices, page {page}",
            q=query,
            results=[
                {**devices.device_view(d, now), "state": device_status(d, now)} for d in shown
            ],
            total=devices.count_devices(session, signed.actor.tenant_id),
            page=page,
            first=skip + 1,
            last=skip + len(shown),
            previous_page=page_link(page - 1) if page > 1 else None,
            next_page=page_link(page + 1) if len(found) > DEVICE_PAGE else None,
            first_page=page_link(1),
            page_size=DEVICE_PAGE,
        )


@router.get("/devices/{serial}")
def device_page(request: Request, serial: str, before_id: BeforeId = None) -> Response:
    return show_device(request, serial, before_id=before_id)


@router.post("/devices/{serial}/account")
def set_account(request: Request, serial: str, csrf: Csrf = "", account: Text = "") -> Response:
    wanted = account.strip()
    try:
        with writing(request, csrf) as (session, signed, now):
            # The same checks and audit entry (device.update) as the API's device update.
            devices.update_device(session, signed.actor, serial, now, account=wanted or None)
    except InvalidError as error:
        return show_device(request, serial, error=error)
    return show_device(
        request,
        serial,
        notice=(
            f"Customer reference set to {wanted}."
            if wanted
            else "Customer reference removed: the device belongs to no customer."
        ),
    )


@router.post("/devices/{serial}/confirm")
def confirm_token(
    request: Request,
    serial: str,
    csrf: Csrf = "",
    type: Text = "",
    days: Text = "",
    until: Text = "",
    reset: Text = "",
    lock: Text = "",
) -> Response:
    try:
        with writing(request, csrf) as (session, signed, now):
            spec, fields = spec_from_form(type, days, until, reset, lock)
            tokens.authorize(signed.actor, spec)
            device = devices.get_device(session, signed.actor, serial)
            # Refused here, before the confirmation: a token worth nothing, a lock
            # nobody asked for.
            tokens.plan_tokens(device, spec, now)
            return render(
                request,
                "confirm_token.html",
                signed=signed,
                title="Confirm the token",
                device=devices.device_view(device),
                summary=describe_spec(spec, fields),
                time=tokens.explain(device, spec, now),
                fields=fields,
                reset=spec.reset,
                lock=spec.lock,
                idempotency_key=f"console-{uuid.uuid4()}",
            )
    except InvalidError as error:
        return show_device(request, serial, error=error)


@router.post("/devices/{serial}/tokens")
def issue_token(
    request: Request,
    serial: str,
    csrf: Csrf = "",
    type: Text = "",
    days: Text = "",
    until: Text = "",
    reset: Text = "",
    lock: Text = "",
    idempotency_key: Text = "",
) -> Response:
    try:
        with writing(request, csrf) as (session, signed, now):
            spec, _fields = spec_from_form(type, days, until, reset, lock)
            outcome = tokens.issue_tokens(
                session,
                signed.actor,
                server_context(request).keyring,
                serial,
                spec,
                now,
                source="console",
                idempotency_key=idempotency.check_key(idempotency_key.strip() or None),
            )
            return render(
                request,
                "issued.html",
                signed=signed,
                title=f"Token for {serial}",
                serial=outcome.body["serial"],
                made=outcome.body["tokens"],
                warnings=outcome.body["warnings"],
                replayed=outcome.replayed,
                device=outcome.body["device"],
                time=outcome.body.get("time"),
            )
    except InvalidError as error:
        return show_device(request, serial, error=error)


@router.post("/devices/{serial}/counts")
def report_count(
    request: Request,
    serial: str,
    csrf: Csrf = "",
    count: Text = "",
    source: Text = "display",
    note: Text = "",
    server_behind: Text = "",
) -> Response:
    try:
        with writing(request, csrf) as (session, signed, now):
            try:
                if len(count.strip()) > 12:
                    raise ValueError
                value = int(count.strip())
            except ValueError:
                raise InvalidError(
                    "the count must be a whole number", "the count the device shows, e.g. 17"
                ) from None
            try:
                where = counts.CountSource(source)
            except ValueError:
                raise InvalidError("choose where the count was read") from None
            answer = counts.report_count(
                session,
                signed.actor,
                serial,
                value,
                where,
                now,
                note=note.strip() or None,
                server_behind=ticked(server_behind),
            )
    except (InvalidError, ConflictError) as error:
        return show_device(request, serial, error=error)
    return show_device(
        request,
        serial,
        notice=f"Count {value} recorded.",
        warnings=answer["warnings"] + answer["analysis"]["advice"],
    )
