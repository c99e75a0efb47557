"""Token issue over HTTP on SQLite and PostgreSQL, against a raw-driver floor.

Starts real uvicorn server processes on 127.0.0.1 (ephemeral ports) over a
fresh database with its durable settings (SQLite: WAL, synchronous=FULL;
PostgreSQL: synchronous_commit=on), then a load generator in this process
(asyncio, plain keep-alive HTTP/1.1) POSTs `add_days` token requests spread
over many devices, first from 1 client, then from 16 at once, each for a fixed
time (`--quick`: a fixed number of requests, however long they take, so that
the smoke test depends on no machine's speed).  Every answer must be 201 with
a token; the run then checks that the counts issued per device are distinct
and gapless.

Measured per case: tokens/s, latency (p50, p99), and the server processes'
CPU time per token (user + system, from /proc).  The floor is the same work
the issue path asks of the database, done by the raw driver (sqlite3 /
psycopg) in this process on the same schema: BEGIN, the locking SELECT of the
device and its tenant, INSERT of the token, UPDATE of the device, INSERT of
the audit entry, COMMIT; its CPU per token is the reference each server
figure is divided by.  The framework floor (framework_floor.py) is the same
route in a bare FastAPI app under the same uvicorn, with the same hand-over to
a thread and an answer of the same shape, but no database and no token: its
CPU per request, measured at each number of clients, is what any server built
on this stack pays before doing any work, and a case's CPU above it is what
paygkit's own issue path costs.

    .venv/bin/python benchmarks/bench_server.py [--quick] [--fail-on-targets] [--json PATH]
        [--seconds S] [--sqlite-workers N] [--pg-workers N] [--clients 1,16] [--no-postgres]

Targets: at most 1 ms of server CPU per token (every case), p99 under 50 ms
at 16 clients, and at least 500 tokens/s on SQLite at 16 clients, on a 2-core
machine.  Exit status: 0, or 2 on a wrong answer (never excused); with
--fail-on-targets (not with --quick), 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import Role
from paygkit.server.pgtemp import PostgresUnavailableError, TemporaryPostgres
from paygkit.server.processes import (
    start_server_processes,
    start_uvicorn_processes,
    stop_server_processes,
)
from paygkit.server.services import access, devices
from paygkit.token import derive_starting_code

CPU_TARGET_MS = 1.0  # server CPU per issued token, every case
P99_TARGET_MS = 50.0  # at 16 clients
SQLITE_TARGET = 500.0  # tokens/s at 16 clients
BUSY_CLIENTS = 16
DEVICES = 200
QUICK_REQUESTS = 100  # --quick: exactly this many timed requests, however long they take
FLOOR_TRANSACTIONS = 2000
QUICK_FLOOR_TRANSACTIONS = 100


class WrongAnswerError(Exception):
    pass


def prepare(url: str, keyring: Keyring, device_count: int) -> str:
    """Migrate, make an operator key and the devices; the key."""
    db = Database(url)
    db.migrate()
    now = dt.datetime.now(dt.UTC)
    with db.write() as session:
        actor = access.local_actor(session, "default", now)
        key = access.create_api_key(session, actor, Role.OPERATOR, "bench", now).key
        for number in range(device_count):
            raw = (number + 1).to_bytes(16, "big")
            devices.create_device(
                session,
                actor,
                keyring,
                devices.DeviceInput(
                    serial=f"BENCH{number:06d}",
                    key=raw.hex(),
                    starting_code=derive_starting_code(raw),
                ),
                now,
                audit_it=False,
            )
    db.dispose()
    return key


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU time of the processes so far (Linux /proc; None elsewhere)."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def _connection(
    port: int,
    key: str,
    serials: list[str],
    stop_at: float | None,
    max_requests: int,
    results: list[tuple[str, int]],
    latencies: list[float],
    counter: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"type":"add_days","days":1}'
    try:
        while (stop_at is None or time.monotonic() < stop_at) and counter[0] < max_requests:
            number = counter[0]
            counter[0] += 1
            serial = serials[number % len(serials)]
            sent = time.monotonic()
            writer.write(
                (
                    f"POST /devices/{serial}/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            answer = await reader.readexactly(length)
            latencies.append(time.monotonic() - sent)
            if status != 201:
                raise WrongAnswerError(f"HTTP {status}: {answer[:300]!r}")
            token = json.loads(answer)["tokens"][0]
            results.append((serial, token["count"]))
    finally:
        writer.close()


async def _load(
    ports: list[int], key: str, seconds: float | None, clients: int, max_requests: int
) -> tuple[list[tuple[str, int]], list[float], float]:
    """Requests until `seconds` have passed (None: no time limit) or `max_requests` were sent."""
    serials = [f"BENCH{n:06d}" for n in range(DEVICES)]
    results: list[tuple[str, int]] = []
    latencies: list[float] = []
    counter = [0]
    started = time.monotonic()
    await asyncio.gather(
        *(
            _connection(
                ports[n % len(ports)],
                key,
                serials,
                None if seconds is None else started + seconds,
                max_requests,
                results,
                latencies,
                counter,
            )
            for n in range(clients)
        )
    )
    return results, latencies, time.monotonic() - started


def _warm_then_measure(
    ports: list[int],
    key: str,
    pids: Sequence[int],
    seconds: float | None,
    clients: int,
    max_requests: int,
) -> tuple[list[tuple[str, int]], tuple[list[tuple[str, int]], list[float], float], float | None]:
    """A warm-up, then the timed load: the warm-up's answers, the load's (answers,
    latencies, seconds), and the processes' CPU ms per answer (None where unknown)."""
    # Warm-up, not timed: a second of requests, or (quick) one per client.
    warm_up = (None, clients) if seconds is None else (1.0, 200)
    warm, _, _ = asyncio.run(_load(ports, key, warm_up[0], clients, warm_up[1]))
    cpu_before = cpu_seconds(pids)
    load = asyncio.run(_load(ports, key, seconds, clients, max_requests))
    cpu_after = cpu_seconds(pids)
    answers = load[0]
    cpu_ms = (
        None
        if cpu_before is None or cpu_after is None or not answers
        else round((cpu_after - cpu_before) * 1000 / len(answers), 3)
    )
    return warm, load, cpu_ms


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def check(results: list[tuple[str, int]]) -> None:
    per_device: dict[str, list[int]] = defaultdict(list)
    for serial, count in results:
        per_device[serial].append(count)
    for serial, counts in per_device.items():
        if sorted(counts) != list(range(2, 2 * len(counts) + 1, 2)):
            raise WrongAnswerError(f"{serial}: counts not distinct and gapless")


