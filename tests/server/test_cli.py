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
from tests.server.conftest import KEY, simulated_device

REFERENCE_CSV = (
    Path(__file__).resolve().parents[3] / "shared" / "reference" / ("example_device_list.csv")
)
ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "NO_COLOR": "1",
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
    assert rotated.exit_code == 0
    assert "2 device key(s) re-encrypted" in rotated.output
    text = (tmp_path / "paygkit-master.key").read_text()
    assert "\n2:" in text
    assert "\n1:" not in text
    after = run("token", "SLT240000002", "--sync", "--json")
    assert after.exit_code == 0, after.output
    everything = first.output + done.output + issued.output + rotated.output
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
