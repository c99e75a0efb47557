"""`paygkit factory ...` end to end: batch, verify, encrypt/decrypt, flash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from paygkit.cli.main import app
from paygkit.device.host import open_link
from paygkit.device.serial_number import serial_matches
from paygkit.factory.devicelist import (
    COLUMNS,
    DeviceRecord,
    device_list_csv,
    read_device_list,
)
from paygkit.token import generate
from tests.device.servers import pty_simulator

ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "PAYGKIT_FACTORY_PASSWORD": None,
    "PAYGKIT_KEY": None,
}
KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["factory", *args], env={**ENV, **(env or {})}, input=stdin)


def keys_of(path: Path) -> list[str]:
    return [record.key.hex() for record in read_device_list(path).records]


def assert_no_keys(result: Result, keys: list[str]) -> None:
    text = (result.stdout + result.stderr).lower()
    for key in keys:
        assert key not in text


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_batch_then_verify(tmp_path: Path) -> None:
    out, state = tmp_path / "b.csv", tmp_path / "serials.json"
    made = run(
        "batch", "4", "--prefix", "SLT22", "--digits", "7", "--state-file", str(state),
        "--divider", "4", "--model", "SuperLight", "--version", "X20",
        "--test-code", "999333777", "-o", str(out),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "4 devices, SLT220000001 to SLT220000004, written to" in made.stderr
    assert "test code 999333777: checked against every token" in made.stderr
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    keys = keys_of(out)
    assert len(set(keys)) == 4
    assert_no_keys(made, keys)

    again = run("batch", "2", "--prefix", "SLT22", "--digits", "7", "--state-file", str(state),
                "-o", str(tmp_path / "c.csv"))  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "SLT220000005 to SLT220000006" in again.stderr

    checked = run("verify", str(out))
    assert checked.exit_code == 0, checked.output
    assert "4 rows, 4 without problems" in checked.stdout
    assert "duplicate serials: 0" in checked.stdout
    assert "key reuse:         none" in checked.stdout
    assert "OK: the list follows the rules" in checked.stdout
    assert_no_keys(checked, keys)


def test_batch_json_shared_key_random_count_and_progress(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    made = run("batch", "6000", "--prefix", "J", "--format", "json", "--shared-key",
               "--count-start", "random", "--test-code", "auto", "-o", str(out))  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "one key for the whole batch" in made.stderr
    assert "not a token length" in made.stderr
    document = json.loads(out.read_text())
    assert document["batch"]["shared_key"] is True
    assert len(document["devices"]) == 6000
    assert {d["count"] for d in document["devices"]} == set(range(1, 11))
    assert out.stat().st_mode & 0o777 == 0o600
    assert_no_keys(made, keys_of(out)[:1])
    checked = run("verify", str(out), "--limit", "3")
    assert checked.exit_code == 0
    assert "6000 devices share 1 key(s)" in checked.stdout
    assert "... and 5996 more (--limit)" in checked.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["batch", "3", "--prefix", "A", "-o", "{exists}"], "exists"),
        (["batch", "3", "--prefix", "A", "--count-start", "2", "-o", "{new}"], "--count-start"),
        (["batch", "0", "--prefix", "A", "-o", "{new}"], "number of devices"),
        (["batch", "3", "--prefix", "A B", "-o", "{new}"], "prefix"),
        (["batch", "3", "--prefix", "A", "--test-code", "12x", "-o", "{new}"], "digits"),
        (["batch", "3", "--prefix", "A", "--encrypt-password", "-o", "{new}"], "PAYGKIT_FACTORY"),
        (["verify", "{new}"], "cannot read"),
        (["decrypt", "{exists}", "-o", "{new}", "--key-file", "{exists}"], "key file"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    exists = tmp_path / "exists.csv"
    exists.write_text("x")
    filled = [a.format(exists=exists, new=tmp_path / "new.csv") for a in args]
    assert message in one_line_error(run(*filled))
    assert not (tmp_path / "new.csv").exists()


def test_verify_reports_problems_by_row_and_column_without_keys(tmp_path: Path) -> None:
    other = "dac86b1a29ab82edc5fbbc41ec9530f6"
    rows = [
        ",".join(COLUMNS),
        f"S1,516959010,{KEY_HEX},1,1,0,,,",
        f"S1,5.17E+08,{KEY_HEX[:31]},1,0,2,,,",
        f"S3,516959010,{KEY_HEX},1,1,0,,,{other}",
        f"S4,12345678,{other},1,1,0,,,",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\r\n".join(rows) + "\r\n")
    checked = run("verify", str(path))
    assert checked.exit_code == 1
    out = checked.stdout
    assert "4 rows, 2 without problems" in out
    assert "row 3, column Starting Code: the starting code '5.17E+08' is in scientific" in out
    assert "row 3, column Key: the key has 31 hex characters" in out
    assert "row 3, column Time Divider" in out
    assert "row 3, column Restricted Digit Mode" in out
    assert "row 4, column Test Code" in out
    assert "row 5, column Starting Code: the starting code '12345678' has 8 digits" in out
    assert "problems:          5" in out
    assert_no_keys(checked, [KEY_HEX, other, KEY_HEX[:31]])


def test_verify_counts_duplicates_and_finds_test_code_clashes(tmp_path: Path) -> None:
    record = DeviceRecord("S1", 516959010, bytes.fromhex(KEY_HEX))
    token = generate(record.params(), count=30, days=1)
    clashing = DeviceRecord("S2", 516959010, bytes.fromhex(KEY_HEX), test_code=token.digits)
    path = tmp_path / "l.csv"
    path.write_text(device_list_csv([record, clashing, record]))
    plain = run("verify", str(path))
    assert plain.exit_code == 1
    assert "duplicate serials: 1" in plain.stdout
    assert "test code check" not in plain.stdout
    deep = run("verify", str(path), "--test-code-counts", "100")
    assert f"S2: a token at count {token.count} equals the test code" in deep.stdout
    assert "1 device(s) with a token equal to the test code" in deep.stdout


def test_encrypted_batch_round_trip_and_wrong_password(tmp_path: Path) -> None:
    sealed, plain = tmp_path / "b.csv.enc", tmp_path / "b.csv"
    env = {"PAYGKIT_FACTORY_PASSWORD": "a long transport passphrase"}
    made = run("batch", "3", "--prefix", "E", "--encrypt-password", "-o", str(sealed), env=env)
    assert made.exit_code == 0, made.output
    assert "encrypted with a password" in made.stderr
    assert sealed.read_bytes().startswith(b"PAYGSEAL")
    # verify and flash read encrypted lists too.
    assert run("verify", str(sealed), "--password", env=env).exit_code == 0
    opened = run("decrypt", str(sealed), "-o", str(plain), env=env)
    assert opened.exit_code == 0, opened.output
    assert len(read_device_list(plain).records) == 3
    wrong = run("decrypt", str(sealed), "-o", str(tmp_path / "x.csv"),
                env={"PAYGKIT_FACTORY_PASSWORD": "wrong"})  # fmt: skip
    assert "wrong password, or the file was changed" in one_line_error(wrong)
    assert not (tmp_path / "x.csv").exists()
    tampered = tmp_path / "t.enc"
    data = bytearray(sealed.read_bytes())
    data[-20] ^= 1
    tampered.write_bytes(bytes(data))
    assert "authentication failed" in one_line_error(
        run("decrypt", str(tampered), "-o", str(tmp_path / "y.csv"), env=env)
    )


def test_key_file_encrypt_and_decrypt(tmp_path: Path) -> None:
    key_file, plain = tmp_path / "t.key", tmp_path / "p.csv"
    assert run("new-key-file", str(key_file)).exit_code == 0
    assert "exists" in one_line_error(run("new-key-file", str(key_file)))
    assert run("batch", "2", "--prefix", "K", "-o", str(plain)).exit_code == 0
    sealed = tmp_path / "p.enc"
    assert run("encrypt", str(plain), "-o", str(sealed), "--key-file", str(key_file)).exit_code == 0
    back = tmp_path / "back.csv"
    result = run("decrypt", str(sealed), "-o", str(back), "--key-file", str(key_file))
    assert result.exit_code == 0, result.output
    assert back.read_bytes() == plain.read_bytes()
    to_stdout = run("decrypt", str(sealed), "-o", "-", "--key-file", str(key_file))
    assert to_stdout.stdout == plain.read_text()


def test_flash_command_on_a_pty(tmp_path: Path) -> None:
    devices, log = tmp_path / "d.csv", tmp_path / "flash.jsonl"
    assert run("batch", "2", "--prefix", "F", "--divider", "2", "-o", str(devices)).exit_code == 0
    records = read_device_list(devices).records
    with pty_simulator() as (path, _):
        flashed = run("flash", "--csv", str(devices), "--port", path, "--operator", "bob",
                      "--log", str(log), stdin=f"{records[0].serial}\n")  # fmt: skip
        assert flashed.exit_code == 0, flashed.output
        assert f"{records[0].serial}: OK, read-back matches" in flashed.stderr
        assert "done: 1 ok" in flashed.stderr
        token = generate(records[0].params(), count=records[0].count, days=1)
        with open_link(path) as link:
            assert link.token(token.digits).value == "APPLIED"
        # The same serial again: asked, answered no by the next line; the other one fails
        # since the device on the port is set up already.
        again = run("flash", "--csv", str(devices), "--port", path, "--log", str(log),
                    stdin=f"{records[0].serial}\nno\n{records[1].serial}\n")  # fmt: skip
        assert again.exit_code == 1
        assert "was flashed already" in again.stderr
        assert "skipped" in again.stderr
        assert "already set up" in again.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["serial"], e["result"]) for e in entries] == [
        (records[0].serial, "ok"),
        (records[0].serial, "skipped"),
        (records[1].serial, "already_set_up"),
    ]
    assert entries[0]["operator"] == "bob"
    assert_no_keys(flashed, [r.key.hex() for r in records])
    assert_no_keys(again, [r.key.hex() for r in records])
    assert not any(r.key.hex() in log.read_text() for r in records)


def test_flash_refuses_a_list_with_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\r\nS1,x,y,,,,,,\r\n")
    message = one_line_error(run("flash", "--csv", str(bad), "--port", "sim:"))
    assert "row 2, column Key" in message
    assert "paygkit factory verify" in message


def test_flash_to_an_in_process_simulator(tmp_path: Path) -> None:
    devices = tmp_path / "d.csv"
    assert run("batch", "1", "--prefix", "Q", "-o", str(devices)).exit_code == 0
    serial = read_device_list(devices).records[0].serial
    result = run("flash", "--csv", str(devices), "--port", "sim:", "--log",
                 str(tmp_path / "log.csv"), "--reference-form", stdin=f"{serial}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "log.csv").read_text().startswith("time,operator,port,serial")


# --- issue 13: the re-flash question and a missing port -------------------------------------


def test_flash_question_is_on_its_own_line_and_a_scan_is_not_a_no(tmp_path: Path) -> None:
    devices, log = tmp_path / "d.csv", tmp_path / "flash.jsonl"
    assert run("batch", "2", "--prefix", "F", "-o", str(devices)).exit_code == 0
    first, second = (r.serial for r in read_device_list(devices).records)
    with pty_simulator() as (path, _):
        flashed = run("flash", "--csv", str(devices), "--port", path, "--log", str(log),
                      stdin=f"{first}\n")  # fmt: skip
        assert flashed.exit_code == 0, flashed.output
        # The operator scans the next device while the question waits: asked again, then no.
        again = run("flash", "--csv", str(devices), "--port", path, "--log", str(log),
                    stdin=f"{first}\n{second}\nn\n")  # fmt: skip
    lines = again.stderr.splitlines()
    question = next(i for i, line in enumerate(lines) if "was flashed already" in line)
    assert lines[question - 1] == ""  # set apart from what came before
    assert lines[question].startswith(f"{first} was flashed already")
    assert f"Flash {first} again? yes: send its setup" in lines[question]
    assert lines[question + 1].startswith("Type y or n, then Enter [y/N]: ")
    assert f"'{second}' is not y or n; answer the question first" in again.stderr
    assert sum("[y/N]" in line for line in lines) == 2
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["serial"], e["result"]) for e in entries] == [(first, "ok"), (first, "skipped")]


def test_flash_says_a_missing_port_before_any_serial(tmp_path: Path) -> None:
    devices, log = tmp_path / "d.csv", tmp_path / "flash.jsonl"
    assert run("batch", "1", "--prefix", "F", "-o", str(devices)).exit_code == 0
    serial = read_device_list(devices).records[0].serial
    port = str(tmp_path / "ttyUSB9")
    result = run("flash", "--csv", str(devices), "--port", port, "--log", str(log),
                 stdin=f"{serial}\n")  # fmt: skip
    message = one_line_error(result)
    assert f"cannot open the port {port}" in message
    assert "--port" in message
    assert "scan or type" not in result.stderr
    assert not log.exists()  # no device was tried


# --- issue 13: serials typed in lower case -----------------------------------------------------


def test_flash_finds_a_serial_scanned_in_lower_case(tmp_path: Path) -> None:
    devices = tmp_path / "d.csv"
    assert run("batch", "1", "--prefix", "SLT22", "-o", str(devices)).exit_code == 0
    serial = read_device_list(devices).records[0].serial
    result = run("flash", "--csv", str(devices), "--port", "sim:", "--log",
                 str(tmp_path / "log.csv"), stdin=f"{serial.lower()}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{serial}: OK, read-back matches" in result.stderr


def test_serial_matches_is_exact_first_then_blind_to_case() -> None:
    listed = ["SLT1", "slt1", "ABC2", "Mixed3"]
    assert serial_matches("slt1", listed) == ["slt1"]  # the exact one wins
    assert serial_matches("abc2", listed) == ["ABC2"]
    assert serial_matches(" MIXED3 ", listed) == ["Mixed3"]
    assert serial_matches("Slt1", listed) == ["SLT1", "slt1"]  # the caller asks which
    assert serial_matches("ABC", listed) == []  # a prefix is no serial
