"""Payments: recorded once each, turned into time, or kept as orphans to apply by hand."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError

from paygkit.server.api.params import BeforeId, IdPath, Limit
from paygkit.server.api.schemas import PaymentApply, PaymentCreate
from paygkit.server.api.transactions import reading, run_db, writing
from paygkit.server.context import server_context
from paygkit.server.services import payments
from paygkit.server.services.common import parse_time

router = APIRouter(tags=["payments"])


@router.post("/payments", status_code=201)
async def record_payment(request: Request, body: PaymentCreate) -> Response:
    """Turn a payment into time: 201 applied, 202 orphan (waits), 200 a replay."""
    context = server_context(request)
    data = payments.PaymentInput(
        provider=body.provider,
        transaction_id=body.transaction_id,
        amount=str(body.amount),
        currency=body.currency,
        paid_at=parse_time(body.paid_at, "paid_at") if body.paid_at else context.clock(),
        account=body.account,
        serial=body.serial,
    )

    def work() -> Response:
        for attempt in range(3):
            try:
                with writing(request) as (session, actor, now):
                    status, answer = payments.record_payment(
                        session, actor, context.keyring, data, now
                    )
                return JSONResponse(answer, status_code=status)
            except IntegrityError:
                # The same payment arrived concurrently: the retry finds and replays it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return await run_db(request, work)


@router.get("/payments")
def list_payments(
    request: Request,
    status: Literal["applied", "orphan"] | None = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        found = payments.list_payments(
            session, actor, status=status, before_id=before_id, limit=limit
        )
        return {
            "payments": [payments.payment_body(session, p, replayed=False) for p in found],
            "next_before_id": found[-1].id if len(found) == limit else None,
        }


@router.get("/payments/{payment_id}")
def get_payment(request: Request, payment_id: IdPath) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        payment = payments.get_payment(session, actor, payment_id)
        return payments.payment_body(session, payment, replayed=False)


@router.post("/payments/{payment_id}/apply")
def apply_payment(request: Request, payment_id: IdPath, body: PaymentApply) -> dict[str, Any]:
    """Apply an orphan payment to a device by hand."""
    with writing(request) as (session, actor, now):
        return payments.apply_orphan(
            session, actor, server_context(request).keyring, payment_id, body.serial, now
        )
