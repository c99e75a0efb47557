"""The README's quick start shell commands run in order, as written, and print what they say.

The ```sh blocks of README.md's "Quick start" section run one command at a time
(a line ending in `\\` goes on on the next), with bash, in a fresh directory,
with the paygkit of this interpreter's environment first on PATH.  Only these
things are changed, and only here:

- the ports: the server's 8000 (`127.0.0.1:8000`, `--port`) and the simulator's
  `tcp:7700` become free ones, and `/tmp/` becomes the test's directory;
- the data directory: PAYGKIT_DATA_DIR is the test's directory (and the
  server's other settings are taken out of the environment);
- `...` placeholders: `export KEY=pgk_...` takes the admin key the server
  printed on its first run, `PASSWORD=...` a password of the test's.

`paygkit server run` and `paygkit device simulate --serve ...` run in the
background until the end, each checked to be up before the next command.
Commands that need hardware (`/dev/ttyUSB0`) are skipped; the interactive
simulator is given the lines its comment says to type (`# type A then B, C`).
A comment saying `prints "TEXT"` (on the command's line or the line under it)
is checked: TEXT is in what the command printed (runs of spaces count as one).
Every command must exit 0, and the .gitignore must cover every file they leave.
"""

from __future__ import annotations

import fnmatch
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
PRINTS = re.compile(r'prints "([^"]+)"')
TYPED = re.compile(r"\btype (.+)$")
READY = {"server": "Uvicorn running on", "device": "device protocol on"}
PASSWORD = "correct horse battery staple"
TIMEOUT = 300  # seconds for one command; none of them takes more than a few


@dataclass
class Command:
    text: str
    comment: str = ""

    @property
    def promised(self) -> list[str]:
        return PRINTS.findall(self.comment)


def _split_comment(line: str) -> tuple[str, str]:
    """The line's shell text and its comment (a # at the start or after a space, unquoted)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def quickstart_commands() -> list[Command]:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Quick start\n")
    end = text.index("\n## ", start + 1)
    commands: list[Command] = []
    for block in BLOCK.findall(text[start:end]):
        pending = ""
        for line in block.splitlines():
            shell, comment = _split_comment(line)
            if not shell.strip() and not pending:
                if comment and commands:  # a comment under a command is about it
                    commands[-1].comment += " " + comment
                continue
            if shell.endswith("\\"):
                pending += shell[:-1].strip() + " "
                continue
            commands.append(Command(pending + shell.strip(), comment))
            pending = ""
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _normal(text: str) -> str:
    return " ".join(text.split())


class Background:
    """Long-running commands, stopped (their whole process group) at the end."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, command: str, kind: str, cwd: Path, env: dict[str, str]) -> str:
        log = cwd.parent / f"background-{len(self.running)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append((process, log))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            output = log.read_text(errors="replace")
            if READY[kind] in output:
                return output
            if process.poll() is not None:
                pytest.fail(f"{command!r} stopped (exit {process.returncode}):\n{output}")
            time.sleep(0.1)
        pytest.fail(f"{command!r} did not start:\n{log.read_text(errors='replace')}")

    def stop(self) -> None:
        for process, _ in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def background() -> Iterator[Background]:
    jobs = Background()
    try:
        yield jobs
    finally:
        jobs.stop()


def _ignored(name: str, patterns: list[str]) -> bool:
    """Whether a file at the top of the work tree is ignored (no negations in our .gitignore)."""
    return any(fnmatch.fnmatch(name, pattern.strip("/")) for pattern in patterns)


def test_the_commands_are_found() -> None:
    commands = quickstart_commands()
    texts = [command.text for command in commands]
    assert any(text.startswith("paygkit factory batch 500 --prefix SLT22") for text in texts)
    assert any(text.startswith("paygkit server run") for text in texts)
    assert all(text for text in texts)
    assert sum(len(command.promised) for command in commands) >= 4


@pytest.mark.skipif(
    os.environ.get("PAYGKIT_PURE_PYTHON") == "1",
    reason="the README's commands are the same on either backend: checked once, on the default "
    "one (make test's first pass); on the fallback the RS replay alone takes half a minute",
)
def test_readme_quickstart_runs_as_written(tmp_path: Path, background: Background) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server_port, device_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAYGKIT_DATABASE", "PAYGKIT_MASTER", "PAYGKIT_KEY"))
    }
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PAYGKIT_DATA_DIR": str(work),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PAYGKIT_FACTORY_PASSWORD", None)
    server_output = ""
    ran = 0
    for command in quickstart_commands():
        text = command.text
        if "/dev/ttyUSB0" in text:
            continue  # hardware
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{server_port}")
        text = text.replace("tcp:7700", f"tcp:{device_port}").replace("/tmp/", f"{tmp_path}/")
        text = re.sub(r"\b(PASSWORD=)\.\.\.", rf"\g<1>'{PASSWORD}'", text)
        where = f"README: {command.text}"
        if text.startswith("export "):
            name, _, value = text.removeprefix("export ").partition("=")
            if value == "pgk_...":
                found = re.search(r"pgk_\S+", server_output)
                assert found, f"{where}: no admin key in the server's output:\n{server_output}"
                value = found.group(0)
            env[name] = value
            continue
        if text.startswith("paygkit server run"):
            text = re.sub(r" --port \d+", "", text) + f" --port {server_port}"
            server_output = background.start(text, "server", work, env)
            ran += 1
            continue
        if "--serve " in text:
            background.start(text, "device", work, env)
            ran += 1
            continue
        typed = None
        if text.startswith("paygkit device simulate"):
            found = TYPED.search(command.comment)
            assert found, f"{where}: an interactive command without the lines to type"
            first, _, rest = found.group(1).partition(" then ")
            typed = "\n".join([first, *rest.split(", ")]) + "\n"
        run = subprocess.run(
            ["bash", "-c", text],
            cwd=work,
            env=env,
            input=typed if typed is not None else "",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, f"{where}: exit {run.returncode}\n{output}"
        for promised in command.promised:
            assert _normal(promised) in _normal(output), f"{where}: no {promised!r} in:\n{output}"
        ran += 1
    assert ran >= 15

    # What the quick start leaves behind stays out of git (batch.csv holds every key).
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    left = sorted(path.name for path in work.iterdir())
    assert "batch.csv" in left
    assert [name for name in left if not _ignored(name, patterns)] == []
