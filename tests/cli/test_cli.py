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
from paygkit.token import DeviceParams, TokenType, decode, default_backend, generate

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
    narrow: dict[str, str | None] = {"COLUMNS": "80"}
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
    assert f"Chain backend: {default_backend().name}" in out
    # The demo's device result for the first token is what decode says.
    assert decode(device, first.digits, last_count=1).token_type is TokenType.ADD_TIME


# --- issue 13: one name for the time divider -----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("token", "generate"),
        ("token", "decode"),
        ("token", "explain"),
        ("factory", "batch"),
        ("device", "simulate"),
        ("certify",),
    ],
)
def test_every_command_shows_time_divider_and_hides_its_old_name(command: tuple[str]) -> None:
    shown = run(*command, "--help")
    assert shown.exit_code == 0, shown.output
    assert "--time-divider" in shown.output
    assert "--divider" not in shown.output.replace("--time-divider", "")


def test_the_old_name_divider_still_works_and_a_clash_is_refused(tmp_path: Path) -> None:
    new = run("token", "generate", *DEVICE, "--count", "1", "--days", "1", "--time-divider", "4")
    old = run("token", "generate", *DEVICE, "--count", "1", "--days", "1", "--divider", "4")
    assert new.exit_code == old.exit_code == 0, old.output
    assert new.stdout == old.stdout
    devices = tmp_path / "d.csv"
    batch = run("factory", "batch", "1", "--prefix", "T", "--time-divider", "4", "-o", str(devices))
    assert batch.exit_code == 0, batch.output
    assert ",4," in devices.read_text().splitlines()[1]
    clash = run(
        "token", "generate", *DEVICE, "--count", "1", "--days", "1",
        "--time-divider", "2", "--divider", "4",
    )  # fmt: skip
    assert clash.exit_code == 2
    assert "--divider 4 and --time-divider 2 disagree" in clash.output


# --- issue 13: help without type noise, zero-time tokens ----------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("server", "run"),
        ("certify",),
        ("device", "simulate"),
        ("factory", "batch"),
        ("factory", "flash"),
        ("token", "generate"),
    ],
    ids=lambda command: " ".join(command) or "paygkit",
)
def test_help_shows_flags_without_a_value_type(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    # A flag takes no value: `--force <bool>` reads as if it wanted `--force true`.
    assert "<bool>" not in result.stdout
    assert "[default: False]" not in result.stdout
    assert "[default: True]" not in result.stdout


@pytest.mark.parametrize(
    ("group", "paragraph"),
    [
        (("server",), "Create the database and master key (0600) if there are none, make a"),
        (("server", "book"), "Record hand-outs on the agent's behalf (e.g. from a paper book);"),
        (("factory",), "Make the parameters of N new devices (keys from the OS's"),
    ],
)
def test_a_groups_help_lists_each_command_with_its_whole_first_paragraph(
    group: tuple[str, ...], paragraph: str
) -> None:
    """Not cut at its first full stop or at the line's end, as click's plain list does."""
    result = run(*group, "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert " ".join(paragraph.split()) in " ".join(result.stdout.split())


def test_help_is_plain_text_and_loads_no_rich() -> None:
    """Drawing typer's rich panels cost as much as importing typer and rich again."""
    check = (
        "import runpy, sys\n"
        "sys.argv = ['paygkit', '--help']\n"
        "try:\n"
        "    runpy.run_module('paygkit', run_name='__main__')\n"
        "except SystemExit as end:\n"
        "    assert end.code in (0, None), end.code\n"
        "assert 'rich' not in sys.modules, 'paygkit --help imported rich'\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: paygkit [OPTIONS] COMMAND [ARGS]...")
    assert "╭" not in done.stdout


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["token", "generate", *DEVICE, "--count", "1", "--days", "1"], "    588 224 011"),
        (
            ["token", "decode", "588 224 011", *DEVICE, "--last-count", "1"],
            "ADD_TIME  (Add Time, accepted)",
        ),
    ],
    ids=["generate", "decode"],
)
def test_generate_and_decode_print_plain_lines_and_load_no_rich_console(
    command: list[str], says: str
) -> None:
    """rich's console was about a third of these commands' start-up; explain keeps it."""
    check = (
        "import runpy, sys\n"
        f"sys.argv = ['paygkit', *{command!r}]\n"
        "try:\n"
        "    runpy.run_module('paygkit', run_name='__main__')\n"
        "except SystemExit as end:\n"
        "    assert end.code in (0, None), end.code\n"
        "assert 'rich.console' not in sys.modules, 'the command imported rich.console'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PAYGKIT_KEY")}
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # not a terminal: no colour codes
    assert says in done.stdout.splitlines()


