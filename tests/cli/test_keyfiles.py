"""Commands that write keys in clear text inside a git work tree say so, in one line on stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from paygkit.cli.keyfiles import git_work_tree, warn_if_in_git_work_tree
from paygkit.cli.main import app

KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "PAYGKIT_FACTORY_PASSWORD": None,
    "PAYGKIT_KEY": None,
}
runner = CliRunner()


def run(*args: str, stdin: str | None = None) -> Result:
    result = runner.invoke(app, list(args), env=ENV, input=stdin)
    assert result.exit_code == 0, result.output
    return result


def warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "clear text" in line]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree as far as paygkit can tell: a directory with a .git entry."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir()
    return tmp_path / "repo"


def test_git_work_tree_is_found_by_walking_up(tmp_path: Path, repo: Path) -> None:
    assert git_work_tree(repo / "sub" / "batch.csv") == repo  # the file need not exist
    assert git_work_tree(repo) == repo
    assert git_work_tree(tmp_path / "elsewhere.csv") is None
    # A linked work tree or a submodule has a .git file, not a directory.
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".git").write_text("gitdir: /somewhere/else\n")
    assert git_work_tree(linked / "a" / "b.csv") == linked


def test_the_warning_is_one_line_with_the_file_and_why(repo: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    assert warn_if_in_git_work_tree(repo / "batch.csv", "device keys", out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert str(repo / "batch.csv") in lines[0]
    assert "device keys in clear text" in lines[0]
    assert "git work tree" in lines[0]
    quiet = io.StringIO()
    assert not warn_if_in_git_work_tree(tmp_path / "batch.csv", "device keys", quiet)
    assert quiet.getvalue() == ""


def test_factory_batch_warns_for_a_plain_list_in_a_work_tree(repo: Path, tmp_path: Path) -> None:
    plain = repo / "batch.csv"
    made = run("factory", "batch", "3", "--prefix", "SLT22", "--state-file",
               str(tmp_path / "serials.json"), "-o", str(plain))  # fmt: skip
    [line] = warnings(made)
    assert str(plain) in line
    assert "device keys" in line
    assert KEY_HEX not in made.stderr

    # Encrypted, or outside a work tree: nothing to say.
    key_file = tmp_path / "transport.key"
    run("factory", "new-key-file", str(key_file))
    sealed = run("factory", "batch", "3", "--prefix", "SLT22", "--state-file",
                 str(tmp_path / "serials.json"), "--encrypt-key-file", str(key_file),
                 "-o", str(repo / "batch.csv.enc"))  # fmt: skip
    assert warnings(sealed) == []
    outside = run("factory", "batch", "3", "--prefix", "SLT22", "--state-file",
                  str(tmp_path / "serials.json"), "-o", str(tmp_path / "batch.csv"))  # fmt: skip
    assert warnings(outside) == []

    # Decrypting into the work tree writes the keys in clear again.
    opened = run("factory", "decrypt", str(repo / "batch.csv.enc"), "--key-file", str(key_file),
                 "-o", str(repo / "sub" / "plain.csv"))  # fmt: skip
    [line] = warnings(opened)
    assert str(repo / "sub" / "plain.csv") in line


def test_new_key_file_in_a_work_tree_warns(repo: Path) -> None:
    made = run("factory", "new-key-file", str(repo / "transport.key"))
    [line] = warnings(made)
    assert "transport.key" in line
    assert "a transport key" in line


def simulate(state: Path, *options: str, stdin: str) -> subprocess.CompletedProcess[str]:
    # A subprocess: the stdio transport reads the process's own standard input.
    env = {k: v for k, v in os.environ.items() if k not in ("PAYGKIT_KEY", "PAYGKIT_DATA_DIR")}
    done = subprocess.run(
        [sys.executable, "-m", "paygkit", "device", "simulate", "--state", str(state),
         "--serve", "stdio", *options],
        input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_simulated_device_memory_with_a_key_in_a_work_tree_warns(repo: Path) -> None:
    state = repo / "paygkit-device.bin"
    blank = simulate(state, stdin="STATUS\n")
    assert "clear text" not in blank.stderr  # no key in it yet
    set_up = simulate(state, "--serial", "TEST220000001", "--key", KEY_HEX, stdin="STATUS\n")
    [line] = [line for line in set_up.stderr.splitlines() if "clear text" in line]
    assert str(state) in line
    assert "a device key" in line
    again = simulate(state, stdin="STATUS\n")
    assert "clear text" not in again.stderr  # said once, when the key was written
    # Set up over the device protocol (as `paygkit factory flash` does) also counts.
    other = repo / "other.bin"
    flashed = simulate(
        other, stdin=f"SETUP serial=TEST220000002 code=516959010 key={KEY_HEX}\nSTATUS\n"
    )
    assert "serial=TEST220000002" in flashed.stdout
    [line] = [line for line in flashed.stderr.splitlines() if "clear text" in line]
    assert str(other) in line
