"""50 simultaneous issues for one device across several server processes.

The servers are real uvicorn processes on 127.0.0.1 (ephemeral ports) sharing
one database; every request goes to loopback and the test is bounded in time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from paygkit.device.firmware import OutcomeKind
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.processes import start_server_processes, stop_server_processes
from tests.server.conftest import KEY, STARTING_CODE, make_keys, simulated_device

PROCESSES = 3
REQUESTS = 50


@pytest.fixture
def servers(database_url: str, keyring: Keyring) -> Iterator[tuple[list[int], dict[str, str]]]:
    db = Database(database_url)
    import datetime as dt

    keys = make_keys(db, dt.datetime.now(dt.UTC))
    db.dispose()
    processes, ports = start_server_processes(database_url, keyring, PROCESSES)
    try:
        yield ports, keys
    finally:
        stop_server_processes(processes)


def test_50_simultaneous_issues_across_processes_get_distinct_counts(
    servers: tuple[list[int], dict[str, str]],
) -> None:
    ports, keys = servers
    headers = {"Authorization": f"Bearer {keys['operator']}"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    created = httpx.post(
        f"http://127.0.0.1:{ports[0]}/devices",
        json={"serial": "TEST220000001", "key": KEY, "starting_code": STARTING_CODE},
        headers=admin,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    barrier = threading.Barrier(REQUESTS, timeout=30)

    def one(number: int) -> dict[str, Any]:
        port = ports[number % len(ports)]
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            response = client.post(
                f"http://127.0.0.1:{port}/devices/TEST220000001/tokens",
                json={"type": "add_days", "days": 1 + number % 3},
                headers={**headers, "Idempotency-Key": f"req-{number}"},
            )
        assert response.status_code == 201, response.text
        token: dict[str, Any] = response.json()["tokens"][0]
        return token

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        made = list(pool.map(one, range(REQUESTS)))
    assert time.monotonic() - started < 60
    counts = sorted(t["count"] for t in made)
    assert counts == list(range(2, 2 * REQUESTS + 1, 2))  # 50 distinct counts, no gap
    history = httpx.get(
        f"http://127.0.0.1:{ports[1]}/devices/TEST220000001/tokens",
        params={"limit": 1000},
        headers=headers,
        timeout=30,
    ).json()["tokens"]
    assert sorted(t["count"] for t in history) == counts
    device = httpx.get(
        f"http://127.0.0.1:{ports[2]}/devices/TEST220000001", headers=headers, timeout=30
    ).json()
    assert device["last_count_issued"] == 2 * REQUESTS
    assert device["active_until"] is not None

    simulator = simulated_device()
    for token in sorted(made, key=lambda t: t["count"]):
        outcome = simulator.enter_token(token["digits"])
        assert outcome.kind is OutcomeKind.APPLIED, (token, outcome)
    assert simulator.status().count == 2 * REQUESTS
    total_days = sum(1 + n % 3 for n in range(REQUESTS))
    assert simulator.status().seconds_left == total_days * 86400


def test_concurrent_retries_and_payment_replays_across_processes_issue_once(
    servers: tuple[list[int], dict[str, str]],
) -> None:
    ports, keys = servers
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    base = f"http://127.0.0.1:{ports[0]}"
    created = httpx.post(
        f"{base}/devices",
        json={"serial": "TEST220000001", "key": KEY, "starting_code": STARTING_CODE},
        headers=admin,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    tariff = httpx.patch(
        f"{base}/devices/TEST220000001",
        json={"price_per_day": "10", "currency": "KES"},
        headers=admin,
        timeout=30,
    )
    assert tariff.status_code == 200, tariff.text
    parallel = 10
    barrier = threading.Barrier(parallel, timeout=30)

    def retry(number: int) -> Any:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(
                f"http://127.0.0.1:{ports[number % len(ports)]}/devices/TEST220000001/tokens",
                json={"type": "add_days", "days": 2},
                headers={**admin, "Idempotency-Key": "the-same-request"},
            )

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        answers = list(pool.map(retry, range(parallel)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["tokens"][0]["digits"] for a in answers}) == 1
    assert sum(not a.json()["replayed"] for a in answers) == 1

    barrier = threading.Barrier(parallel, timeout=30)

    def pay(number: int) -> Any:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(
                f"http://127.0.0.1:{ports[number % len(ports)]}/payments",
                json={
                    "provider": "mpesa",
                    "transaction_id": "QX1",
                    "serial": "TEST220000001",
                    "amount": "30",
                    "currency": "KES",
                },
                headers=admin,
            )

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        payments = list(pool.map(pay, range(parallel)))
    assert sorted(p.status_code for p in payments) == [200] * (parallel - 1) + [201]
    assert len({p.json()["tokens"][0]["digits"] for p in payments}) == 1
    history = httpx.get(f"{base}/devices/TEST220000001/tokens", headers=admin, timeout=30).json()
    assert [(t["count"], t["units"]) for t in history["tokens"]] == [(4, 3), (2, 2)]
