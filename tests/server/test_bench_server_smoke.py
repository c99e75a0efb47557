"""The server benchmark runs and reports its cases; no timing is checked here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_server.py"


def test_quick_server_benchmark_reports_its_cases(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-fail", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    cases = {case["case"]: case for case in json.loads(report.read_text())["cases"]}
    assert "sqlite" in cases
    assert cases["sqlite"]["tokens"] == 100
