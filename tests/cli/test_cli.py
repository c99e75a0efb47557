"""The paygkit command line: output, JSON, errors and the demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from paygkit import __version__
from paygkit.cli.main import app
from paygkit.token import DeviceParams, TokenType, decode, default_engine, generate

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = "516959010"
DEVICE = ["--key", KEY, "--starting-code", STARTING_CODE]
# A wide terminal so rich never wraps a line the tests look for; no key from
# the environment unless a test sets one.
ENV: dict[str, str | None] = {"COLUMNS": "200", "PAYGKIT_KEY": None, "NO_COLOR": "1"}

runner = CliRunner()


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(args), env={**ENV, **(env or {})})


def assert_no_key(result: Result) -> None:
    assert KEY not in result.stdout
    assert KEY not in result.stderr
    assert KEY.upper() not in result.output


def assert_one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert_no_key(result)
    return lines[0]


# --- generate ---------------------------------------------------------------------------------


def test_generate_first_vector() -> None:
    result = run("token", "generate", *DEVICE, "--count", "1", "--units", "1")
    assert result.exit_code == 0, result.output
    assert "588 224 011" in result.stdout
    assert "New count" in result.stdout
    assert "2" in result.stdout.split("New count", 1)[1].splitlines()[0]
    assert "Add Time" in result.stdout
    assert "1 unit = 1 day" in result.stdout
    assert result.stderr == ""
    assert_no_key(result)


def test_generate_json() -> None:
    result = run("token", "generate", *DEVICE, "--count", "1", "--units", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["token"] == "588224011"
    assert data["grouped"] == "588 224 011"
    assert data["new_count"] == 2
    assert data["type"] == "add_time"
    assert data["units"] == 1
    assert data["days"] == 1
    assert data["extended"] is False
    assert "key" not in data
    assert_no_key(result)


def test_generate_json_days_time_divider_and_types() -> None:
    result = run(
        "token", "generate", *DEVICE, "--count", "2", "--type", "set", "--days", "1.5",
        "--time-divider", "4", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    device = DeviceParams.create(KEY, int(STARTING_CODE), time_divider=4)
    made = generate(device, count=2, token_type=TokenType.SET_TIME, units=6)
    assert data["token"] == made.digits
    assert data["type"] == "set_time"
    assert data["units"] == 6
    assert data["days"] == 1.5
    assert data["new_count"] == 3

    disable = json.loads(
        run("token", "generate", *DEVICE, "--count", "3", "--type", "disable", "--json").stdout
    )
    assert disable["type"] == "disable_payg"
    assert disable["units"] is None
    assert disable["days"] is None
    assert disable["new_count"] == 5


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--extended"], "247264959011"),
        (["--restricted"], "314114432231134"),
    ],
)
def test_generate_extended_and_restricted(flags: list[str], expected: str) -> None:
    result = run("token", "generate", *DEVICE, "--count", "1", "--units", "1", *flags, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["token"] == expected


def test_key_from_environment() -> None:
    result = run(
        "token", "generate", "--starting-code", STARTING_CODE, "--count", "1", "--units", "1",
        env={"PAYGKIT_KEY": KEY},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "588 224 011" in result.stdout
    assert_no_key(result)


def test_help_documents_env_var_and_hides_its_value() -> None:
    result = run("token", "generate", "--help", env={"PAYGKIT_KEY": KEY})
    assert result.exit_code == 0
    assert "PAYGKIT_KEY" in result.stdout
    assert_no_key(result)
    assert "PAYGKIT_KEY" in run("--help").stdout


def test_generate_with_real_installed_script() -> None:
    script = Path(sys.executable).with_name("paygkit")
    if not script.exists():
        found = shutil.which("paygkit")
        if found is None:
            pytest.skip("the paygkit console script is not installed")
        script = Path(found)
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PAYGKIT_KEY", None)
    completed = subprocess.run(
        [str(script), "token", "generate", *DEVICE, "--count", "1", "--units", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "588 224 011" in completed.stdout
    assert KEY not in completed.stdout + completed.stderr

    bad = subprocess.run(
        [str(script), "token", "generate", "--key", "nothex", "--count", "1", "--units", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# --- decode -----------------------------------------------------------------------------------


def test_decode_first_vector() -> None:
    result = run("token", "decode", "588 224 011", *DEVICE, "--last-count", "1")
    assert result.exit_code == 0, result.output
    assert "ADD_TIME" in result.stdout
    assert "accepted" in result.stdout
    assert "1 unit = 1 day" in result.stdout
    assert "Matched count   2" in result.stdout
    assert "New last count  2" in result.stdout
    assert_no_key(result)


def test_decode_json_and_used_counts() -> None:
    result = run("token", "decode", "588224011", *DEVICE, "--last-count", "1", "--json")
    data = json.loads(result.stdout)
    assert data == {
        "type": "add_time",
        "accepted": True,
        "units": 1,
        "days": 1,
        "count": 2,
        "last_count": 2,
        "used_counts": [2],
        "extended": False,
    }
    again = run(
        "token", "decode", "588224011", *DEVICE, "--last-count", "2", "--used-counts", "1, 2",
        "--json",
    )  # fmt: skip
    assert again.exit_code == 1, again.output  # refused: scripts can test the status
    assert json.loads(again.stdout)["type"] == "already_used"
    assert json.loads(again.stdout)["count"] == 2


def test_decode_invalid_token_is_a_result_not_an_error() -> None:
    result = run("token", "decode", "123456789", *DEVICE, "--last-count", "1")
    # 1 (refused), not 2 (bad input): the token is well formed, just not valid.
    assert result.exit_code == 1, result.output
    assert "Error" not in result.output
    assert "INVALID" in result.stdout


def test_decode_set_time_with_divider() -> None:
    device = DeviceParams.create(KEY, int(STARTING_CODE), time_divider=24)
    token = generate(device, count=5, token_type=TokenType.SET_TIME, units=36)
    result = run(
        "token", "decode", token.digits, *DEVICE, "--last-count", "5", "--time-divider", "24",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "SET_TIME" in result.stdout
    assert "36 units = 1.5 days" in result.stdout
    assert "Matched count   7" in result.stdout


# --- explain ----------------------------------------------------------------------------------


def test_explain_first_vector() -> None:
    result = run("token", "explain", *DEVICE, "--count", "1", "--units", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "588 224 011" in out
    # Stage 2: the base and the masked code.
    assert "516 959 011" in out
    assert "(010 + 1) mod 1000 = 011" in out
    # The two hash steps, with message bytes, SipHash output and folded values.
    assert "1e d0 2b 23 1e d0 2b 23" in out
    assert "189 897 555" in out
    assert "0b 51 9b 53 0b 51 9b 53" in out
    assert "588 224 840" in out
    assert "New count: 2" in out
    assert_no_key(result)


def test_explain_steps_option_and_restricted() -> None:
    result = run(
        "token", "explain", *DEVICE, "--count", "30", "--units", "1", "--steps", "3",
        "--restricted",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    device = DeviceParams.create(KEY, int(STARTING_CODE), restricted_digits=True)
    made = generate(device, count=30, units=1)
    assert made.grouped in result.stdout
    assert "Restricted digits" in result.stdout
    assert f"{made.count - 3} more step(s) not shown" in result.stdout
    table_rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    step_rows = [row for row in table_rows if row.split("│")[1].strip() in {"1", "2", "3", "4"}]
    assert [row.split("│")[1].strip() for row in step_rows] == ["1", "2", "3"]


def test_explain_and_demo_stay_readable_in_a_narrow_terminal() -> None:
    narrow = {"COLUMNS": "80"}
    result = run("token", "explain", *DEVICE, "--count", "1", "--units", "1", env=narrow)
    assert result.exit_code == 0, result.output
    assert "1e d0 2b 23 1e d0 2b 23" in result.stdout
    assert "be55b24f9313df02" in result.stdout
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    demo = run("demo", env=narrow)
    assert demo.exit_code == 0, demo.output
    assert "…" not in demo.stdout
    assert "ALREADY_USED" in demo.stdout


# --- errors -----------------------------------------------------------------------------------


def test_bad_key_is_one_line_without_the_key() -> None:
    bad_key = "zz" + KEY[2:]
    result = run("token", "generate", "--key", bad_key, "--count", "1", "--units", "1")
    line = assert_one_line_error(result)
    assert "32 hex characters" in line
    assert bad_key not in result.output
    short = run("token", "generate", "--key", KEY[:-1], "--count", "1", "--units", "1")
    assert "31 characters" in assert_one_line_error(short)
    assert KEY[:-1] not in short.output


def test_letters_in_token() -> None:
    result = run("token", "decode", "58822a011", *DEVICE, "--last-count", "1")
    assert "only digits" in assert_one_line_error(result)


def test_days_with_disable() -> None:
    result = run("token", "generate", *DEVICE, "--count", "1", "--type", "disable", "--days", "3")
    assert "carries no value" in assert_one_line_error(result)


@pytest.mark.parametrize(
    "args",
    [
        ["token", "generate", *DEVICE, "--count", "x", "--units", "1"],
        ["token", "generate", *DEVICE, "--count", "1", "--days", "abc"],
        ["token", "generate", *DEVICE, "--count", "1", "--days", "1e999999999"],
        ["token", "generate", *DEVICE, "--count", "1", "--days", "1e-999999999"],
        ["token", "generate", *DEVICE, "--count", "1", "--days", "-1"],
        ["token", "generate", *DEVICE, "--count", "1", "--type", "refund", "--units", "1"],
        ["token", "generate", *DEVICE, "--count", "1"],
        ["token", "generate", *DEVICE, "--count", "1", "--units", "996"],
        ["token", "generate", "--count", "1", "--units", "1"],
        ["token", "decode", "588224011", *DEVICE, "--last-count", "1", "--used-counts", "a,b"],
        ["token", "explain", *DEVICE, "--count", "1", "--units", "1", "--steps", "-1"],
        ["token", "frobnicate"],
    ],
    ids=[
        "count-not-int",
        "days-not-number",
        "days-huge-exponent",
        "days-tiny-exponent",
        "days-negative",
        "unknown-type",
        "add-without-value",
        "too-many-units",
        "missing-key",
        "bad-used-counts",
        "negative-steps",
        "unknown-command",
    ],
)
def test_validation_errors_are_one_line(args: list[str]) -> None:
    assert_one_line_error(run(*args))


def test_key_pasted_as_extra_argument_is_hidden() -> None:
    other = "0123456789abcdef0123456789abcdef"
    result = run("token", "decode", "588224011", *DEVICE, "--last-count", "1", other)
    line = assert_one_line_error(result)
    assert other not in result.output
    assert "<hidden>" in line


# --- app --------------------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"paygkit {__version__}"


def test_demo() -> None:
    result = run("demo")
    assert result.exit_code == 0, result.output
    out = result.stdout
    device = DeviceParams.create(KEY, int(STARTING_CODE))
    first = generate(device, count=1, days=7)
    assert first.grouped in out
    for name in ("ADD_TIME", "SET_TIME", "DISABLE_PAYG", "COUNTER_SYNC"):
        assert name in out
    already = [line for line in out.splitlines() if "ALREADY_USED" in line]
    assert len(already) == 1
    assert first.grouped in already[0]
    assert len([line for line in out.splitlines() if "INVALID" in line]) == 1
    assert f"Engine: {default_engine().name}" in out
    # The demo's device result for the first token is what decode says.
    assert decode(device, first.digits, last_count=1).token_type is TokenType.ADD_TIME
