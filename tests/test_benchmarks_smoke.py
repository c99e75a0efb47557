"""The benchmark script runs and reports every case.

Only that it works is checked here, never how fast anything is: timings depend
on the machine, and the targets are enforced by `make bench`, not by tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_token.py"
CASES = {
    "generate_c",
    "decode_invalid_c",
    "bulk_threads2",
    "bulk_threads1",
    "bulk_kernel_threads2",
    "generate_python",
    "decode_invalid_python",
}


@pytest.mark.oracle
def test_quick_benchmark_reports_every_case(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-fail", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Exit 2 would mean paygkit's tokens differ from the reference's.
    assert run.returncode == 0, run.stdout + run.stderr

    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["meta"]["mode"] == "quick"
    cases = {case["name"]: case for case in document["cases"]}
    assert set(cases) == CASES
    for name, case in cases.items():
        for field in ("paygkit_s", "reference_s", "paygkit_median_s", "reference_median_s"):
            assert case[field] > 0, (name, field, case[field])
        assert case["passed"] in (True, False, None), name