def run_cases(
    database: str,
    url: str,
    workers: int,
    seconds: float | None,
    client_counts: Sequence[int],
    max_requests: int,
    floor: Callable[[str], dict[str, float]],
) -> list[dict[str, Any]]:
    """The server cases of one database (one per number of clients), then its floor."""
    keyring = Keyring.generate()
    key = prepare(url, keyring, DEVICES)
    processes, ports = start_server_processes(url, keyring, workers)
    pids = [p.pid for p in processes]
    cases = []
    issued: list[tuple[str, int]] = []
    try:
        for clients in client_counts:
            warm, (results, latencies, elapsed), cpu_ms = _warm_then_measure(
                ports, key, pids, seconds, clients, max_requests
            )
            issued += warm + results
            cases.append(
                {
                    "case": f"{database}-{clients}",
                    "database": database,
                    "workers": workers,
                    "clients": clients,
                    "tokens": len(results),
                    "seconds": round(elapsed, 3),
                    "tokens_per_s": round(len(results) / elapsed, 1) if elapsed > 0 else 0.0,
                    "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
                    "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                    "cpu_ms_per_token": cpu_ms,
                }
            )
    finally:
        stop_server_processes(processes)
    check(issued)
    reference = floor(url)
    for case in cases:
        case["floor_cpu_ms_per_token"] = reference["cpu_ms_per_token"]
        case["floor_tokens_per_s"] = reference["tokens_per_s"]
        cpu = case["cpu_ms_per_token"]
        case["cpu_of_floor"] = (
            None
            if cpu is None or not reference["cpu_ms_per_token"]
            else round(cpu / reference["cpu_ms_per_token"], 1)
        )
    return cases


