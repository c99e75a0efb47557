"""The server benchmark runs and reports its cases; no timing is checked here.

`--quick` sends a fixed number of requests however long they take, so the
counts checked here hold on a machine of any speed, however busy.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_server.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_server_under_test", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_server_benchmark_reports_its_cases(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    cases = {case["case"]: case for case in json.loads(report.read_text())["cases"]}
    assert "sqlite" in cases
    assert cases["sqlite"]["tokens"] == 100
    assert cases["sqlite"]["ratio"] > 0  # the figure against its target


def test_quick_run_on_a_very_slow_machine_still_sends_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clock that moves ten seconds at every look: each request seems to take ages."""
    bench = load_bench()
    ticks = itertools.count()
    monkeypatch.setattr(bench, "time", SimpleNamespace(monotonic=lambda: 10.0 * next(ticks)))
    report = tmp_path / "bench.json"
    status = bench.main(["--quick", "--no-postgres", "--fail-on-targets", "--json", str(report)])
    assert status == 0  # far below the target, but --quick enforces none
    [case] = json.loads(report.read_text())["cases"]
    assert case["tokens"] == 100
    assert case["pass"] is False
