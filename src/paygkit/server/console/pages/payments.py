"""Payments: the queue of orphans, applied by hand to a device once confirmed."""

from __future__ import annotations

from decimal import Decimal

from fastapi import Request
from fastapi.responses import Response

from paygkit.server.console.forms import Csrf, RowIdPath, Text
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import reading, writing
from paygkit.server.console.views import render
from paygkit.server.context import server_context
from paygkit.server.services import devices, payments
from paygkit.server.services.common import InvalidError, require

router = page_router()


@router.get("/payments")
def payment_queue(request: Request) -> Response:
    with reading(request) as (session, signed, _now):
        orphans = payments.list_payments(
            session, signed.actor, status="orphan", before_id=None, limit=200
        )
        applied = payments.list_payments(
            session, signed.actor, status="applied", before_id=None, limit=20
        )
        return render(
            request,
            "payments.html",
            signed=signed,
            title="Payments",
            orphans=[payments.payment_body(session, p, replayed=False) for p in orphans],
            applied=[payments.payment_body(session, p, replayed=False) for p in applied],
        )


@router.post("/payments/{payment_id}/confirm")
def confirm_apply(
    request: Request, payment_id: RowIdPath, csrf: Csrf = "", serial: Text = ""
) -> Response:
    with writing(request, csrf) as (session, signed, _now):
        require(signed.actor, "payments.write")
        payment = payments.get_payment(session, signed.actor, payment_id)
        body = payments.payment_body(session, payment, replayed=False)
        if not serial.strip():
            raise InvalidError("enter the serial of the device to apply the payment to")
        device = devices.get_device(session, signed.actor, serial.strip())
        tariff = devices.tariff_for(session, device)
        worth = None
        if tariff is not None and tariff[1] == payment.currency:
            worth = payments.payment_worth(
                Decimal(payment.amount), tariff[0], payment.currency, device.time_divider
            )
        return render(
            request,
            "confirm_apply.html",
            signed=signed,
            title="Confirm the payment",
            payment=body["payment"],
            device=devices.device_view(device),
            tariff=tariff,
            worth=worth,
        )


@router.post("/payments/{payment_id}/apply")
def apply_payment(
    request: Request, payment_id: RowIdPath, csrf: Csrf = "", serial: Text = ""
) -> Response:
    keyring = server_context(request).keyring
    with writing(request, csrf) as (session, signed, now):
        body = payments.apply_orphan(
            session, signed.actor, keyring, payment_id, serial.strip(), now
        )
        return render(
            request,
            "issued.html",
            signed=signed,
            title=f"Token for {body['device']['serial']}",
            serial=body["device"]["serial"],
            made=body["tokens"],
            warnings=body["warnings"],
            replayed=False,
            device=body["device"],
            payment=body["payment"],
            time=body.get("time"),
        )
