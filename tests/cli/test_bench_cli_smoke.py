"""The start-up benchmark runs its cases against its references; no timing is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cli.py"


def test_quick_cli_benchmark_reports_each_case_against_its_reference(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--fail-on-targets", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr  # --quick enforces no target
    data = json.loads(report.read_text())
    cases = {case["case"]: case for case in data["cases"]}
    assert set(cases) == {"paygkit_help", "paygkit_token_generate", "import_paygkit_token"}
    for case in cases.values():
        assert case["cpu_ms"] >= 0
        assert case["reference_cpu_ms"] >= 0
    assert data["minimal_typer_help"]["cpu_ms"] >= 0
    assert data["minimal_typer_command"]["cpu_ms"] >= 0
