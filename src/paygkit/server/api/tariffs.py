"""Tariffs: the price of a day per hardware model (listed with the payments in /docs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from paygkit.server.api.params import ModelPath
from paygkit.server.api.schemas import TariffSet
from paygkit.server.api.transactions import reading, writing
from paygkit.server.services import devices
from paygkit.server.services.common import iso

router = APIRouter(tags=["payments"])


@router.get("/tariffs")
def list_tariffs(request: Request) -> dict[str, Any]:
    with reading(request) as (session, actor, _now):
        return {
            "models": [
                {
                    "hardware_model": t.hardware_model,
                    "price_per_day": t.price_per_day,
                    "currency": t.currency,
                    "updated_at": iso(t.updated_at),
                }
                for t in devices.list_model_tariffs(session, actor)
            ]
        }


@router.put("/tariffs/{hardware_model}")
def set_tariff(request: Request, hardware_model: ModelPath, body: TariffSet) -> dict[str, Any]:
    """The price of one day on every device of a model (a device's own tariff wins)."""
    with writing(request) as (session, actor, now):
        tariff = devices.set_model_tariff(
            session, actor, hardware_model, str(body.price_per_day), body.currency, now
        )
        return {
            "hardware_model": tariff.hardware_model,
            "price_per_day": tariff.price_per_day,
            "currency": tariff.currency,
            "updated_at": iso(tariff.updated_at),
        }
