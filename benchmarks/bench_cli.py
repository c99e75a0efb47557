"""Start-up of the `paygkit` command line, against typer and rich alone, in the same run.

Each case runs a command as a new process several times and takes the median
CPU time (user + system, from the children's resource usage) and wall time.
The references run the same way in the same run: `python -c "import typer,
rich"` (what any typer command costs before it does anything), a minimal
two-command typer app's `--help` (typer's own help rendering), and `python -c
pass` (the interpreter alone, subtracted for the import of paygkit.token).

    .venv/bin/python benchmarks/bench_cli.py [--quick] [--fail-on-targets] [--json PATH]

Targets: `paygkit --help` and `paygkit token generate ...` at most 1.5x the CPU
time of importing typer and rich; `import paygkit.token` at most 40 ms above
the bare interpreter.  Exit status: 0, or 2 when a command fails (never
excused); with --fail-on-targets (not with --quick), 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PYTHON = sys.executable
PAYGKIT = [PYTHON, "-m", "paygkit"]
# The published test device: not a secret.
GENERATE = [
    "token",
    "generate",
    "--key",
    "bc41ec9530f6dac86b1a29ab82edc5fb",
    "--starting-code",
    "516959010",
    "--count",
    "1",
    "--days",
    "1",
]
MINIMAL_TYPER_APP = """
import typer
app = typer.Typer()
@app.command()
def first(x: int = 1) -> None:
    "The first command."
@app.command()
def second(x: int = 1) -> None:
    "The second command."
app()
"""
COMMAND_TARGET = 1.5  # x the import of typer and rich
IMPORT_TARGET_MS = 40.0


class CommandFailedError(Exception):
    pass


def measure(command: list[str], runs: int) -> dict[str, float]:
    """Median CPU and wall milliseconds of `command` run `runs` times (after one unmeasured)."""
    cpu: list[float] = []
    wall: list[float] = []
    for number in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, check=False)
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise CommandFailedError(
                f"{' '.join(command)} exited {done.returncode}: {done.stderr[-300:]!r}"
            )
        if number:  # the first run warms the file cache
            cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
            wall.append(elapsed * 1000)
    return {
        "cpu_ms": round(statistics.median(cpu), 1),
        "wall_ms": round(statistics.median(wall), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="3 runs per case; targets not enforced"
    )
    parser.add_argument("--fail-on-targets", action="store_true", help="exit 1 on a missed target")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 15
    console = Console(highlight=False)
    try:
        typer_rich = measure([PYTHON, "-c", "import typer, rich"], runs)
        minimal_help = measure([PYTHON, "-c", MINIMAL_TYPER_APP, "--help"], runs)
        minimal_run = measure([PYTHON, "-c", MINIMAL_TYPER_APP, "first", "--x", "3"], runs)
        bare = measure([PYTHON, "-c", "pass"], runs)
        token_import = measure([PYTHON, "-c", "import paygkit.token"], runs)
        help_run = measure([*PAYGKIT, "--help"], runs)
        generate_run = measure([*PAYGKIT, *GENERATE], runs)
    except CommandFailedError as error:
        console.print(f"[red]command failed[/]: {error}")
        return 2
    cases: list[dict[str, Any]] = []
    runs_and_floors = (
        ("paygkit_help", help_run, minimal_help),
        ("paygkit_token_generate", generate_run, minimal_run),
    )
    for name, result, minimal in runs_and_floors:
        ratio = round(result["cpu_ms"] / typer_rich["cpu_ms"], 2) if typer_rich["cpu_ms"] else None
        cases.append(
            {
                "case": name,
                **result,
                "reference": "import typer, rich",
                "reference_cpu_ms": typer_rich["cpu_ms"],
                "ratio": ratio,
                # The same typer work in a minimal app: its --help, or one command with
                # an int option run.
                "of_minimal_typer_app": (
                    round(result["cpu_ms"] / minimal["cpu_ms"], 2) if minimal["cpu_ms"] else None
                ),
                "target": f"<= {COMMAND_TARGET}x",
                "pass": ratio is not None and ratio <= COMMAND_TARGET,
            }
        )
    import_ms = round(token_import["cpu_ms"] - bare["cpu_ms"], 1)
    cases.append(
        {
            "case": "import_paygkit_token",
            **token_import,
            "reference": "python -c pass",
            "reference_cpu_ms": bare["cpu_ms"],
            "above_reference_ms": import_ms,
            "target": f"<= {IMPORT_TARGET_MS:.0f} ms above",
            "pass": import_ms <= IMPORT_TARGET_MS,
        }
    )
    enforce = args.fail_on_targets and not args.quick
    table = Table(title="paygkit command line: start-up (median CPU of new processes)")
    for column in ("case", "CPU ms", "wall ms", "reference", "ref CPU ms", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("case", "reference") else "right")
    table.add_column("result")
    for case in cases:
        ratio = case.get("ratio")
        shown = f"{ratio:.2f}x" if ratio is not None else f"+{case['above_reference_ms']:.1f} ms"
        verdict = (
            "[green]PASS[/green]"
            if case["pass"]
            else ("[red]FAIL[/red]" if enforce else "[yellow]missed[/yellow]")
        )
        table.add_row(
            case["case"],
            f"{case['cpu_ms']:.0f}",
            f"{case['wall_ms']:.0f}",
            case["reference"],
            f"{case['reference_cpu_ms']:.0f}",
            shown,
            case["target"],
            verdict,
        )
    console.print(table)
    console.print(
        f"a minimal two-command typer app's --help: {minimal_help['cpu_ms']:.0f} ms CPU "
        f"({minimal_help['cpu_ms'] / typer_rich['cpu_ms']:.2f}x the import of typer and rich): "
        "typer's own help rendering, the least a typer --help costs"
        if typer_rich["cpu_ms"]
        else ""
    )
    console.print(
        f"a minimal typer app running one command with an int option: "
        f"{minimal_run['cpu_ms']:.0f} ms CPU "
        f"({minimal_run['cpu_ms'] / typer_rich['cpu_ms']:.2f}x the import of typer and rich): "
        "typer's own parsing, the least a typer command costs"
        if typer_rich["cpu_ms"]
        else ""
    )
    console.print(
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cases": cases,
                    "minimal_typer_help": minimal_help,
                    "minimal_typer_command": minimal_run,
                    "quick": args.quick,
                },
                indent=2,
            )
        )
    missed = [case["case"] for case in cases if not case["pass"]]
    return 1 if missed and enforce else 0


if __name__ == "__main__":
    sys.exit(main())
