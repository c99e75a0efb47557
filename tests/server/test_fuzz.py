"""Property-based tests of the whole API from its OpenAPI document (schemathesis).

A live server (uvicorn on 127.0.0.1, in this process) on SQLite and on
PostgreSQL gets requests generated from /openapi.json, valid and invalid
alike: no answer may be a 5xx, and a refusal (4xx) must leave every table as
it was.  A few devices, a tariff and a payment exist so that requests reach
past "not found".  Derandomized, with a fixed budget per operation, so a run
is reproducible and takes about the same time on any machine.

The token books' endpoints are fuzzed a second time as an agent, the one role
that reaches them from a phone in the field, with a book of theirs to aim at.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from paygkit.server.app import create_app
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from tests.server.conftest import KEY, STARTING_CODE, FakeClock, make_keys, snapshot

pytestmark = pytest.mark.first_pass_only(
    reason="what the API answers to any input is the HTTP layer's and the database's, "
    "whatever engine makes the tokens of the requests it accepts (test_tokens.py issues "
    "them on the fallback)"
)

schemathesis = pytest.importorskip("schemathesis")

# Examples per operation and generation mode: about 25 operations, so some 300
# requests per database, valid and invalid.
EXAMPLES = 10
# The agent's pass covers the 7 book operations only: a smaller budget keeps it cheap.
AGENT_EXAMPLES = 5
SERIAL = "FUZZ0001"
# On the book seeded for the agent (FUZZ0001 stays free for the tokens' endpoints).
BOOK_SERIAL = "FUZZ0002"


@dataclass
class Live:
    url: str
    db: Database
    headers: dict[str, str]
    agent: dict[str, str]


@pytest.fixture
def live(database: Database, keyring: Keyring) -> Iterator[Live]:
    clock = FakeClock()
    app = create_app(db=database, keyring=keyring, clock=clock, migrate=False, webhook_worker=False)
    keys = make_keys(database, clock())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.01)
    try:
        yield Live(
            f"http://127.0.0.1:{port}",
            database,
            {"Authorization": f"Bearer {keys['admin']}"},
            {"Authorization": f"Bearer {keys['agent']}"},
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _seed(live: Live) -> int:
    """The fleet the requests aim at; the id of the agent's book."""
    import httpx

    with httpx.Client(base_url=live.url, headers=live.headers, timeout=30) as client:
        for serial in (SERIAL, BOOK_SERIAL):
            body = {"serial": serial, "key": KEY, "starting_code": STARTING_CODE}
            assert client.post("/devices", json={**body, "hardware_model": "M1"}).status_code == 201
        client.put("/tariffs/M1", json={"price_per_day": "1", "currency": "USD"})
        payment = {"provider": "p", "transaction_id": "t1", "amount": "5", "currency": "USD"}
        assert client.post("/payments", json={**payment, "account": "nobody"}).status_code == 202
        keys = client.get("/api-keys").json()["api_keys"]
        agent = next(k["id"] for k in keys if k["role"] == "agent")
        book = {
            "agent_key_id": agent,
            "serials": [BOOK_SERIAL],
            "steps": 2,
            "menu": [1, 7],
            "value_cap_days": 100,
            "expires_at": "2030-01-20T12:00:00Z",
        }
        made = client.post("/books", json=book)
        assert made.status_code == 201, made.text
        return int(made.json()["id"])


def test_no_request_gives_a_5xx_nor_a_change_when_refused(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    book_id = _seed(live)
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    seen: dict[str, int] = {}
    caplog.set_level(logging.ERROR, logger="paygkit.server")
    # The agent first: the admin's pass may close or expire the book.
    as_agent: dict[str, int] = {}
    _fuzz(live, schema, live.agent, as_agent, book_id, AGENT_EXAMPLES, only="/books")
    assert as_agent.get("2xx", 0) > 0
    assert as_agent.get("4xx", 0) > 0
    _fuzz(live, schema, live.headers, seen, book_id, EXAMPLES)

    # Nothing reached the database unchecked (api.data_error logs it when it does).
    assert not [r for r in caplog.records if "unchecked" in r.getMessage()]
    assert seen.get("2xx", 0) > 0
    assert seen.get("4xx", 0) > 0


def _fuzz(
    live: Live,
    schema: Any,
    headers: dict[str, str],
    seen: dict[str, int],
    book_id: int,
    examples: int,
    only: str | None = None,
) -> None:
    """Every operation (whose path starts with `only`) with `headers`, in both modes."""
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is not None and not operation.path.startswith(only):
            continue
        for mode in schemathesis.GenerationMode:

            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), known=st.booleans())
            def check(case: Any, known: bool) -> None:
                # Half the time the path names things that exist, to get past a 404.
                if known and case.path_parameters:
                    for name in case.path_parameters:
                        if name == "serial":
                            case.path_parameters[name] = SERIAL
                        elif name in ("payment_id", "report_id"):
                            case.path_parameters[name] = 1
                        elif name == "book_id":
                            case.path_parameters[name] = book_id
                before = snapshot(live.db)
                response = case.call(base_url=live.url, headers=headers, timeout=60)
                status = response.status_code
                seen[f"{status // 100}xx"] = seen.get(f"{status // 100}xx", 0) + 1
                assert status < 500, (case.method, case.formatted_path, response.text[:500])
                if 400 <= status < 500:
                    assert snapshot(live.db) == before, (case.method, case.formatted_path, status)

            try:
                check()
            except Unsatisfiable:
                # Nothing to make invalid (an operation without parameters or body).
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
