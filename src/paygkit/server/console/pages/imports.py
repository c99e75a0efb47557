"""Device import: a dry run of the factory's list first, then the import once confirmed.

The dry run seals the uploaded file (under the server's keyring, for this session
only) into the confirmation form, so the import writes exactly the file that was
checked, without the server keeping uploads.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zlib

from fastapi import Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from paygkit.server import guard
from paygkit.server.console.errors import page_status
from paygkit.server.console.forms import Csrf
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import reading, writing
from paygkit.server.console.views import render
from paygkit.server.context import server_context
from paygkit.server.crypto import MasterKeyError
from paygkit.server.services import importer
from paygkit.server.services.common import InvalidError, ServiceError, require
from paygkit.server.services.sessions import SignedIn

MAX_UPLOAD_BYTES = guard.CONSOLE_UPLOAD_BYTES
# The dry run's sealed copy of the file is valid this long for the confirmation.
IMPORT_CONFIRM_TTL = dt.timedelta(hours=1)

router = page_router()


def _import_purpose(signed: SignedIn) -> str:
    return f"console-import:{signed.session_id}"


@router.get("/import")
def import_form(request: Request) -> Response:
    with reading(request) as (_session, signed, _now):
        require(signed.actor, "devices.import")
        return render(request, "import.html", signed=signed, title="Import devices", report=None)


@router.post("/import")
def import_dry_run(request: Request, file: UploadFile, csrf: Csrf = "") -> Response:
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    keyring = server_context(request).keyring
    with writing(request, csrf) as (session, signed, now):
        require(signed.actor, "devices.import")
        error: ServiceError | None = None
        if not data:
            error = InvalidError("the file is empty", "choose the factory's device list (CSV)")
        elif len(data) > MAX_UPLOAD_BYTES:
            error = InvalidError(
                f"the file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
                "import big lists with 'paygkit server import' or POST /devices/import",
            )
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                error = InvalidError(
                    "the file is not UTF-8 text", "save the list as 'CSV UTF-8' and try again"
                )
        if error is not None:
            return render(
                request,
                "import.html",
                signed=signed,
                status=page_status(error),
                title="Import devices",
                report=None,
                error=error,
            )
        report = importer.import_devices(session, signed.actor, keyring, text, now, dry_run=True)
        sealed = ""
        if report["ok"] and report["new"]:
            stamp = int(now.timestamp()).to_bytes(8, "big")
            blob = keyring.seal_data(_import_purpose(signed), stamp + zlib.compress(data, 6))
            sealed = base64.urlsafe_b64encode(blob).decode()
        return render(
            request,
            "import.html",
            signed=signed,
            title="Import devices: dry run",
            report=report,
            filename=(file.filename or "devices.csv")[:200],
            sealed=sealed,
        )


@router.post("/import/confirm")
async def import_confirm(request: Request) -> Response:
    form = await request.form(max_part_size=2 * MAX_UPLOAD_BYTES, max_files=0)
    csrf = str(form.get("csrf", ""))
    sealed = str(form.get("sealed", ""))
    filename = str(form.get("filename", ""))[:200]
    context = server_context(request)

    def work() -> Response:
        with writing(request, csrf) as (_session, signed, now):
            require(signed.actor, "devices.import")
            try:
                opened = context.keyring.open_data(
                    _import_purpose(signed), base64.urlsafe_b64decode(sealed.encode())
                )
                made = dt.datetime.fromtimestamp(int.from_bytes(opened[:8], "big"), dt.UTC)
                text = zlib.decompress(opened[8:]).decode("utf-8")
            except (MasterKeyError, binascii.Error, ValueError, zlib.error):
                raise InvalidError(
                    "this confirmation does not belong to your session or was altered; "
                    "nothing was imported",
                    "upload the file again",
                ) from None
            if now - made > IMPORT_CONFIRM_TTL:
                raise InvalidError(
                    "the dry run is over an hour old; nothing was imported",
                    "upload the file again to see an up-to-date report",
                )
        # Written in short batches, each its own transaction (see importer.import_batched).
        report = importer.import_batched(
            context.db, signed.actor, context.keyring, text, now, dry_run=False
        )
        return render(
            request,
            "import.html",
            signed=signed,
            status=200 if report["ok"] else 422,
            title="Import devices: done" if report["ok"] else "Import devices: refused",
            report=report,
            filename=filename,
            sealed="",
        )

    return await run_in_threadpool(work)
