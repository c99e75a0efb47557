"""Benchmark of the factory: making, writing, reading and encrypting a batch of devices.

    .venv/bin/python benchmarks/bench_factory.py [--devices N] [--quick] [--json PATH]

Times, for N devices (default 100,000): `make_batch` without and with a
9-digit test code (checked against every token of counts 0..1001 of each
device), the CSV and JSON writers, the strict reader, and AES-256-GCM sealing
and opening with the default scrypt parameters.  There are no targets: the
numbers are for the README and for noticing a regression by eye.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paygkit.factory.batch import BatchSpec, make_batch
from paygkit.factory.devicelist import (
    device_list_csv,
    device_list_json,
    parse_device_list,
)
from paygkit.factory.sealed import Content, seal, unseal
from paygkit.token import default_backend


def timed(name: str, results: dict[str, float], work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = work()
    results[name] = time.perf_counter() - started
    print(f"{name:<34} {results[name]:8.3f} s", flush=True)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="1,000 devices")
    parser.add_argument("--json", type=Path, help="also write the timings here")
    args = parser.parse_args(argv)
    n = 1000 if args.quick else args.devices
    print(f"paygkit factory, {n:,} devices, backend {default_backend().name}, "
          f"Python {platform.python_version()}")  # fmt: skip
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory) / "serials.json"
        timed(
            "make_batch (no test code)",
            results,
            lambda: make_batch(BatchSpec(n, "BENCH"), state_file=state),
        )
        batch = timed(
            "make_batch (9-digit test code)",
            results,
            lambda: make_batch(BatchSpec(n, "BENCH", test_code="123456789"), state_file=state),
        )
    records = batch.records
    text = timed("write CSV", results, lambda: device_list_csv(records))
    document = timed("write JSON", results, lambda: device_list_json(records))
    report = timed("read CSV (strict)", results, lambda: parse_device_list(text))
    timed("read JSON (strict)", results, lambda: parse_device_list(document))
    data = text.encode()
    sealed = timed(
        "seal CSV (scrypt 2^17 + AES-GCM)",
        results,
        lambda: seal(data, Content.CSV, password="benchmark passphrase"),
    )
    opened = timed(
        "open CSV (scrypt 2^17 + AES-GCM)",
        results,
        lambda: unseal(sealed, password="benchmark passphrase"),
    )
    if not report.ok or len(report.records) != n or opened.data != data:
        print("error: the round trip lost devices", file=sys.stderr)
        return 2
    print(f"{batch.redrawn} device(s) redrawn to avoid the test code; CSV {len(data):,} bytes")
    if args.json is not None:
        args.json.write_text(json.dumps({"devices": n, "seconds": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