# -- the framework floor: the same route with nothing behind it -----------------------

_FRAMEWORK_APP = Path(__file__).resolve().parent / "framework_floor.py"


def framework_floor(
    seconds: float | None, client_counts: Sequence[int], max_requests: int
) -> dict[int, dict[str, float | None]]:
    """CPU per request and requests/s of framework_floor.py, per number of clients."""
    processes, (port,) = start_uvicorn_processes(
        ["--app-dir", str(_FRAMEWORK_APP.parent), f"{_FRAMEWORK_APP.stem}:app"], 1
    )
    (process,) = processes
    try:
        floors = {}
        for clients in client_counts:
            _warm, (results, _latencies, elapsed), cpu_ms = _warm_then_measure(
                [port], "unused", [process.pid], seconds, clients, max_requests
            )
            floors[clients] = {
                "cpu_ms_per_request": cpu_ms,
                "requests_per_s": round(len(results) / elapsed, 1) if elapsed > 0 else 0.0,
            }
        return floors
    finally:
        stop_server_processes([process])


# -- the floor: the issue path's statements through the raw driver --------------------

_SELECT_DEVICE = (
    "SELECT devices.*, tenants.name, tenants.webhook_url FROM devices "
    "JOIN tenants ON devices.tenant_id = tenants.id "
    "WHERE devices.tenant_id = {p} AND devices.serial = {p}"
)
_INSERT_TOKEN = (
    "INSERT INTO tokens (device_id, count, token_count, count_before, count_after, token_type,"
    " units, token, request_id, source, actor, api_key_id, payment_id, created_at)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) RETURNING id"
)
_UPDATE_DEVICE = (
    "UPDATE devices SET last_count_issued = {p}, active_until = {p}, furthest_until = {p},"
    " payg_enabled = {p}, updated_at = {p} WHERE id = {p}"
)
_INSERT_AUDIT = (
    "INSERT INTO audit_log (tenant_id, at, actor, api_key_id, action, target, details)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def _floor_transactions(
    execute: Callable[[str, tuple[Any, ...]], Any],
    begin: str,
    commit: Callable[[], None],
    placeholder: str,
    lock: str,
    now: Any,
    transactions: int,
) -> dict[str, float]:
    select_device = _SELECT_DEVICE.format(p=placeholder) + lock
    insert_token = _INSERT_TOKEN.format(p=placeholder)
    update_device = _UPDATE_DEVICE.format(p=placeholder)
    insert_audit = _INSERT_AUDIT.format(p=placeholder)
    details = json.dumps({"request": {"type": "add_days", "days": "1"}, "counts": [2]})
    counts: dict[str, int] = defaultdict(lambda: 1_000_000)
    cpu_before = os.times()
    started = time.monotonic()
    for number in range(transactions):
        serial = f"BENCH{number % DEVICES:06d}"
        execute(begin, ())
        device = execute(select_device, (1, serial)).fetchone()
        counts[serial] += 2
        execute(
            insert_token,
            (
                *(device[0], counts[serial], counts[serial], counts[serial] - 2, counts[serial]),
                *("add_time", 1, "123456789", f"{number:036d}", "api", "bench (key 1)", 1),
                None,
                now,
            ),
        ).fetchone()
        execute(update_device, (counts[serial], now, now, True, now, device[0]))
        execute(insert_audit, (1, now, "bench (key 1)", 1, "token.issue", serial, details))
        commit()
    elapsed = time.monotonic() - started
    cpu_after = os.times()
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "cpu_ms_per_token": round(cpu * 1000 / transactions, 3),
        "tokens_per_s": round(transactions / elapsed, 1) if elapsed > 0 else 0.0,
    }


