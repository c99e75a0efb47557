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

pytestmark = pytest.mark.first_pass_only(
    reason="the server benchmark's script, whatever engine issues the tokens"
)

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
    for name in ("sqlite-1", "sqlite-16"):
        assert cases[name]["tokens"] == 100
        assert cases[name]["p99_ms"] >= cases[name]["p50_ms"] > 0
        # The floor is measured in the same run (its CPU may round to 0 in a quick run).
        assert cases[name]["floor_tokens_per_s"] > 0
        assert cases[name]["floor_cpu_ms_per_token"] >= 0
        # So is the framework floor, the same route with nothing behind it.
        assert cases[name]["framework_requests_per_s"] > 0
        assert cases[name]["framework_cpu_ms_per_request"] >= 0


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
    cases = json.loads(report.read_text())["cases"]
    assert [case["clients"] for case in cases] == [1, 16]
    for case in cases:
        assert case["tokens"] == 100
        assert case["pass"] is False  # each request "took" ten seconds