def test_generate_colours_a_terminal_unless_no_color_is_set() -> None:
    args = ["token", "generate", *DEVICE, "--count", "1", "--days", "1"]
    coloured = runner.invoke(app, args, env={**ENV, "NO_COLOR": None}, color=True)
    assert "\x1b[" in coloured.stdout
    assert "588 224 011" in coloured.stdout
    plain = runner.invoke(app, args, env=ENV, color=True)
    assert "\x1b[" not in plain.stdout
    assert plain.stdout.splitlines()[1] == "    588 224 011"


def test_help_still_shows_the_value_options_take() -> None:
    result = run("token", "generate", "--help")
    assert "<add|set|disable|sync>" in result.stdout


@pytest.mark.parametrize(
    ("kind", "says"),
    [("add", "gives no time (0 units)"), ("set", "Set Time 0 locks the device")],
)
def test_a_zero_day_token_is_made_but_says_what_it_does(kind: str, says: str) -> None:
    result = run("token", "generate", *DEVICE, "--count", "1", "--type", kind, "--days", "0")
    assert result.exit_code == 0, result.output
    assert says in result.stdout
    as_json = run(
        "token", "generate", *DEVICE, "--count", "1", "--type", kind, "--days", "0", "--json"
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["units"] == 0  # stdout stays the JSON
    assert says in as_json.stderr
    one_day = run("token", "generate", *DEVICE, "--count", "1", "--type", kind, "--days", "1")
    assert "Warning" not in one_day.output


def _device_list(path: Path, *serials: str) -> Path:
    from paygkit.factory.devicelist import DeviceRecord, device_list_csv

    records = [
        DeviceRecord(serial, 516959010 + n, bytes([n + 1]) * 16) for n, serial in enumerate(serials)
    ]
    path.write_text(device_list_csv(records))
    return path


def test_certify_finds_a_serial_typed_in_lower_case(tmp_path: Path) -> None:
    devices = _device_list(tmp_path / "d.csv", "SLT2200000001", "SLT2200000002")
    sheet = tmp_path / "sheet.html"
    found = run("certify", "--csv", str(devices), "--serial", "slt2200000002", "--manual",
                "--suite", "G1", "--sheet-html", str(sheet))  # fmt: skip
    assert found.exit_code == 0, found.output
    assert "SLT2200000002" in sheet.read_text()
    missing = run("certify", "--csv", str(devices), "--serial", "slt22", "--manual")
    assert "is not in" in assert_one_line_error(missing)


def test_certify_asks_for_the_case_when_two_serials_differ_only_in_it(tmp_path: Path) -> None:
    devices = _device_list(tmp_path / "d.csv", "AB1", "ab1")
    exact = run("certify", "--csv", str(devices), "--serial", "ab1", "--manual", "--suite", "G1",
                "--sheet-csv", str(tmp_path / "s.csv"))  # fmt: skip
    assert exact.exit_code == 0, exact.output
    line = assert_one_line_error(
        run("certify", "--csv", str(devices), "--serial", "Ab1", "--manual", "--suite", "G1")
    )
    assert "AB1, ab1" in line
    assert "exactly as in the list" in line


def test_certify_manual_says_how_long_the_sheet_takes(tmp_path: Path) -> None:
    result = run("certify", *DEVICE, "--manual", "--suite", "G,WP",
                 "--sheet-csv", str(tmp_path / "s.csv"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Time needed: about " in result.stdout
    assert "The long waits come last: WP5" in result.stdout
    table = result.stdout.split("Time needed")[0]
    assert table.index("G12") > table.index("WP4")  # G12's 48 hours after the quick cases