def sqlite_floor(url: str, transactions: int) -> dict[str, float]:
    connection = sqlite3.connect(str(make_url(url).database), isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(" ")
    try:
        return _floor_transactions(
            connection.execute,
            "BEGIN IMMEDIATE",
            lambda: connection.execute("COMMIT") and None,
            "?",
            "",
            now,
            transactions,
        )
    finally:
        connection.close()


def postgres_floor(url: str, transactions: int) -> dict[str, float]:
    import psycopg

    parsed = make_url(url)
    connection = psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        options="-c synchronous_commit=on",
    )
    connection.autocommit = True
    try:
        return _floor_transactions(
            connection.execute,
            "BEGIN",
            lambda: connection.execute("COMMIT") and None,
            "%s",
            " FOR UPDATE OF devices",
            dt.datetime.now(dt.UTC),
            transactions,
        )
    finally:
        connection.close()


# -- the report ---------------------------------------------------------------------


def judge(case: dict[str, Any]) -> list[str]:
    """The targets `case` misses."""
    missed = []
    cpu = case["cpu_ms_per_token"]
    if cpu is not None and cpu > CPU_TARGET_MS:
        missed.append(f"CPU {cpu} ms/token > {CPU_TARGET_MS}")
    if case["clients"] >= BUSY_CLIENTS:
        if case["p99_ms"] >= P99_TARGET_MS:
            missed.append(f"p99 {case['p99_ms']} ms >= {P99_TARGET_MS}")
        if case["database"] == "sqlite" and case["tokens_per_s"] < SQLITE_TARGET:
            missed.append(f"{case['tokens_per_s']} tokens/s < {SQLITE_TARGET:.0f}")
    return missed


