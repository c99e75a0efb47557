"""Start and stop token-server processes on loopback (tests, benchmarks, scale-out trials).

Several processes against one PostgreSQL is how paygkit scales past one
machine, so the concurrency test and the throughput benchmark both need real
server processes; this is the one way they start them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

from paygkit.server.crypto import Keyring

_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def start_server_processes(
    database_url: str, keyring: Keyring, count: int, *, startup_timeout: float = 60.0
) -> tuple[list[subprocess.Popen[str]], list[int]]:
    """`count` uvicorn processes serving the API on 127.0.0.1, and the port of each.

    Each process picks a free port itself; the port is read from its log.
    """
    env = {
        **os.environ,
        "PAYGKIT_DATABASE_URL": database_url,
        "PAYGKIT_MASTER_KEY": ",".join(f"{v}:{k.hex()}" for v, k in keyring.keys.items()),
    }
    return start_uvicorn_processes(
        ["--factory", "paygkit.server.app:create_app_from_env"],
        count,
        env=env,
        startup_timeout=startup_timeout,
    )


def start_uvicorn_processes(
    app: list[str],
    count: int,
    *,
    env: dict[str, str] | None = None,
    startup_timeout: float = 60.0,
) -> tuple[list[subprocess.Popen[str]], list[int]]:
    """`count` uvicorn processes serving `app` (uvicorn's arguments naming it) on
    127.0.0.1, each on a free port it picks itself, and the port of each."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        *app,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-access-log",
        "--log-level",
        "info",
    ]
    processes = [
        subprocess.Popen(
            command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        for _ in range(count)
    ]
    ports = []
    deadline = time.monotonic() + startup_timeout
    for process in processes:
        assert process.stderr is not None
        seen = []
        while True:
            line = process.stderr.readline()
            seen.append(line)
            match = _RUNNING.search(line)
            if match:
                ports.append(int(match.group(1)))
                break
            if not line or time.monotonic() > deadline:
                stop_server_processes(processes)
                raise RuntimeError("a server process did not start:\n" + "".join(seen))
        # Keep draining its log so the pipe never fills and blocks the server.
        threading.Thread(target=process.stderr.read, daemon=True).start()
    return processes, ports


def stop_server_processes(processes: list[subprocess.Popen[str]]) -> None:
    """Terminate the processes, killing any that do not stop within 15 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
