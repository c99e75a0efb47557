"""`paygkit server ...` on the SQLite default, in a temporary working directory."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from paygkit.cli.main import app
from paygkit.device.firmware import OutcomeKind
from tests.reference import EXAMPLE_DEVICE_LIST
from tests.server.conftest import KEY, simulated_device

REFERENCE_CSV = EXAMPLE_DEVICE_LIST
ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "PAYGKIT_DATA_DIR": None,
    "PAYGKIT_FACTORY_PASSWORD": None,
    "PAYGKIT_DATABASE_URL": None,
    "PAYGKIT_MASTER_KEY": None,
    "PAYGKIT_MASTER_KEY_FILE": None,
}
runner = CliRunner()
KEY_LINE = re.compile(r"pgk_[A-Za-z0-9_-]{20,}")


def run(*args: str) -> Result:
    return runner.invoke(app, ["server", *args], env=ENV)


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_init_import_token_and_rotation(tmp_path: Path) -> None:
    first = run("init")
    assert first.exit_code == 0, first.output
    assert "Created the master key" in first.output
    assert KEY_LINE.search(first.output)
    assert (tmp_path / "paygkit-master.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "paygkit.db").exists()
    again = run("init")
    assert again.exit_code == 0
    assert not KEY_LINE.search(again.output)

    dry = run("import", str(REFERENCE_CSV), "--dry-run")
    assert dry.exit_code == 0
    assert "would import 2" in dry.output
    done = run("import", str(REFERENCE_CSV), "--json")
    assert done.exit_code == 0
    assert json.loads(done.output)["imported"] == 2
    repeat = run("import", str(REFERENCE_CSV))
    assert repeat.exit_code == 0
    assert "2 unchanged" in repeat.output
    bad = tmp_path / "bad.csv"
    bad.write_text(REFERENCE_CSV.read_text().replace("X20", "X99"))
    refused = run("import", str(bad))
    assert refused.exit_code == 1
    assert "duplicate" in refused.output
    assert "Refused" in refused.output

    issued = run("token", "SLT240000002", "--days", "7", "--json")
    assert issued.exit_code == 0, issued.output
    (token,) = json.loads(issued.output)["tokens"]
    assert token["source"] == "cli"
    assert token["units"] == 28
    too_far = run("token", "SLT240000002", "--until", "2099-01-01")
    assert too_far.exit_code == 2
    assert "at most 20" in too_far.output
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()
    shown = run("token", "SLT240000002", "--until", later)
    assert shown.exit_code == 0, shown.output
    assert "add_time" in shown.output
    assert run("token", "SLT240000002").exit_code == 2
    unknown = run("token", "NOPE", "--days", "1")
    assert unknown.exit_code == 2
    assert "no device" in unknown.output

    created = run("api-key", "create", "--role", "technician", "--name", "field")
    assert created.exit_code == 0
    assert KEY_LINE.search(created.output)
    assert run("api-key", "create", "--role", "wizard").exit_code == 2

    rotated = run("rotate-master-key")
    assert rotated.exit_code == 0, rotated.output
    assert "2 key(s) re-encrypted" in rotated.output
    text = (tmp_path / "paygkit-master.key").read_text()
    # The old version stays until --drop-old: a server still running may seal with it.
    assert "\n1:" in text
    assert "\n2:" in text
    after = run("token", "SLT240000002", "--sync", "--json")
    assert after.exit_code == 0, after.output
    dropped = run("rotate-master-key", "--drop-old")
    assert dropped.exit_code == 0, dropped.output
    assert "Dropped version(s) 1, 2" in dropped.output
    text = (tmp_path / "paygkit-master.key").read_text()
    assert "\n3:" in text
    assert "\n1:" not in text
    assert "\n2:" not in text
    assert run("token", "SLT240000002", "--days", "1").exit_code == 0
    everything = first.output + done.output + issued.output + rotated.output + dropped.output
    assert KEY not in everything


def test_token_without_init_says_what_to_do() -> None:
    result = run("token", "X1", "--days", "1")
    assert result.exit_code == 2
    assert "paygkit server init" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_run_creates_everything_and_serves(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGKIT_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "paygkit", "server", "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        threading.Thread(
            target=lambda: output.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        ).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "".join(output)
            assert process.poll() is None, "".join(output)
            time.sleep(0.2)
        text = "".join(output)
        assert f"http://127.0.0.1:{port}" in text
        match = KEY_LINE.search(text)
        assert match, text
        headers = {"Authorization": f"Bearer {match.group(0)}"}
        me = httpx.get(f"http://127.0.0.1:{port}/me", headers=headers, timeout=10).json()
        assert me["role"] == "admin"
        created = httpx.post(
            f"http://127.0.0.1:{port}/devices",
            json={"serial": "TEST220000001", "key": KEY, "starting_code": 516959010},
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201
        token = httpx.post(
            f"http://127.0.0.1:{port}/devices/TEST220000001/tokens",
            json={"type": "add_days", "days": 7},
            headers=headers,
            timeout=10,
        ).json()["tokens"][0]
        assert simulated_device().enter_token(token["digits"]).kind is OutcomeKind.APPLIED
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (tmp_path / "paygkit.db").exists()
    assert (tmp_path / "paygkit-master.key").exists()


# --- issue 11 part A: data directory, master key safety, encrypted lists --------------------


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.mark.parametrize(
    "command",
    [
        ("import", str(REFERENCE_CSV)),
        ("api-key", "create", "--role", "admin"),
        ("token", "SLT240000002", "--days", "1"),
        ("rotate-master-key",),
    ],
)
def test_only_init_and_run_create_a_database_or_key(tmp_path: Path, command: tuple[str]) -> None:
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert f"no paygkit database at {tmp_path / 'paygkit.db'}" in result.output
    assert "paygkit server init" in result.output
    assert "--data-dir" in result.output
    assert _files(tmp_path) == set()


def test_the_data_directory_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    assert run("init", "--data-dir", str(data)).exit_code == 0
    assert _files(data) == {"paygkit.db", "paygkit-master.key"}
    for name in _files(data):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    imported = run("import", str(REFERENCE_CSV), "--data-dir", str(data))
    assert imported.exit_code == 0, imported.output
    with_env = runner.invoke(
        app,
        ["server", "token", "SLT240000002", "--days", "1"],
        env={**ENV, "PAYGKIT_DATA_DIR": str(data)},
    )
    assert with_env.exit_code == 0, with_env.output
    assert _files(elsewhere) == set()


def test_a_missing_key_file_is_never_replaced(tmp_path: Path) -> None:
    """Case 2 of docs/server.md: the key file is not where the command looks."""
    assert run("init").exit_code == 0
    assert run("import", str(REFERENCE_CSV)).exit_code == 0
    key_file = tmp_path / "paygkit-master.key"
    backup = tmp_path / "backup.key"
    key_file.rename(backup)
    for command in (("run",), ("init",), ("import", str(REFERENCE_CSV)), ("token", "X1", "--sync")):
        refused = run(*command)
        assert refused.exit_code == 2, refused.output
        assert "Created the master key" not in refused.output
        assert f"{key_file} does not exist" in refused.output
        assert "master key version(s) 1" in refused.output
        assert not key_file.exists()
    # The recovery: give the right file (or put it back).
    assert run("token", "SLT240000002", "--sync", "--master-key-file", str(backup)).exit_code == 0
    backup.rename(key_file)
    assert run("token", "SLT240000002", "--days", "1").exit_code == 0


def test_a_wrong_master_key_in_the_environment_is_refused(tmp_path: Path) -> None:
    """Case 3 of docs/server.md: PAYGKIT_MASTER_KEY is not this database's key."""
    assert run("init").exit_code == 0
    assert run("import", str(REFERENCE_CSV)).exit_code == 0
    wrong = {**ENV, "PAYGKIT_MASTER_KEY": "ab" * 32}
    for command in (("token", "SLT240000002", "--days", "1"), ("import", str(REFERENCE_CSV))):
        refused = runner.invoke(app, ["server", *command], env=wrong)
        assert refused.exit_code == 2, refused.output
        assert "version 1 from PAYGKIT_MASTER_KEY is not the key" in refused.output
        assert "ab" * 32 not in refused.output
    # The recovery: the right key in the variable (here: the key file's line).
    right = (tmp_path / "paygkit-master.key").read_text().splitlines()[-1]
    fixed = runner.invoke(
        app,
        ["server", "token", "SLT240000002", "--days", "1"],
        env={**ENV, "PAYGKIT_MASTER_KEY": right},
    )
    assert fixed.exit_code == 0, fixed.output