def report(console: Console, cases: list[dict[str, Any]], enforce: bool) -> list[str]:
    table = Table(title="paygkit server: token issue over HTTP (add_days, 200 devices)")
    columns = (
        "case",
        "processes",
        "clients",
        "tokens",
        "tokens/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/token",
        "floor CPU ms",
        "x floor",
        "floor tokens/s",
        "framework CPU ms",
        "result",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "result") else "right")
    missed_cases = []
    for case in cases:
        missed = judge(case)
        case["targets_missed"] = missed
        case["pass"] = not missed
        if missed:
            missed_cases.append(case["case"])
            verdict = "[red]FAIL[/red]" if enforce else "[yellow]missed[/yellow]"
        else:
            verdict = "[green]PASS[/green]"
        cpu = case["cpu_ms_per_token"]
        table.add_row(
            case["case"],
            str(case["workers"]),
            str(case["clients"]),
            str(case["tokens"]),
            f"{case['tokens_per_s']:.0f}",
            f"{case['p50_ms']:.1f}",
            f"{case['p99_ms']:.1f}",
            "—" if cpu is None else f"{cpu:.3f}",
            f"{case['floor_cpu_ms_per_token']:.3f}",
            "—" if case["cpu_of_floor"] is None else f"{case['cpu_of_floor']:.1f}x",
            f"{case['floor_tokens_per_s']:.0f}",
            _ms(case.get("framework_cpu_ms_per_request")),
            verdict,
        )
    console.print(table)
    for case in cases:
        for miss in case["targets_missed"]:
            console.print(f"{case['case']}: {miss}")
    console.print(
        f"targets: server CPU <= {CPU_TARGET_MS} ms/token; at {BUSY_CLIENTS} clients p99 < "
        f"{P99_TARGET_MS:.0f} ms, SQLite >= {SQLITE_TARGET:.0f} tokens/s. Floor: the same "
        "statements through the raw driver, one connection, in this process. Framework "
        "CPU: the same route in a bare FastAPI app under the same uvicorn, with the same "
        "thread hand-over and answer, no database (framework_floor.py)."
    )
    for case in cases:
        if case.get("cpu_above_framework_ms") is not None:
            console.print(
                f"{case['case']}: {case['cpu_above_framework_ms']:.3f} ms/token above the "
                f"framework's {case['framework_cpu_ms_per_request']:.3f} ms"
            )
    return missed_cases


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_REQUESTS} requests per case instead of a timed run; targets not enforced",
    )
    parser.add_argument(
        "--fail-on-targets",
        action="store_true",
        help="exit 1 when a target is missed (a missed target is otherwise only reported)",
    )
    # The default now; kept so that old command lines still work.
    parser.add_argument("--no-fail", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per case")
    parser.add_argument(
        "--sqlite-workers", type=int, default=1, help="server processes on SQLite (1 is fastest)"
    )
    parser.add_argument("--pg-workers", type=int, default=2, help="server processes on PostgreSQL")
    parser.add_argument(
        "--clients",
        default=f"1,{BUSY_CLIENTS}",
        help="numbers of concurrent clients, one case each (comma-separated)",
    )
    # Before the cases took client counts, one case of N connections.
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    if args.connections is not None:
        client_counts = [args.connections]
    else:
        try:
            client_counts = [int(part) for part in args.clients.split(",")]
        except ValueError:
            parser.error("--clients takes numbers separated by commas, e.g. 1,16")
        if not client_counts or min(client_counts) < 1:
            parser.error("--clients takes numbers of at least 1, e.g. 1,16")
    seconds = None if args.quick else args.seconds
    max_requests = QUICK_REQUESTS if args.quick else 10**9
    transactions = QUICK_FLOOR_TRANSACTIONS if args.quick else FLOOR_TRANSACTIONS
    console = Console(highlight=False)
    cases = []
    try:
        with tempfile.TemporaryDirectory(prefix="paygkit-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            cases += run_cases(
                "sqlite",
                url,
                args.sqlite_workers,
                seconds,
                client_counts,
                max_requests,
                lambda url: sqlite_floor(url, transactions),
            )
        if not args.no_postgres:
            try:
                with TemporaryPostgres() as pg:
                    url = pg.create_database("bench")
                    cases += run_cases(
                        "postgresql",
                        url,
                        args.pg_workers,
                        seconds,
                        client_counts,
                        max_requests,
                        lambda url: postgres_floor(url, transactions),
                    )
            except PostgresUnavailableError as error:
                console.print(f"[yellow]PostgreSQL skipped[/]: {error}")
        floors = framework_floor(seconds, client_counts, max_requests)
        for case in cases:
            floor = floors[case["clients"]]
            case["framework_cpu_ms_per_request"] = floor["cpu_ms_per_request"]
            case["framework_requests_per_s"] = floor["requests_per_s"]
            cpu, framework = case["cpu_ms_per_token"], floor["cpu_ms_per_request"]
            # CPU per token of several processes against one framework process: per token
            # either way, so the difference is the issue path's own.
            case["cpu_above_framework_ms"] = (
                None if cpu is None or framework is None else round(cpu - framework, 3)
            )
    except WrongAnswerError as error:
        console.print(f"[red]wrong answer[/]: {error}")
        return 2
    enforce = args.fail_on_targets and not args.quick
    missed = report(console, cases, enforce)
    if missed:
        note = "" if enforce else " (reported only: --fail-on-targets, without --quick, fails)"
        console.print(f"[red]targets missed[/]: {', '.join(missed)}{note}")
    console.print(
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cases": cases,
                    "cpus": os.cpu_count(),
                    "quick": args.quick,
                    "python": platform.python_version(),
                },
                indent=2,
            )
        )
    return 1 if missed and enforce else 0


if __name__ == "__main__":
    sys.exit(main())
