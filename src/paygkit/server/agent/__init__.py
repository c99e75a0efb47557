"""The agents' offline web app, served at /agent/: plain files in this package, no build step.

An installable web app (a manifest and a service worker) for selling time from
a token book where there is no network (docs/agents.md).  The server only
serves its files; everything the agent does goes through the API (/books) with
the agent's key, which the app keeps, with the books, encrypted under the
agent's PIN in the phone's storage.

The service worker caches these files, and nothing else: its cache name is a
digest of the files, so a new release of the app replaces the old one.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

PREFIX = "/agent"
# The files of the app, and their types; anything else under /agent/ is a 404.
SHELL = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "sw.js": "text/javascript; charset=utf-8",
    "manifest.webmanifest": "application/manifest+json",
    "icon.svg": "image/svg+xml",
}
_VERSION_MARK = "__SHELL_VERSION__"

# As the console's (console/views.py), plus what an installable app needs.
HEADERS = {
    # Online, the browser asks each time whether a file changed; offline, the service
    # worker answers from its cache.
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; manifest-src 'self'; worker-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

router = APIRouter(include_in_schema=False)


@functools.cache
def _files() -> dict[str, bytes]:
    here = resources.files(__package__).joinpath("static")
    files = {name: here.joinpath(name).read_bytes() for name in SHELL}
    digest = hashlib.sha256()
    for name in sorted(files):
        if name != "sw.js":
            digest.update(name.encode() + b"\0" + files[name] + b"\0")
    version = digest.hexdigest()[:16].encode()
    files["sw.js"] = files["sw.js"].replace(_VERSION_MARK.encode(), version)
    return files


def _file(name: str) -> Response:
    return Response(_files()[name], media_type=SHELL[name], headers=HEADERS)


@router.get(PREFIX)
def bare() -> RedirectResponse:
    return RedirectResponse(PREFIX + "/", status_code=308)


@router.get(PREFIX + "/")
def index() -> Response:
    return _file("index.html")


@router.get(PREFIX + "/{name}")
def shell_file(name: str) -> Response:
    if name not in SHELL:
        return Response(
            b"not found\n", status_code=404, media_type="text/plain; charset=utf-8", headers=HEADERS
        )
    return _file(name)


__all__ = ["PREFIX", "SHELL", "router"]