def test_import_of_an_encrypted_device_list(tmp_path: Path) -> None:
    from paygkit.factory.sealed import Content, ScryptParams, new_key_file, seal

    assert run("init").exit_code == 0
    plain = REFERENCE_CSV.read_bytes()
    key_file = tmp_path / "list.key"
    new_key_file(key_file)
    sealed = tmp_path / "devices.csv.paygseal"
    sealed.write_bytes(seal(plain, Content.CSV, key=key_file.read_bytes()))
    before = _files(tmp_path)
    without = run("import", str(sealed))
    assert without.exit_code == 2
    assert "key file" in without.output
    dry = run("import", str(sealed), "--key-file", str(key_file), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would import 2" in dry.output
    done = run("import", str(sealed), "--key-file", str(key_file))
    assert done.exit_code == 0, done.output
    assert _files(tmp_path) == before  # decrypted in memory only
    assert KEY not in done.output

    by_password = tmp_path / "devices-pw.paygseal"
    by_password.write_bytes(
        seal(plain, Content.CSV, password="correct horse battery", params=ScryptParams(log2_n=10))
    )
    env = {**ENV, "PAYGKIT_FACTORY_PASSWORD": "correct horse battery"}
    again = runner.invoke(app, ["server", "import", str(by_password), "--password"], env=env)
    assert again.exit_code == 0, again.output
    assert "2 unchanged" in again.output
    wrong = runner.invoke(
        app,
        ["server", "import", str(by_password), "--password"],
        env={**env, "PAYGKIT_FACTORY_PASSWORD": "wrong password!"},
    )
    assert wrong.exit_code == 2
    assert "wrong password" in wrong.output
    plain_with_key = run("import", str(REFERENCE_CSV), "--key-file", str(key_file))
    assert plain_with_key.exit_code == 2
    assert "not an encrypted device list" in plain_with_key.output


def test_spreadsheet_formulas_are_warned_about_at_import(tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    rows = (
        REFERENCE_CSV.read_text()
        .replace("SuperLight,X20", "\"=cmd|' /C calc'!A0\",X20")
        .replace("SuperLight,X40", "SuperLight,@SUM(1+1)")
    )
    listed = tmp_path / "formulas.csv"
    listed.write_text(rows)
    result = run("import", str(listed), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["imported"] == 2
    warned = {(w["column"], w["message"].split(":")[0]) for w in report["warnings"]}
    assert ("Hardware Model", "device SLT220000001") in warned
    assert ("Version", "device SLT240000002") in warned


def test_commands_refuse_an_empty_postgresql_database(postgres: object, tmp_path: Path) -> None:
    from paygkit.server.pgtemp import TemporaryPostgres

    if postgres is None:
        pytest.skip("PostgreSQL binaries not found")
    assert isinstance(postgres, TemporaryPostgres)
    url = postgres.create_database("cli_empty")
    try:
        refused = run("token", "X1", "--days", "1", "--database", url)
        assert refused.exit_code == 2, refused.output
        assert "no paygkit database at postgresql+psycopg://" in refused.output
        assert _files(tmp_path) == set()
        assert run("init", "--database", url).exit_code == 0
        assert run("import", str(REFERENCE_CSV), "--database", url).exit_code == 0
        (tmp_path / "paygkit-master.key").rename(tmp_path / "elsewhere.key")
        again = run("init", "--database", url)
        assert again.exit_code == 2
        assert "master key version(s) 1" in again.output
        assert not (tmp_path / "paygkit-master.key").exists()
    finally:
        postgres.drop_database("cli_empty")


# --- issue 13: tokens worth nothing, API keys from the terminal, a busy port ---------------


def test_token_refuses_no_time_and_unasked_locks_and_shows_the_rounding(tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    assert run("import", str(REFERENCE_CSV)).exit_code == 0  # divider 4
    for args, message in (
        (("--days", "0"), "the token would add no time"),
        (("--days", "0.1"), "0.1 days = 0.4 units at 4 units a day, rounded to 0 units"),
        (("--set-days", "0"), "which locks the device at once"),
        (("--until", "2020-01-01"), "is not in the future"),
    ):
        refused = run("token", "SLT240000002", *args)
        assert refused.exit_code == 2, refused.output
        assert message in refused.output
        assert "nothing was issued" in refused.output
    listed = run("token", "SLT240000002", "--days", "0.3")
    assert listed.exit_code == 0, listed.output
    assert "0.3 days = 1.2 units at 4 units a day, rounded to 1 unit = 6 h" in listed.output
    locked = run("token", "SLT240000002", "--lock", "--json")
    assert locked.exit_code == 0, locked.output
    (token,) = json.loads(locked.output)["tokens"]
    assert (token["type"], token["units"]) == ("set_time", 0)
    assert json.loads(locked.output)["device"]["active"] is False


def test_api_keys_are_listed_and_revoked_from_the_terminal(tmp_path: Path) -> None:
    first = run("init")
    assert first.exit_code == 0
    created = run("api-key", "create", "--role", "operator", "--name", "shop 7")
    assert created.exit_code == 0
    operator_key = KEY_LINE.search(created.output)
    assert operator_key
    listed = run("api-key", "list")
    assert listed.exit_code == 0, listed.output
    assert "first admin" in listed.output
    assert "shop 7" in listed.output
    assert operator_key.group(0) not in listed.output  # never the key itself
    keys = json.loads(run("api-key", "list", "--json").output)["api_keys"]
    assert [(k["id"], k["role"], k["revoked_at"]) for k in keys] == [
        (1, "admin", None),
        (2, "operator", None),
    ]
    revoked = run("api-key", "revoke", "2")
    assert revoked.exit_code == 0, revoked.output
    assert "Key 2 (shop 7, operator) is revoked" in revoked.output
    assert json.loads(run("api-key", "list", "--json").output)["api_keys"][1]["revoked_at"]
    again = run("api-key", "revoke", "2")
    assert again.exit_code == 2
    assert "already revoked" in again.output
    missing = run("api-key", "revoke", "99")
    assert missing.exit_code == 2
    assert "paygkit server api-key list" in missing.output
    last_admin = run("api-key", "revoke", "1")
    assert last_admin.exit_code == 0
    assert "no admin key is left" in last_admin.output


def test_run_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("run", "--port", str(port))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0]
    assert "Errno" not in result.output
    assert not (tmp_path / "paygkit.db").exists()  # checked before anything is created


def test_token_finds_a_serial_typed_in_lower_case(tmp_path: Path) -> None:
    # As the console's search does: before, 'slt240000002' was "not found".
    assert run("init").exit_code == 0
    assert run("import", str(REFERENCE_CSV)).exit_code == 0
    issued = run("token", "slt240000002", "--days", "1", "--json")
    assert issued.exit_code == 0, issued.output
    assert json.loads(issued.output)["device"]["serial"] == "SLT240000002"
    shown = run("token", "slt240000002", "--days", "1")
    assert shown.exit_code == 0, shown.output
    assert "SLT240000002: active until" in shown.output
    unknown = run("token", "slt24", "--days", "1")  # a prefix is no serial
    assert unknown.exit_code == 2
