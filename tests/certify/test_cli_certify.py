"""`paygkit certify`: targets, parameters from options or the device list, reports, the
manual sheet, interactive runs, and the exit status (0 passed, 1 a case failed, 2 could
not start)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from paygkit.cli.main import app
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from tests.certify import faulty
from tests.reference import EXAMPLE_DEVICE_LIST

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
DEVICE = ["--key", KEY, "--starting-code", "516959010"]
REFERENCE_CSV = EXAMPLE_DEVICE_LIST
ENV: dict[str, str | None] = {"COLUMNS": "200", "PAYGKIT_KEY": None, "NO_COLOR": "1"}

runner = CliRunner()


def run(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["certify", *args], env={**ENV, **(env or {})}, input=stdin)


def assert_no_key(result: Result) -> None:
    for text in (result.stdout, result.stderr):
        assert KEY not in text
        assert KEY.upper() not in text


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    assert_no_key(result)
    return lines[0]


def test_the_simulator_passes_with_exit_status_0_and_writes_every_report(tmp_path: Path) -> None:
    html, junit, report = tmp_path / "r.html", tmp_path / "r.xml", tmp_path / "r.json"
    result = run(
        *DEVICE,
        "--divider", "4",
        "--report-html", str(html),
        "--junit", str(junit),
        "--json", str(report),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "starting from the count the device shows" in result.stdout
    assert "PASS G12  Late days are not counted" in result.stdout
    assert "PASS CS0" in result.stdout
    assert "PASS XO1" in result.stdout
    assert "PASSED: 42 passed, 0 failed, 3 skipped of 45 cases" in result.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is True
    seed = data["parameters"]["seed"]
    assert f"Random sequence seed {seed} (--seed {seed} replays it)" in result.stdout
    assert data["summary"]["failed"] == 0
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert "<h1>paygkit certification report</h1>" in html.read_text()
    for path in (html, junit, report):
        assert KEY not in path.read_text().lower()
        assert f"{path.name}" in result.stdout.replace("\n", "")
    assert_no_key(result)


def test_a_faulty_device_over_tcp_fails_with_exit_status_1_and_still_writes_reports(
    tmp_path: Path,
) -> None:
    sim = faulty.FaultySimulator(faulty.OlderAddAfterSet)
    report = tmp_path / "r.json"
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        result = run(*DEVICE, "--target", target, "--suite", "U", "--json", str(report))
    assert result.exit_code == 1, result.output
    assert "FAIL U2" in result.stdout
    assert "PASS U1" in result.stdout
    assert "FAILED: 2 passed, 1 failed, 0 skipped of 3 cases" in result.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is False
    assert data["target"] == target
    assert data["device"]["simulator"] == "0"


def test_a_real_device_skips_the_time_cases_and_says_why() -> None:
    sim = SimulatedDevice(RamMemory())
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        result = run(*DEVICE, "--target", target, "--suite", "G12,WP4")
    assert result.exit_code == 0, result.output
    assert "SKIP G12" in result.stdout
    assert "SKIPPED on a real device: needs time to pass (2 days)" in result.stdout
    assert "PASS WP4" in result.stdout


def test_interactive_asks_the_operator_who_may_skip(tmp_path: Path) -> None:
    sim = SimulatedDevice(RamMemory())
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        result = run(*DEVICE, "--target", target, "--suite", "G12", "--interactive", stdin="s\n")
    assert result.exit_code == 0, result.output
    assert "Operator: Let 48 hours pass with the device switched on." in result.stdout
    assert "Press Enter when done" in result.stdout
    assert "SKIP G12" in result.stdout
    assert "skipped by the operator at step 3" in result.stdout


def test_parameters_from_the_device_list(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = run(
        "--csv", str(REFERENCE_CSV), "--serial", "SLT220000001", "--suite", "RD,TD",
        "--json", str(report),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    parameters = json.loads(report.read_text())["parameters"]
    assert parameters["serial"] == "SLT220000001"
    assert (parameters["time_divider"], parameters["restricted_digits"]) == (4, True)
    assert "PASS RD1" in result.stdout
    assert "bc41ec9530f6dac86b1a29ab82edc5fb" not in result.output


def test_a_key_in_the_environment_does_not_clash_with_the_device_list() -> None:
    result = run(
        "--csv", str(REFERENCE_CSV), "--serial", "SLT240000002", "--suite", "G1",
        env={"PAYGKIT_KEY": KEY},
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_the_key_may_come_from_the_environment() -> None:
    result = run("--starting-code", "516959010", "--suite", "G2", env={"PAYGKIT_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert_no_key(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the device's parameters: --csv FILE --serial S, or --key"),
        (("--key", "abcd"), "32 hex characters"),
        ((*DEVICE, "--suite", "XY"), "'XY' is neither a suite"),
        (("--csv", str(REFERENCE_CSV)), "--csv needs --serial"),
        (("--csv", str(REFERENCE_CSV), "--serial", "NOPE1"), "'NOPE1' is not in"),
        (("--csv", str(REFERENCE_CSV), "--serial", "SLT220000001", "--key", KEY), "--key"),
        (("--csv", "/nonexistent/list.csv", "--serial", "A1"), "cannot read the device list"),
        ((*DEVICE, "--target", "tcp:127.0.0.1:1"), "cannot connect to tcp:127.0.0.1:1"),
        ((*DEVICE, "--target", "/nonexistent/tty"), "no such port"),
        ((*DEVICE, "--divider", "0"), "time divider"),
        ((*DEVICE, "--timeout", "0"), "--timeout"),
        ((*DEVICE, "--seed", "-1"), "the seed must be between 0 and 999999"),
        ((*DEVICE, "--sequence-length", "0"), "the sequence length must be between 1 and"),
    ],
)
def test_a_run_that_cannot_start_exits_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    line = one_line_error(run(*args))
    assert message in line


def test_a_device_at_another_count_than_the_count_given_is_refused_with_its_count() -> None:
    sim = SimulatedDevice(RamMemory())
    sim.provision(serial="SLT1", starting_code=516959010, key=bytes.fromhex(KEY), count=5)
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        line = one_line_error(run(*DEVICE, "--target", target, "--count", "1"))
        assert "at count 5, but the procedure starts at count 1" in line
        assert "--count 5" in line
        assert "leave --count out" in line
        assert run(*DEVICE, "--target", target, "--count", "5", "--suite", "G1").exit_code == 0


# --- issue 13: a wrong key stops the run; the count comes from the device ------------------


def test_a_wrong_key_stops_at_the_first_genuine_token_refused() -> None:
    wrong = "00112233445566778899aabbccddeeff"
    sim = SimulatedDevice(RamMemory())
    sim.provision(serial="SLT1", starting_code=516959010, key=bytes.fromhex(KEY), count=1)
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        result = run("--key", wrong, "--starting-code", "516959010", "--target", target)
    assert result.exit_code == 1, result.output
    failed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAIL ")}
    assert failed == {"G2"}, result.stdout  # not one per case (34 before)
    assert "Stopped: the device refused a genuine token (Set Time 1 day" in result.stdout
    assert "the key or the starting code is probably wrong" in result.stdout
    assert "not run: the run stopped at G2" in result.stdout
    assert wrong not in result.output


def test_a_certified_device_is_certified_again_from_the_count_it_shows(tmp_path: Path) -> None:
    sim = SimulatedDevice(RamMemory())
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        csv = ("--csv", str(REFERENCE_CSV), "--serial", "SLT240000002", "--target", target)
        first = run(*csv, "--suite", "G1,G2,U1")
        assert first.exit_code == 0, first.output
        left = sim.status().count
        assert left > 1
        assert f"The device is left at count {left}" in first.stdout
        # Again, as the operator would type it: no --count needed, none refused.
        report = tmp_path / "r.json"
        again = run(*csv, "--suite", "G1", "--json", str(report))
        assert again.exit_code == 0, again.output
        assert f"The device was at count {left} (read with STATUS)" in again.stdout
        assert json.loads(report.read_text())["parameters"]["starting_count"] == left
        # --count goes with --csv: the row holds the factory's count, not today's.
        now = sim.status().count
        given = run(*csv, "--suite", "G1", "--count", str(now))
        assert given.exit_code == 0, given.output
        assert f"the device must be at count {now}" in given.stdout


def test_list_shows_every_case_and_what_it_checks() -> None:
    result = run("--list")
    assert result.exit_code == 0, result.output
    for case_id in (
        "G1",
        "G4A",
        "G12",
        "U3",
        "WP3",
        "CS4",
        "RD2",
        "TD1",
        "EX1",
        "IN3",
        "XO1",
        "RS1",
    ):
        assert f"\n{case_id} " in result.stdout
    assert "late" in result.stdout.lower()


def test_manual_writes_the_sheet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*DEVICE, "--serial", "SLT9", "--manual")
    assert result.exit_code == 0, result.output
    assert "The device must be at count 1 when the operator starts" in result.stdout
    html = (tmp_path / "certification-sheet.html").read_text()
    sheet = (tmp_path / "certification-sheet.csv").read_text()
    assert "SLT9" in html
    assert "&#9744;" in html
    assert sheet.startswith("Case,Title,Step,Do,What,Keys to type,Expected,Pass,Fail,Notes")
    assert KEY not in html
    assert KEY not in sheet
    only_csv = run(*DEVICE, "--manual", "--suite", "G", "--sheet-csv", str(tmp_path / "g.csv"))
    assert only_csv.exit_code == 0
    assert "\nG12,Late days are not counted," in (tmp_path / "g.csv").read_text()
    assert "Sheet (HTML)" not in only_csv.stdout


def _rs1_tokens(report: Path) -> list[str]:
    rs1 = next(case for case in json.loads(report.read_text())["cases"] if case["id"] == "RS1")
    return [line for line in rs1["transcript"] if line.startswith("> TOKEN")]


def test_seed_replays_the_random_sequence_and_its_length_is_an_option(tmp_path: Path) -> None:
    first, again, other = (tmp_path / f"{name}.json" for name in ("first", "again", "other"))
    for path, seed, length in ((first, "12", "40"), (again, "12", "40"), (other, "13", "60")):
        result = run(
            *DEVICE, "--suite", "RS", "--seed", seed, "--sequence-length", length,
            "--json", str(path),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert _rs1_tokens(first) == _rs1_tokens(again)
    assert _rs1_tokens(first) != _rs1_tokens(other)
    parameters = json.loads(other.read_text())["parameters"]
    assert (parameters["seed"], parameters["sequence_length"]) == (13, 60)
    assert "seed 13, 60 entries" in json.loads(other.read_text())["cases"][0]["steps"][0]["action"]


def test_a_device_built_on_the_reference_decoder_fails_with_a_security_failure() -> None:
    sim = faulty.FaultySimulator(faulty.ReferenceRule)
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        result = run(*DEVICE, "--target", target, "--suite", "XO1", "--seed", "5")
    assert result.exit_code == 1, result.output
    assert "FAIL XO1" in result.stdout
    assert "SECURITY FAILURE: Not a difference from the reference" in result.stdout
    assert "SECURITY FAILURE in XO1" in result.stdout


def test_a_device_configured_to_take_the_reset_token_is_certified_with_the_option() -> None:
    sim = SimulatedDevice(RamMemory(), config=faulty.reset_token_config())
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        failed = run(*DEVICE, "--target", target, "--suite", "CS0")
        assert failed.exit_code == 1, failed.output
        assert "FAIL CS0" in failed.stdout
    sim = SimulatedDevice(RamMemory(), config=faulty.reset_token_config())
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        result = run(*DEVICE, "--target", target, "--suite", "CS0,CS4", "--accepts-reset-token")
    assert result.exit_code == 0, result.output
    assert "SKIP CS0" in result.stdout
    assert "PASS CS4" in result.stdout
    assert "no such option" in run(*DEVICE, "--refuses-reset-token").output.lower()


def test_keypad_entry() -> None:
    result = run(*DEVICE, "--keypad", "--suite", "G1,G2,RD", "--restricted")
    assert result.exit_code == 0, result.output
    assert "PASS RD1" in result.stdout
