"""The console as one router for the app to include, and its static files to mount."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from paygkit.server.console.pages import (
    api_keys,
    audit,
    books,
    devices,
    imports,
    payments,
    session,
)
from paygkit.server.console.views import HERE, PREFIX, redirect

STATIC_PATH = PREFIX + "/static"
STATIC_NAME = "console-static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return redirect(PREFIX + "/")


@router.get(PREFIX)
def bare() -> RedirectResponse:
    return redirect(PREFIX + "/")


for _pages in (session, devices, imports, payments, books, audit, api_keys):
    router.include_router(_pages.router)


def static_files() -> StaticFiles:
    """The console's CSS and JS, shipped in this package (no CDN, nothing fetched)."""
    return StaticFiles(directory=HERE / "static")
