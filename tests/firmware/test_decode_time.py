"""The decode benchmark on the emulated Cortex-M0 (`make -C firmware decode-bench`).

Runs scripts/firmware_decode_time.py, which builds firmware/boards/microbit/decode_bench.c and
boots it twice in QEMU with -icount shift=0.  The hash steps must be exactly what the window
rule gives (the decoder walks the chain from count 0 to the matched count, or to the end of
the window); the instruction counts are only checked for being sane and growing with the
count, never against a time, so the test holds on any host.  Skipped without the ARM
toolchain or QEMU, unless PAYGKIT_REQUIRE_FIRMWARE=1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paygkit.token import DecodeWindows
from tests.firmware import qemu

SCRIPT = qemu.ROOT / "scripts" / "firmware_decode_time.py"
COUNTS = (10, 1000, 10000)
INVALID = 5  # PGK_INVALID
ADD_TIME = 0  # PGK_ADD_TIME: the valid token is at an even count


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    qemu.require_tools()
    build = tmp_path_factory.mktemp("decode-bench")
    # Two runs: the script fails unless icount made them print the same numbers.
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--build", str(build), "--runs", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=qemu.BUILD_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def decodes(report: dict[str, Any], case: str) -> list[dict[str, Any]]:
    found = [d for d in report["decodes"] if d["case"] == case]
    assert [d["last_count"] for d in found] == list(COUNTS)
    return found


def test_hash_steps_follow_the_window_rule(report: dict[str, Any]) -> None:
    windows = DecodeWindows()
    # No match: counts 0 .. N + window are each compared, with a hash between
    # two of them, so one hash fewer than counts compared.
    for d in decodes(report, "invalid"):
        assert (d["kind"], d["steps"]) == (INVALID, d["last_count"] + windows.forward)
    for d in decodes(report, "sync"):
        assert (d["kind"], d["steps"]) == (INVALID, d["last_count"] + windows.counter_sync)
    # Accepted at count N + 2: the hashes that reach it.
    for d in decodes(report, "valid"):
        assert (d["kind"], d["count"]) == (ADD_TIME, d["last_count"] + 2)
        assert d["steps"] == d["last_count"] + 2


def test_instructions_are_positive_and_grow_with_the_count(report: dict[str, Any]) -> None:
    for case in ("invalid", "sync", "valid"):
        found = decodes(report, case)
        instructions = [d["instructions"] for d in found]
        assert instructions[0] > 0
        assert instructions == sorted(instructions)
        assert len(set(instructions)) == len(COUNTS)
    assert report["step_instructions"] > 0


def test_cycle_model_traced_whole_steps(report: dict[str, Any]) -> None:
    model = report["cycle_model"]
    assert model["steps"] > 0
    assert model["instructions"] > 0
    # Every instruction costs a cycle at least, some more (loads, branches).
    assert model["cycles"] > model["instructions"]


def test_make_target_prints_the_table(report: dict[str, Any], tmp_path: Path) -> None:
    run = subprocess.run(
        ["make", "-C", str(qemu.FIRMWARE), "--no-print-directory", f"BUILD={tmp_path}",
         f"PYTHON={sys.executable}", "decode-bench"],
        capture_output=True,
        text=True,
        timeout=qemu.BUILD_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "s@16MHz" in run.stdout, run.stdout
    assert "10000 invalid   10064" in run.stdout, run.stdout
