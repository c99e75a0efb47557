"""The framework floor of bench_server.py: the token route with no paygkit behind it.

A FastAPI app served by the same uvicorn (httptools, uvloop) as the token
server, answering the same `POST /devices/{serial}/tokens` with the same
kinds of parameters (a bounded path serial, a validated JSON body, an
optional Idempotency-Key header) and a JSON body of the same shape and about
the same size, after the same hand-over of the work to a thread of the
process's own pool and back (paygkit.server.api.transactions.run_db).  It
touches no database and makes no token: its CPU per request is what any
token server built this way pays before doing any work, so the difference to
a server case is what paygkit's own issue path costs.

    .venv/bin/python -m uvicorn --app-dir benchmarks framework_floor:app
"""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

app = FastAPI(title="framework floor")
_threads = ThreadPoolExecutor(max_workers=4)
# Per serial, so the load generator's check (distinct, gapless counts) holds here too.
_counts: dict[str, int] = {}
# The fixed parts of the answer, with the token server's field names (about 1.1 KB in all).
_REQUEST_ID = "22ffe005-c275-4d6c-aeac-6bd832510f74"
_TIME = {
    "requested": "1 day",
    "units_exact": "1",
    "units": 1,
    "rounded": False,
    "units_per_day": 1,
    "unit_length": "1 day",
    "duration": "1 day",
    "text": "1 day = 1 unit at 1 unit a day = 1 day",
}
_TOKEN = {
    "token": "643 020 829",
    "digits": "643020829",
    "type": "add_time",
    "units": 1,
    "days": "1",
    "reset": False,
    "source": "api",
    "issued_by": "bench (key 1, operator)",
    "request_id": _REQUEST_ID,
    "payment_id": None,
}
_DEVICE = {
    "starting_code": 33897828,
    "time_divider": 1,
    "restricted_digits": False,
    "hardware_model": "",
    "version": "",
    "test_code": None,
    "account": None,
    "decode_window": 64,
    "last_count_reported": 1,
    "count_reported_at": None,
    "unentered_counts": 1,
    "payg_enabled": True,
    "active_until": "2026-12-02T10:11:55.523537Z",
    "furthest_until": "2026-12-02T10:11:55.523537Z",
    "tariff": None,
    "created_at": "2026-12-01T10:11:55.354752Z",
    "active": True,
}


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["add_days", "set_days", "active_until", "disable_payg", "counter_sync"]
    days: Annotated[float, Field(ge=0, le=100_000)] | None = None
    reset: bool = False


@app.post("/devices/{serial}/tokens", status_code=201)
async def issue(
    serial: Annotated[str, Path(min_length=1, max_length=64)],
    body: TokenBody,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    def work() -> Response:
        count = _counts.get(serial, 0) + 2
        _counts[serial] = count
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        answer = {
            "serial": serial,
            "request_id": _REQUEST_ID,
            "time": dict(_TIME),
            "tokens": [
                {
                    **_TOKEN,
                    "id": count,
                    "count": count,
                    "count_before": count - 1,
                    "count_after": count,
                    "issued_at": now,
                }
            ],
            "device": {**_DEVICE, "serial": serial, "last_count_issued": count, "updated_at": now},
            "warnings": [],
            "replayed": False,
        }
        return JSONResponse(answer, status_code=201)

    return await asyncio.get_running_loop().run_in_executor(_threads, work)
