"""The HTTP API (FastAPI): thin handlers over `paygkit.server.services`, one router per resource.

Authentication: `Authorization: Bearer <API key>` (or `X-API-Key: <key>`).
Every refusal is a JSON body `{"error": {"code", "message", "fix"?, "details"?}}`
with a 4xx status, and nothing is changed; `errors` decides each status.  The
app (`paygkit.server.app`) includes `ROUTERS` in this order, which is the order
of the OpenAPI document (`/openapi.json`, interactive at `/docs`).
"""

from fastapi import APIRouter

from paygkit.server.api import (
    access,
    books,
    counts,
    devices,
    payments,
    server,
    tariffs,
    tokens,
    webhook,
)
from paygkit.server.api.errors import install_error_handlers

ROUTERS: tuple[APIRouter, ...] = (
    server.router,
    devices.router,
    tokens.router,
    counts.router,
    payments.router,
    books.router,
    tariffs.router,
    webhook.router,
    access.router,
)

__all__ = ["ROUTERS", "install_error_handlers"]
